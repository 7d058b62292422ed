//! The planner's column references (`left.aum_tier`) and `--where` tests
//! (`left.age between 25 and 35`): parsed from the command line into wire
//! filters, and written back as the same text when a job is shown.

use std::fmt;

use jointly_protocol::wire::{self, Filter, Range, StringSet, filter::Test};

#[cfg(test)]
#[path = "filters_tests.rs"]
mod tests;

/// Why a column reference or a `--where` test does not parse; each says
/// what was expected, with an example.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    #[error("a column needs its side, left. or right. ({COLUMN_EXAMPLE})")]
    ColumnWithoutSide,
    #[error("expected left.COLUMN or right.COLUMN ({COLUMN_EXAMPLE})")]
    BadColumn,
    #[error("the column needs its side, left. or right. (for example 'left.city=Paris')")]
    TestWithoutSide,
    #[error("no column name after '{}.'; expected {WHERE_FORMS}", .side.name())]
    NoColumnName { side: Side },
    #[error("use a single '=' (for example 'left.city=Paris')")]
    DoubleEquals,
    #[error("no value after '=' (for example 'left.city=Paris')")]
    NoValue,
    #[error("bounds are inclusive: use >= or <= (for example 'left.age>=25' or 'left.age<=35')")]
    StrictBound,
    #[error(
        "'in' takes values separated by commas, none empty (for example 'right.interest in travel,food')"
    )]
    EmptyValue,
    #[error("'between' takes two numbers joined by 'and' (for example '{BETWEEN_EXAMPLE}')")]
    BetweenForm,
    /// The planner's own text, echoed so she sees which bound is meant.
    #[error("'{text}' is not a number (for example '{example}')")]
    NotANumber { text: String, example: &'static str },
    #[error("the lower bound {low} is above the upper bound {high} (for example '{BETWEEN_EXAMPLE}')")]
    BoundsReversed { low: f64, high: f64 },
    #[error("expected {WHERE_FORMS} (for example '{BETWEEN_EXAMPLE}')")]
    UnknownForm,
}

const COLUMN_EXAMPLE: &str = "for example left.aum_tier or right.interest";
const BETWEEN_EXAMPLE: &str = "left.age between 25 and 35";

/// Which dataset of the query a column belongs to. Each node only evaluates
/// its own columns, so every column the planner names says whose it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Left,
    Right,
}

impl Side {
    pub fn wire(self) -> wire::Side {
        match self {
            Side::Left => wire::Side::Left,
            Side::Right => wire::Side::Right,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Side::Left => "left",
            Side::Right => "right",
        }
    }
}

/// `left.COLUMN` or `right.COLUMN`, as given to `--group-by` and `--measure`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub side: Side,
    pub name: String,
}

impl Column {
    pub fn parse(s: &str) -> Result<Column, FilterError> {
        let (side, name) = split_side(s.trim()).ok_or(FilterError::ColumnWithoutSide)?;
        if name.is_empty() || name.contains(|c: char| c.is_whitespace() || OPERATOR_CHARS.contains(c)) {
            return Err(FilterError::BadColumn);
        }
        Ok(Column {
            side,
            name: name.into(),
        })
    }
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.side.name(), self.name)
    }
}

/// One `--where` test and the side whose node evaluates it.
#[derive(Clone, Debug, PartialEq)]
pub struct SideFilter {
    pub side: Side,
    pub filter: Filter,
}

/// Characters that end a column name in a `--where` test: the operators' own.
const OPERATOR_CHARS: &str = "=<>!";

const WHERE_FORMS: &str = "left.COL=VALUE, left.COL in A,B,C, left.COL between 25 and 35, \
     left.COL>=25 or left.COL<=35, with right. for the right dataset's columns";

fn split_side(s: &str) -> Option<(Side, &str)> {
    if let Some(rest) = s.strip_prefix("left.") {
        Some((Side::Left, rest))
    } else {
        s.strip_prefix("right.").map(|rest| (Side::Right, rest))
    }
}

/// `rest` without the leading keyword `word` (any case), if it starts with it
/// as a whole word.
fn keyword<'a>(rest: &'a str, word: &str) -> Option<&'a str> {
    let head = rest.get(..word.len())?;
    let tail = &rest[word.len()..];
    (head.eq_ignore_ascii_case(word) && (tail.is_empty() || tail.starts_with(char::is_whitespace)))
        .then(|| tail.trim())
}

/// A bound of a numeric range. Non-finite values are refused: no node column
/// holds them, and "inf" as a bound is more likely a typo than intent.
fn number(text: &str, example: &'static str) -> Result<f64, FilterError> {
    let text = text.trim();
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => Err(FilterError::NotANumber {
            text: text.to_string(),
            example,
        }),
    }
}

/// Parses one `--where` value; the error says what was expected, with an example.
pub fn parse_where(s: &str) -> Result<SideFilter, FilterError> {
    let (side, rest) = split_side(s.trim()).ok_or(FilterError::TestWithoutSide)?;
    let end = rest
        .find(|c: char| c.is_whitespace() || OPERATOR_CHARS.contains(c))
        .unwrap_or(rest.len());
    let (column, rest) = rest.split_at(end);
    if column.is_empty() {
        return Err(FilterError::NoColumnName { side });
    }
    let rest = rest.trim_start();
    let test = if let Some(v) = rest.strip_prefix(">=") {
        Test::Range(Range {
            min: Some(number(v, "left.age>=25")?),
            max: None,
        })
    } else if let Some(v) = rest.strip_prefix("<=") {
        Test::Range(Range {
            min: None,
            max: Some(number(v, "left.age<=35")?),
        })
    } else if rest.starts_with("==") {
        return Err(FilterError::DoubleEquals);
    } else if let Some(v) = rest.strip_prefix('=') {
        let v = v.trim();
        if v.is_empty() {
            return Err(FilterError::NoValue);
        }
        Test::Equals(v.into())
    } else if rest.starts_with(['<', '>']) {
        return Err(FilterError::StrictBound);
    } else if let Some(v) = keyword(rest, "in") {
        let values: Vec<String> = v.split(',').map(|x| x.trim().to_string()).collect();
        if values.iter().any(String::is_empty) {
            return Err(FilterError::EmptyValue);
        }
        Test::OneOf(StringSet { values })
    } else if let Some(v) = keyword(rest, "between") {
        let words: Vec<&str> = v.split_whitespace().collect();
        let [low, and, high] = words.as_slice() else {
            return Err(FilterError::BetweenForm);
        };
        if !and.eq_ignore_ascii_case("and") {
            return Err(FilterError::BetweenForm);
        }
        let (low, high) = (number(low, BETWEEN_EXAMPLE)?, number(high, BETWEEN_EXAMPLE)?);
        if low > high {
            return Err(FilterError::BoundsReversed { low, high });
        }
        Test::Range(Range {
            min: Some(low),
            max: Some(high),
        })
    } else {
        return Err(FilterError::UnknownForm);
    };
    Ok(SideFilter {
        side,
        filter: Filter {
            column: column.into(),
            test: Some(test),
        },
    })
}

/// The left side's filters and the right side's, in the order given.
pub fn split_by_side(filters: Vec<SideFilter>) -> (Vec<Filter>, Vec<Filter>) {
    let (left, right): (Vec<_>, Vec<_>) = filters.into_iter().partition(|f| f.side == Side::Left);
    (
        left.into_iter().map(|f| f.filter).collect(),
        right.into_iter().map(|f| f.filter).collect(),
    )
}

/// A filter as the planner would write it after `--where`, so that what a job
/// shows can be pasted back into a query.
pub fn filter_text(side: Side, filter: &Filter) -> String {
    let column = format!("{}.{}", side.name(), filter.column);
    match &filter.test {
        Some(Test::Equals(v)) => format!("{column}={v}"),
        Some(Test::OneOf(set)) => format!("{column} in {}", set.values.join(",")),
        Some(Test::Range(Range {
            min: Some(low),
            max: Some(high),
        })) => format!("{column} between {low} and {high}"),
        Some(Test::Range(Range {
            min: Some(low),
            max: None,
        })) => format!("{column}>={low}"),
        Some(Test::Range(Range {
            min: None,
            max: Some(high),
        })) => format!("{column}<={high}"),
        Some(Test::Range(Range { min: None, max: None })) => format!("{column} (any number)"),
        None => format!("{column} (no test)"),
    }
}

use super::*;

fn filter(column: &str, test: Test) -> Filter {
    Filter {
        column: column.into(),
        test: Some(test),
    }
}

fn range(min: Option<f64>, max: Option<f64>) -> Test {
    Test::Range(Range { min, max })
}

#[test]
fn equals() {
    assert_eq!(
        parse_where("left.city=Paris"),
        Ok(SideFilter {
            side: Side::Left,
            filter: filter("city", Test::Equals("Paris".into())),
        })
    );
    // Spaces around the operator are the shell's, not the value's.
    assert_eq!(
        parse_where(" right.city = New York ").map(|f| f.filter),
        Ok(filter("city", Test::Equals("New York".into())))
    );
}

#[test]
fn one_of() {
    assert_eq!(
        parse_where("right.interest in travel, food ,cars"),
        Ok(SideFilter {
            side: Side::Right,
            filter: filter(
                "interest",
                Test::OneOf(StringSet {
                    values: vec!["travel".into(), "food".into(), "cars".into()],
                })
            ),
        })
    );
    assert_eq!(
        parse_where("right.interest IN travel").map(|f| f.filter),
        Ok(filter(
            "interest",
            Test::OneOf(StringSet {
                values: vec!["travel".into()]
            })
        ))
    );
}

#[test]
fn ranges() {
    assert_eq!(
        parse_where("left.age between 25 and 35").map(|f| f.filter),
        Ok(filter("age", range(Some(25.0), Some(35.0))))
    );
    assert_eq!(
        parse_where("left.age BETWEEN -1.5 AND 2e3").map(|f| f.filter),
        Ok(filter("age", range(Some(-1.5), Some(2000.0))))
    );
    assert_eq!(
        parse_where("left.age>=25").map(|f| f.filter),
        Ok(filter("age", range(Some(25.0), None)))
    );
    assert_eq!(
        parse_where("left.age <= 35").map(|f| f.filter),
        Ok(filter("age", range(None, Some(35.0))))
    );
    // Equal bounds are a valid (one-value) range.
    assert_eq!(
        parse_where("left.age between 30 and 30").map(|f| f.filter),
        Ok(filter("age", range(Some(30.0), Some(30.0))))
    );
}

#[test]
fn two_tests_on_one_column_stay_two_filters() {
    let filters = ["left.age>=25", "left.age<=35", "right.interest=travel"]
        .map(|s| parse_where(s).unwrap())
        .to_vec();
    let (left, right) = split_by_side(filters);
    assert_eq!(
        left,
        vec![
            filter("age", range(Some(25.0), None)),
            filter("age", range(None, Some(35.0)))
        ]
    );
    assert_eq!(right, vec![filter("interest", Test::Equals("travel".into()))]);
}

#[test]
fn errors_say_what_was_expected() {
    let cases = [
        (
            "city=Paris",
            "the column needs its side, left. or right. (for example 'left.city=Paris')",
        ),
        (
            "left.=Paris",
            "no column name after 'left.'; expected left.COL=VALUE, left.COL in A,B,C, \
             left.COL between 25 and 35, left.COL>=25 or left.COL<=35, with right. for the \
             right dataset's columns",
        ),
        ("left.city=", "no value after '=' (for example 'left.city=Paris')"),
        (
            "left.city==Paris",
            "use a single '=' (for example 'left.city=Paris')",
        ),
        (
            "left.age>25",
            "bounds are inclusive: use >= or <= (for example 'left.age>=25' or 'left.age<=35')",
        ),
        (
            "left.age>=young",
            "'young' is not a number (for example 'left.age>=25')",
        ),
        (
            "left.age<=inf",
            "'inf' is not a number (for example 'left.age<=35')",
        ),
        (
            "left.age between 25",
            "'between' takes two numbers joined by 'and' (for example 'left.age between 25 and 35')",
        ),
        (
            "left.age between 25 or 35",
            "'between' takes two numbers joined by 'and' (for example 'left.age between 25 and 35')",
        ),
        (
            "left.age between 35 and 25",
            "the lower bound 35 is above the upper bound 25 (for example 'left.age between 25 and 35')",
        ),
        (
            "right.interest in travel,,food",
            "'in' takes values separated by commas, none empty (for example 'right.interest in travel,food')",
        ),
        (
            "right.interest in",
            "'in' takes values separated by commas, none empty (for example 'right.interest in travel,food')",
        ),
        (
            "right.interest != travel",
            "expected left.COL=VALUE, left.COL in A,B,C, left.COL between 25 and 35, \
             left.COL>=25 or left.COL<=35, with right. for the right dataset's columns \
             (for example 'left.age between 25 and 35')",
        ),
        (
            "right.interest like travel",
            "expected left.COL=VALUE, left.COL in A,B,C, left.COL between 25 and 35, \
             left.COL>=25 or left.COL<=35, with right. for the right dataset's columns \
             (for example 'left.age between 25 and 35')",
        ),
    ];
    for (input, message) in cases {
        assert_eq!(
            parse_where(input).map_err(|e| e.to_string()),
            Err(message.to_string()),
            "{input}"
        );
    }
}

#[test]
fn errors_are_told_apart() {
    let cases = [
        ("city=Paris", FilterError::TestWithoutSide),
        ("right.=x", FilterError::NoColumnName { side: Side::Right }),
        ("left.city=", FilterError::NoValue),
        ("left.city==Paris", FilterError::DoubleEquals),
        ("left.age<25", FilterError::StrictBound),
        (
            "left.age between x and 3",
            FilterError::NotANumber {
                text: "x".into(),
                example: "left.age between 25 and 35",
            },
        ),
        ("left.age between 1 to 3", FilterError::BetweenForm),
        (
            "left.age between 3 and 1",
            FilterError::BoundsReversed { low: 3.0, high: 1.0 },
        ),
        ("right.interest in a,", FilterError::EmptyValue),
        ("right.interest ~ a", FilterError::UnknownForm),
    ];
    for (input, error) in cases {
        assert_eq!(parse_where(input), Err(error), "{input}");
    }
}

#[test]
fn filter_text_reads_back_as_the_same_filter() {
    for input in [
        "left.city=New York",
        "right.interest in travel,food",
        "left.age between 25 and 35.5",
        "left.age>=25",
        "left.age<=-3",
    ] {
        let parsed = parse_where(input).unwrap();
        assert_eq!(filter_text(parsed.side, &parsed.filter), input);
    }
}

#[test]
fn columns() {
    assert_eq!(
        Column::parse("left.aum_tier"),
        Ok(Column {
            side: Side::Left,
            name: "aum_tier".into()
        })
    );
    assert_eq!(
        Column::parse("right.interest").unwrap().to_string(),
        "right.interest"
    );
    for bad in ["aum_tier", "middle.x"] {
        assert_eq!(Column::parse(bad), Err(FilterError::ColumnWithoutSide));
        assert_eq!(
            Column::parse(bad).map_err(|e| e.to_string()),
            Err(
                "a column needs its side, left. or right. (for example left.aum_tier or right.interest)"
                    .into()
            )
        );
    }
    for bad in ["left.", "left.age>=3", "right.a b"] {
        assert_eq!(Column::parse(bad), Err(FilterError::BadColumn));
        assert_eq!(
            Column::parse(bad).map_err(|e| e.to_string()),
            Err("expected left.COLUMN or right.COLUMN (for example left.aum_tier or right.interest)".into())
        );
    }
}

//! `jointly query attribution` and `jointly query lift`: their flags and the
//! queries they build.

use anyhow::{Context, bail};
use jointly_protocol::{
    ids::timestamp,
    wire::{AttributionModel, AttributionQuery, ConversionPeriod, ConversionWindow, LiftQuery},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelArg {
    LastTouch,
    FirstTouch,
    Linear,
    TimeDecay,
    PositionBased,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WindowArg {
    Day,
    Hour,
}

/// The conversion period.
#[derive(Clone, Debug, clap::Args)]
pub struct PeriodArgs {
    /// First day of the period, YYYY-MM-DD (UTC).
    #[arg(long, value_name = "DATE")]
    pub from: String,
    /// Days in the period.
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Conversion window: a person converts at most once per window.
    #[arg(long, value_enum, default_value = "day")]
    pub window: WindowArg,
    /// Conversion windows counted per person (the earliest); this bounds what
    /// one person can add to the result.
    #[arg(long, default_value_t = 3)]
    pub max_conversions: u32,
}

#[derive(Clone, Debug, clap::Args)]
pub struct AttributionArgs {
    /// The bank's conversions, NODE/DATASET (an [[events]] table of kind conversions).
    #[arg(long, value_name = "NODE/DATASET")]
    pub conversions: String,
    /// The partner's exposures, NODE/DATASET (an [[events]] table of kind exposures).
    #[arg(long, value_name = "NODE/DATASET")]
    pub exposures: String,
    #[arg(long, value_enum, default_value = "linear")]
    pub model: ModelArg,
    /// Half life of the time-decay model, in days.
    #[arg(long, default_value_t = 7)]
    pub half_life: u32,
    /// Touches this many days before a conversion's window get credit.
    #[arg(long, default_value_t = 7)]
    pub lookback: u32,
    /// Credit per channel x campaign instead of per channel.
    #[arg(long)]
    pub by_campaign: bool,
    /// Whole CNY each conversion's value is clipped to: the value buckets
    /// are fractions of it and the value's noise is scaled by it.
    #[arg(long, default_value_t = 20_000)]
    pub value_clip: u64,
    #[command(flatten)]
    pub period: PeriodArgs,
}

#[derive(Clone, Debug, clap::Args)]
pub struct LiftArgs {
    /// The bank's customers, NODE/DATASET.
    #[arg(long, value_name = "NODE/DATASET")]
    pub customers: String,
    /// The bank's conversions table, on the customers' node.
    #[arg(long, value_name = "DATASET", default_value = "conversions")]
    pub conversions: String,
    /// The partner's dataset with the campaign's test/control split, NODE/DATASET.
    #[arg(long, value_name = "NODE/DATASET")]
    pub groups: String,
    /// Its column holding the split (allowed as "group").
    #[arg(long, default_value = "campaign_group")]
    pub group_column: String,
    #[arg(long, default_value = "test")]
    pub test: String,
    #[arg(long, default_value = "control")]
    pub control: String,
    /// Whole CNY each customer's converted value is clipped to.
    #[arg(long, default_value_t = 20_000)]
    pub value_clip: u64,
    #[command(flatten)]
    pub period: PeriodArgs,
}

fn period(p: &PeriodArgs) -> anyhow::Result<ConversionPeriod> {
    let start = timestamp::parse(&format!("{}T00:00:00Z", p.from.trim()))
        .with_context(|| format!("--from {}: give a date as YYYY-MM-DD", p.from))?;
    if p.days == 0 {
        bail!("--days must be at least 1");
    }
    if p.max_conversions == 0 {
        bail!("--max-conversions must be at least 1");
    }
    Ok(ConversionPeriod {
        start,
        end: start + i64::from(p.days) * 86_400,
        window: match p.window {
            WindowArg::Day => ConversionWindow::Day,
            WindowArg::Hour => ConversionWindow::Hour,
        }
        .into(),
        max_conversions: p.max_conversions,
    })
}

pub fn attribution_query(a: &AttributionArgs) -> anyhow::Result<AttributionQuery> {
    let model = match a.model {
        ModelArg::LastTouch => AttributionModel::LastTouch,
        ModelArg::FirstTouch => AttributionModel::FirstTouch,
        ModelArg::Linear => AttributionModel::Linear,
        ModelArg::TimeDecay => AttributionModel::TimeDecay,
        ModelArg::PositionBased => AttributionModel::PositionBased,
    };
    if a.lookback == 0 {
        bail!("--lookback must be at least 1 day");
    }
    Ok(AttributionQuery {
        conversions: Some(crate::dataset_ref(&a.conversions)?),
        exposures: Some(crate::dataset_ref(&a.exposures)?),
        model: model.into(),
        half_life_days: if model == AttributionModel::TimeDecay {
            a.half_life
        } else {
            0
        },
        lookback_days: a.lookback,
        period: Some(period(&a.period)?),
        by_campaign: a.by_campaign,
        value_clip: a.value_clip,
    })
}

pub fn lift_query(a: &LiftArgs) -> anyhow::Result<LiftQuery> {
    Ok(LiftQuery {
        customers: Some(crate::dataset_ref(&a.customers)?),
        conversions: a.conversions.clone(),
        groups: Some(crate::dataset_ref(&a.groups)?),
        group_column: a.group_column.clone(),
        test_value: a.test.clone(),
        control_value: a.control.clone(),
        period: Some(period(&a.period)?),
        value_clip: a.value_clip,
    })
}

//! From an attribution or lift query on the wire to the plan both nodes and
//! the coordinator run, and what each node's noise must cover. All three
//! derive it here, from the same spec and the partner's declared channel and
//! campaign counts, so they cannot disagree on the lanes' shapes.

use crate::{
    queries::attribution::{self, AttributionError, MAX_WEIGHTED_PER_ELEMENT, Plan, ValueBuckets},
    queries::attribution_model::{CREDITS_PER_ELEMENT, Model, Window},
    queries::breakdown_plan::MAX_ABS_VALUE,
    queries::lift::LiftPlan,
    queries::terms::job_terms_with,
    session::stream::Terms,
    wire::{self, AttributionModel, ConversionPeriod, ConversionWindow},
};

/// Why an attribution or lift query names no plan the nodes could run. The
/// texts are what the planner reads in a refusal; none carries a value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    #[error("the time-decay model needs a half life of at least 1 day")]
    NoHalfLife,
    #[error(
        "the attribution query names no model (last_touch, first_touch, linear, time_decay, position_based)"
    )]
    NoModel,
    #[error("the query gives no conversion period")]
    NoPeriod,
    #[error("the conversion period names no window (day or hour)")]
    NoWindow,
    #[error("the lift query needs a value clip of at least 1 CNY")]
    NoValueClip,
    #[error(
        "the attribution query needs a value clip of at least 1 CNY: each conversion's value is clipped to it, and its value noise is scaled by it"
    )]
    NoAttributionValueClip,
    /// The period or plan fails its own checks.
    #[error(transparent)]
    Plan(#[from] AttributionError),
}

/// The model a query names, or why it names none.
pub fn model(q: &wire::AttributionQuery) -> Result<Model, QueryError> {
    Ok(match AttributionModel::try_from(q.model) {
        Ok(AttributionModel::LastTouch) => Model::LastTouch,
        Ok(AttributionModel::FirstTouch) => Model::FirstTouch,
        Ok(AttributionModel::Linear) => Model::Linear,
        Ok(AttributionModel::PositionBased) => Model::PositionBased,
        Ok(AttributionModel::TimeDecay) => match q.half_life_days {
            0 => return Err(QueryError::NoHalfLife),
            half_life_days => Model::TimeDecay { half_life_days },
        },
        _ => return Err(QueryError::NoModel),
    })
}

/// The conversion windows a query names.
pub fn period(p: Option<&ConversionPeriod>) -> Result<attribution::Period, QueryError> {
    let p = p.ok_or(QueryError::NoPeriod)?;
    let window = match ConversionWindow::try_from(p.window) {
        Ok(ConversionWindow::Day) => Window::Day,
        Ok(ConversionWindow::Hour) => Window::Hour,
        _ => return Err(QueryError::NoWindow),
    };
    let period = attribution::Period {
        start: p.start,
        end: p.end,
        window,
        max_conversions: p.max_conversions,
    };
    period.check()?;
    Ok(period)
}

pub fn window_label(window: Window) -> &'static str {
    match window {
        Window::Day => "day",
        Window::Hour => "hour",
    }
}

/// The period in words: "30 day windows from 2026-03-01T00:00:00Z (at most
/// 3 per person)". Transcripts sign this text, so it stays as it is.
pub fn describe_period(p: Option<&ConversionPeriod>) -> String {
    match period(p) {
        Ok(period) => format!(
            "{} {} windows from {} (at most {} per person)",
            period.windows(),
            window_label(period.window),
            crate::ids::timestamp::utc(period.start),
            period.max_conversions
        ),
        Err(e) => format!("an invalid period ({e})"),
    }
}

/// The attribution plan for `channels` and `campaigns` declared by the
/// partner's exposures dataset.
pub fn attribution_plan(
    q: &wire::AttributionQuery,
    channels: usize,
    campaigns: usize,
) -> Result<Plan, QueryError> {
    if q.value_clip == 0 {
        return Err(QueryError::NoAttributionValueClip);
    }
    let plan = Plan {
        period: period(q.period.as_ref())?,
        lookback_days: q.lookback_days,
        model: model(q)?,
        buckets: ValueBuckets { clip: q.value_clip },
        channels,
        campaigns,
        by_campaign: q.by_campaign,
    };
    plan.check()?;
    Ok(plan)
}

/// The attribution terms: the spec and the slot counts, which are not in it.
pub fn attribution_terms(job_id: &str, spec: &wire::QuerySpec, plan: &Plan) -> Terms {
    job_terms_with(job_id, spec, &[plan.channels as u64, plan.campaigns as u64])
}

/// What a node's noise must cover: a scale per released value and the
/// squared L2 sensitivity of the release in units of those scales.
pub struct AttributionNoise {
    pub scales: Vec<u64>,
    pub sensitivity_sq: f64,
}

/// The pooled release holds per slot the credits (scaled by 1000, an
/// element's credits in all) and the weighted credits (scaled by 1000 x
/// 1000, an element's credits at the top representative). One element moves
/// each of the two vectors by at most 1 in L2 norm after scaling (its
/// credits are non-negative and sum to 1000, so their L2 norm is at most
/// 1000). A person has at most K elements, and in the pooled release they
/// may add up in the same slots: K per vector, so 2 K^2 in all. (Released
/// per window, the K elements fell in different windows' values and the
/// person moved the release by sqrt(K) per vector; pooling trades that
/// factor for one noised value per slot instead of windows x buckets.)
/// The bank also releases its element count, which one person moves by at
/// most K: scaled by K, it adds 1.
pub fn attribution_noise(plan: &Plan, with_conversions: bool) -> AttributionNoise {
    let slots = plan.slots();
    let k = u64::from(plan.period.max_conversions);
    let mut scales = vec![u64::from(CREDITS_PER_ELEMENT); slots];
    scales.extend(std::iter::repeat_n(MAX_WEIGHTED_PER_ELEMENT, slots));
    if with_conversions {
        scales.push(k);
    }
    let kf = k as f64;
    AttributionNoise {
        scales,
        sensitivity_sq: 2.0 * kf * kf + if with_conversions { 1.0 } else { 0.0 },
    }
}

/// Standard deviations of the total noise, for a combined noise of `sigma`
/// per unit scale: on one row's conversions, on its value (CNY), and on the
/// attributed total (the sum of the rows' conversions).
pub fn attribution_stddevs(plan: &Plan, sigma: f64) -> (f64, f64, f64) {
    // Credits are thousandths of a conversion and scaled by 1000; weighted
    // credits open as thousandths of a CNY per unit of clip / 1000.
    let row = sigma;
    let value = sigma * plan.buckets.clip as f64;
    let attributed = row * (plan.slots() as f64).sqrt();
    (row, value, attributed)
}

/// Whether the pooled totals of `persons` persons with at most K elements
/// each stay decryptable: every element adds at most
/// [`MAX_WEIGHTED_PER_ELEMENT`] to a weighted total.
pub fn attribution_sums_fit(plan: &Plan, persons: u64) -> bool {
    persons
        .saturating_mul(u64::from(plan.period.max_conversions))
        .saturating_mul(MAX_WEIGHTED_PER_ELEMENT)
        <= MAX_ABS_VALUE / 4 * 3
}

/// The lift plan.
pub fn lift_plan(q: &wire::LiftQuery) -> Result<LiftPlan, QueryError> {
    let plan = LiftPlan {
        period: period(q.period.as_ref())?,
        value_clip: q.value_clip,
    };
    if plan.value_clip == 0 {
        return Err(QueryError::NoValueClip);
    }
    Ok(plan)
}

/// Whether the value sum of `customers` clipped customers stays decryptable.
pub fn lift_sums_fit(plan: &LiftPlan, customers: u64) -> bool {
    customers.saturating_mul(plan.value_clip) <= MAX_ABS_VALUE / 4 * 3
}

/// Lift releases per arm a count, converters (each moved by 1) and a value
/// sum (moved by at most the clip); a person is in one arm.
pub fn lift_noise(plan: &LiftPlan) -> AttributionNoise {
    AttributionNoise {
        scales: [1, 1, plan.value_clip].repeat(2),
        sensitivity_sq: 3.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(model: AttributionModel, half_life: u32) -> wire::AttributionQuery {
        wire::AttributionQuery {
            model: model.into(),
            half_life_days: half_life,
            lookback_days: 7,
            period: Some(ConversionPeriod {
                start: 1_700_006_400,
                end: 1_700_006_400 + 30 * 86_400,
                window: ConversionWindow::Day.into(),
                max_conversions: 3,
            }),
            value_clip: 20_000,
            ..Default::default()
        }
    }

    #[test]
    fn plans_follow_the_query() {
        let plan = attribution_plan(&query(AttributionModel::Linear, 0), 6, 4).expect("plan");
        assert_eq!((plan.windows(), plan.slots()), (30, 6));
        let noise = attribution_noise(&plan, true);
        // Pooled over the 30 windows: credits and weighted credits per slot.
        assert_eq!(noise.scales.len(), 2 * 6 + 1);
        assert_eq!(
            (noise.scales[0], noise.scales[6], noise.scales[12]),
            (1000, 1_000_000, 3)
        );
        assert_eq!(noise.sensitivity_sq, 2.0 * 9.0 + 1.0);
        assert_eq!(attribution_noise(&plan, false).scales.len(), 12);
        assert_eq!(attribution_noise(&plan, false).sensitivity_sq, 18.0);
        assert!(attribution_sums_fit(&plan, 1_000_000));
        assert!(!attribution_sums_fit(&plan, 2_000_000));
        let decay = attribution_plan(&query(AttributionModel::TimeDecay, 3), 6, 4).expect("decay");
        assert_eq!(decay.model, Model::TimeDecay { half_life_days: 3 });
    }

    #[test]
    fn bad_queries_are_named() {
        let e = attribution_plan(&query(AttributionModel::Unspecified, 0), 6, 4).unwrap_err();
        assert_eq!(e, QueryError::NoModel);
        assert!(e.to_string().contains("no model"), "{e}");
        let e = attribution_plan(&query(AttributionModel::TimeDecay, 0), 6, 4).unwrap_err();
        assert_eq!(e, QueryError::NoHalfLife);
        assert!(e.to_string().contains("half life"), "{e}");
        let mut q = query(AttributionModel::Linear, 0);
        q.period.as_mut().expect("period").start += 1;
        let e = attribution_plan(&q, 6, 4).unwrap_err();
        assert!(matches!(e, QueryError::Plan(AttributionError::Plan(_))), "{e:?}");
        assert!(e.to_string().contains("window boundaries"), "{e}");
        let mut q = query(AttributionModel::Linear, 0);
        q.lookback_days = 0;
        let e = attribution_plan(&q, 6, 4).unwrap_err();
        assert!(matches!(e, QueryError::Plan(AttributionError::Plan(_))), "{e:?}");
        assert!(e.to_string().contains("lookback"), "{e}");
        assert!(attribution_plan(&query(AttributionModel::Linear, 0), 0, 4).is_err());
        let mut q = query(AttributionModel::Linear, 0);
        q.value_clip = 0;
        let e = attribution_plan(&q, 6, 4).unwrap_err();
        assert_eq!(e, QueryError::NoAttributionValueClip);
        assert!(e.to_string().contains("value clip"), "{e}");
        let mut q = query(AttributionModel::Linear, 0);
        q.period = None;
        let e = attribution_plan(&q, 6, 4).unwrap_err();
        assert_eq!(e, QueryError::NoPeriod);
        assert!(e.to_string().contains("period"), "{e}");
    }

    #[test]
    fn terms_bind_the_slot_counts() {
        let spec = wire::QuerySpec::default();
        let plan = attribution_plan(&query(AttributionModel::Linear, 0), 6, 4).expect("plan");
        let other = Plan {
            campaigns: 5,
            ..plan.clone()
        };
        assert_ne!(
            attribution_terms("j", &spec, &plan),
            attribution_terms("j", &spec, &other)
        );
    }

    #[test]
    fn lift_noise_and_range() {
        let q = wire::LiftQuery {
            period: query(AttributionModel::Linear, 0).period,
            value_clip: 20_000,
            ..Default::default()
        };
        let plan = lift_plan(&q).expect("lift plan");
        assert_eq!(lift_noise(&plan).scales, vec![1, 1, 20_000, 1, 1, 20_000]);
        assert!(lift_sums_fit(&plan, 10_000_000));
        assert!(!lift_sums_fit(&plan, 1 << 40));
        let zero = wire::LiftQuery { value_clip: 0, ..q };
        assert_eq!(lift_plan(&zero).unwrap_err(), QueryError::NoValueClip);
    }
}

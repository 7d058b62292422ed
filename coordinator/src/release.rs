//! The last step of every job: add the sender's noise shares to the receiver's
//! partially noised result, apply the larger of the two nodes' thresholds, and
//! state how the result was protected. The coordinator sees only noised
//! numbers: the receiver's share is already inside its count.

use jointly_protocol::wire::{
    NodeTerms, OverlapResult, Privacy, QueryResult, QuerySpec, Release, ReleasedCount, query_result,
};

use crate::error::ReleaseError;

/// Builds the released result from the receiver's report and the sender's
/// shares, of which a noised job has `expected_shares` (0 when the sender's
/// dummies already noise the receiver's count, 1 for an activation).
/// `terms` are the receiver's and the sender's decisions, in that order.
pub fn combine(
    spec: &QuerySpec,
    from_receiver: QueryResult,
    sender_shares: &[i64],
    expected_shares: usize,
    terms: [NodeTerms; 2],
) -> Result<QueryResult, ReleaseError> {
    let privacy = spec.privacy.unwrap_or_default();
    let threshold = terms[0].min_aggregation.max(terms[1].min_aggregation);
    let sigmas = [terms[0].sigma, terms[1].sigma];
    if privacy.exact != sigmas.iter().all(|s| *s == 0.0) {
        return Err(ReleaseError::SigmasDoNotFit {
            exact: privacy.exact,
            sigmas,
        });
    }
    let Some(query_result::Result::Overlap(OverlapResult {
        intersection: Some(count),
    })) = from_receiver.result
    else {
        return Err(ReleaseError::NotACount {
            node: terms[0].node.clone(),
        });
    };
    let share = match (privacy.exact, sender_shares) {
        (true, []) => 0,
        (false, []) if expected_shares == 0 => 0,
        (false, [share]) if expected_shares == 1 => *share,
        _ => {
            return Err(ReleaseError::Shares {
                node: terms[1].node.clone(),
                sent: sender_shares.len(),
                expected: if privacy.exact { 0 } else { expected_shares },
            });
        }
    };
    let intersection = release_count(count, share, threshold);
    Ok(QueryResult {
        result: Some(query_result::Result::Overlap(OverlapResult {
            intersection: Some(intersection),
        })),
        release: Some(release_terms(&privacy, threshold, terms)),
    })
}

/// How a result was protected: the planner's error bars. `noise_stddev` is
/// that of a count (both nodes' shares); a sum's is that times its
/// measure's clipping bound.
pub fn release_terms(privacy: &Privacy, threshold: u64, terms: [NodeTerms; 2]) -> Release {
    Release {
        exact: privacy.exact,
        epsilon: if privacy.exact { 0.0 } else { privacy.epsilon },
        noise_stddev: terms.iter().map(|t| t.sigma * t.sigma).sum::<f64>().sqrt(),
        threshold,
        nodes: terms.to_vec(),
    }
}

fn release_count(partial: ReleasedCount, share: i64, threshold: u64) -> ReleasedCount {
    let below = ReleasedCount {
        value: 0,
        below_threshold: true,
    };
    if partial.below_threshold {
        return below;
    }
    let value = partial.value.saturating_add(share);
    if value < i64::try_from(threshold).unwrap_or(i64::MAX) {
        return below;
    }
    ReleasedCount {
        value,
        below_threshold: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(node: &str, sigma: f64, min_aggregation: u64) -> NodeTerms {
        NodeTerms {
            node: node.into(),
            sigma,
            delta: 1e-6,
            min_aggregation,
        }
    }

    fn spec(exact: bool) -> QuerySpec {
        QuerySpec {
            query: None,
            privacy: Some(Privacy { epsilon: 0.5, exact }),
        }
    }

    fn partial(value: i64, below_threshold: bool) -> QueryResult {
        QueryResult {
            result: Some(query_result::Result::Overlap(OverlapResult {
                intersection: Some(ReleasedCount {
                    value,
                    below_threshold,
                }),
            })),
            release: None,
        }
    }

    fn count(r: &QueryResult) -> ReleasedCount {
        match &r.result {
            Some(query_result::Result::Overlap(o)) => o.intersection.expect("count"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn adds_the_sender_share_and_applies_the_larger_threshold() {
        let both = [terms("bank", 3.0, 10), terms("partner", 4.0, 50)];
        let r = combine(&spec(false), partial(60, false), &[-5], 1, both.clone()).expect("release");
        assert_eq!(
            count(&r),
            ReleasedCount {
                value: 55,
                below_threshold: false
            }
        );
        let release = r.release.expect("release terms");
        assert_eq!(
            (release.threshold, release.noise_stddev, release.epsilon),
            (50, 5.0, 0.5)
        );
        // The partner's larger threshold suppresses what the bank's would pass.
        let r = combine(&spec(false), partial(52, false), &[-5], 1, both.clone()).expect("release");
        assert!(count(&r).below_threshold && count(&r).value == 0);
        // The receiver's own suppression stands whatever the share.
        let r = combine(&spec(false), partial(0, true), &[1000], 1, both.clone()).expect("release");
        assert!(count(&r).below_threshold);
    }

    #[test]
    fn refuses_shares_and_terms_that_do_not_fit() {
        let noised = [terms("bank", 3.0, 0), terms("partner", 4.0, 0)];
        let exact = [terms("bank", 0.0, 0), terms("partner", 0.0, 0)];
        let shares = |r: Result<QueryResult, ReleaseError>| match r {
            Err(ReleaseError::Shares { node, sent, expected }) => Some((node, sent, expected)),
            _ => None,
        };
        let e = combine(&spec(false), partial(5, false), &[], 1, noised.clone());
        assert_eq!(shares(e), Some(("partner".into(), 0, 1)));
        let e = combine(&spec(false), partial(5, false), &[1, 2], 1, noised.clone());
        assert_eq!(shares(e), Some(("partner".into(), 2, 1)));
        // An overlap's sender adds no share: one sent is refused.
        let e = combine(&spec(false), partial(5, false), &[1], 0, noised.clone());
        assert_eq!(shares(e), Some(("partner".into(), 1, 0)));
        assert_eq!(
            count(&combine(&spec(false), partial(5, false), &[], 0, noised.clone()).expect("overlap")).value,
            5
        );
        let e = combine(&spec(true), partial(5, false), &[1], 1, exact.clone());
        assert_eq!(shares(e), Some(("partner".into(), 1, 0)));
        // A node claiming no noise on a noised query.
        assert!(matches!(
            combine(&spec(false), partial(5, false), &[1], 1, exact.clone()),
            Err(ReleaseError::SigmasDoNotFit { exact: false, .. })
        ));
        let r = combine(&spec(true), partial(5, false), &[], 0, exact).expect("exact");
        assert_eq!(count(&r).value, 5);
        assert!(r.release.expect("terms").exact);
    }
}

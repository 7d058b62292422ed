//! The node's own decision on a job offer. The coordinator proposes; only the
//! node's policy disposes, and a refusal says which key refused and why.

use jointly_protocol::{
    ids::{IdKind, match_kind},
    wire::{JobOffer, Role, query_spec::Query},
};

use crate::{
    config::Policy,
    dataset::LoadedDataset,
    privacy::{NoisePlan, QueryShape, plan},
};

/// What the node will run for an accepted offer.
#[derive(Clone, Debug)]
pub struct Accepted {
    pub role: Role,
    pub dataset: String,
    /// The identifier kind both sides hash under.
    pub hash_kind: IdKind,
    /// Noise, threshold and budget charge; the caller reserves the charge.
    pub noise: NoisePlan,
}

/// Checks an offer against the policy and the loaded datasets.
pub fn decide(
    node: &str,
    policy: &Policy,
    offer: &JobOffer,
    dataset: Option<&LoadedDataset>,
    running_sessions: usize,
    max_sessions: usize,
) -> Result<Accepted, String> {
    let Some(Query::Overlap(_)) = offer.spec.as_ref().and_then(|s| s.query.as_ref()) else {
        return Err(format!("node '{node}' does not support this query kind"));
    };
    if !policy.partners.iter().any(|p| p == &offer.peer_node) {
        return Err(format!(
            "node '{node}' refuses: '{}' is not listed in its policy.partners",
            offer.peer_node
        ));
    }
    let Some(dataset) = dataset else {
        return Err(format!("node '{node}' has no dataset '{}'", offer.dataset));
    };
    let role = match Role::try_from(offer.role) {
        Ok(r @ (Role::Receiver | Role::Sender)) => r,
        _ => return Err(format!("node '{node}' received an offer without a valid role")),
    };
    let peer_kind: IdKind = offer.peer_id_kind.parse().map_err(|_| {
        format!(
            "node '{node}' does not know the peer's identifier kind '{}'",
            offer.peer_id_kind
        )
    })?;
    let hash_kind = match_kind(dataset.kind, peer_kind).ok_or_else(|| {
        format!(
            "identifier kinds cannot match: '{}' holds {} and '{}' holds {peer_kind}",
            offer.dataset, dataset.kind, offer.peer_node
        )
    })?;
    if running_sessions >= max_sessions {
        return Err(format!(
            "node '{node}' is busy: {running_sessions} sessions running (limits.max_sessions = {max_sessions}); run the query again later"
        ));
    }
    let privacy = offer
        .spec
        .as_ref()
        .and_then(|s| s.privacy.as_ref())
        .ok_or_else(|| format!("node '{node}' refuses a query without privacy terms"))?;
    let noise = plan(
        node,
        policy,
        privacy,
        QueryShape {
            job_id: &offer.job_id,
            dataset: &dataset.name,
            partner: &offer.peer_node,
            kind: "overlap",
            // One person changes the count by at most one.
            sensitivity_sq: 1.0,
            released_values: 1,
        },
    )?;
    Ok(Accepted {
        role,
        dataset: dataset.name.clone(),
        hash_kind,
        noise,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use jointly_protocol::{
        idlist::IdList,
        wire::{DatasetRef, OverlapQuery, Privacy, QuerySpec},
    };

    use super::*;
    use crate::{attributes::Attributes, config::BudgetConfig, dataset::LoadReport, period::Period};

    fn dataset(kind: IdKind) -> LoadedDataset {
        LoadedDataset {
            name: "customers".into(),
            kind,
            ids: Arc::new(IdList::from_normalized(kind, vec![])),
            columns: vec![],
            attributes: Attributes::without_columns("customers", 0),
            report: LoadReport::default(),
        }
    }

    fn offer_with(peer: &str, kind: &str, privacy: Privacy) -> JobOffer {
        JobOffer {
            job_id: "j".into(),
            spec: Some(QuerySpec {
                query: Some(Query::Overlap(OverlapQuery {
                    left: Some(DatasetRef::default()),
                    right: Some(DatasetRef::default()),
                })),
                privacy: Some(privacy),
            }),
            role: Role::Receiver.into(),
            dataset: "customers".into(),
            peer_node: peer.into(),
            peer_id_kind: kind.into(),
            peer_groups: 0,
        }
    }

    fn offer(peer: &str, kind: &str, exact: bool) -> JobOffer {
        offer_with(peer, kind, Privacy { epsilon: 1.0, exact })
    }

    #[test]
    fn decisions() {
        let policy = Policy {
            partners: vec!["partner".into()],
            allow_exact: true,
            budgets: vec![BudgetConfig {
                dataset: "customers".into(),
                partner: "*".into(),
                epsilon: 4.0,
                period: Period::Month,
            }],
            ..Policy::default()
        };
        let d = dataset(IdKind::Phone);
        let ok = decide(
            "bank",
            &policy,
            &offer("partner", "sha256_phone", true),
            Some(&d),
            0,
            4,
        )
        .expect("accept");
        assert_eq!(ok.hash_kind, IdKind::Sha256Phone);
        let e =
            decide("bank", &policy, &offer("stranger", "phone", true), Some(&d), 0, 4).expect_err("partner");
        assert!(e.contains("policy.partners"), "{e}");
        let e = decide("bank", &policy, &offer("partner", "email", true), Some(&d), 0, 4).expect_err("kinds");
        assert!(e.contains("cannot match"), "{e}");
        let e = decide("bank", &policy, &offer("partner", "phone", true), None, 0, 4).expect_err("dataset");
        assert!(e.contains("no dataset"), "{e}");
        let e = decide("bank", &policy, &offer("partner", "phone", true), Some(&d), 4, 4).expect_err("busy");
        assert!(e.contains("busy"), "{e}");
        let noised =
            decide("bank", &policy, &offer("partner", "phone", false), Some(&d), 0, 4).expect("noised");
        assert!(!noised.noise.exact && noised.noise.sigma() > 0.5);
        assert_eq!(noised.noise.charge.partner, "partner");
        // The planner cannot buy precision past the policy.
        for epsilon in [1.5, 0.0, -1.0, f64::NAN, f64::INFINITY] {
            let o = offer_with(
                "partner",
                "phone",
                Privacy {
                    epsilon,
                    exact: false,
                },
            );
            let e = decide("bank", &policy, &o, Some(&d), 0, 4).expect_err("epsilon");
            assert!(e.contains("epsilon"), "{e}");
        }
        let strict = Policy {
            allow_exact: false,
            ..policy.clone()
        };
        let e = decide("bank", &strict, &offer("partner", "phone", true), Some(&d), 0, 4).expect_err("exact");
        assert!(e.contains("allow_exact"), "{e}");
        let no_budget = Policy {
            budgets: vec![],
            ..policy
        };
        let e = decide(
            "bank",
            &no_budget,
            &offer("partner", "phone", false),
            Some(&d),
            0,
            4,
        )
        .expect_err("budget");
        assert!(e.contains("[[policy.budgets]]"), "{e}");
    }
}

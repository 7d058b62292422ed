//! The node's own decision on a job offer. The coordinator proposes; only the
//! node's policy disposes, and a refusal says which key refused and why.

use jointly_protocol::{
    ids::{IdKind, match_kind},
    wire::{JobOffer, Role, query_spec::Query},
};

use crate::{config::Policy, dataset::LoadedDataset};

/// What the node will run for an accepted offer.
#[derive(Clone, Debug)]
pub struct Accepted {
    pub role: Role,
    pub dataset: String,
    /// The identifier kind both sides hash under.
    pub hash_kind: IdKind,
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
    if offer.exact && !policy.allow_exact {
        return Err(format!(
            "node '{node}' refuses an exact result: its policy sets allow_exact = false (exact results need allow_exact = true on both nodes)"
        ));
    }
    if running_sessions >= max_sessions {
        return Err(format!(
            "node '{node}' is busy: {running_sessions} sessions running (limits.max_sessions = {max_sessions}); run the query again later"
        ));
    }
    Ok(Accepted {
        role,
        dataset: dataset.name.clone(),
        hash_kind,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use jointly_protocol::{
        idlist::IdList,
        wire::{DatasetRef, OverlapQuery, QuerySpec},
    };

    use super::*;
    use crate::dataset::LoadReport;

    fn dataset(kind: IdKind) -> LoadedDataset {
        LoadedDataset {
            name: "customers".into(),
            kind,
            ids: Arc::new(IdList::from_normalized(kind, vec![])),
            columns: vec![],
            report: LoadReport::default(),
        }
    }

    fn offer(peer: &str, kind: &str, exact: bool) -> JobOffer {
        JobOffer {
            job_id: "j".into(),
            spec: Some(QuerySpec {
                query: Some(Query::Overlap(OverlapQuery {
                    left: Some(DatasetRef::default()),
                    right: Some(DatasetRef::default()),
                })),
            }),
            role: Role::Receiver.into(),
            dataset: "customers".into(),
            peer_node: peer.into(),
            peer_id_kind: kind.into(),
            exact,
        }
    }

    #[test]
    fn decisions() {
        let policy = Policy {
            partners: vec!["partner".into()],
            allow_exact: true,
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
        let strict = Policy {
            allow_exact: false,
            ..policy
        };
        let e = decide("bank", &strict, &offer("partner", "phone", true), Some(&d), 0, 4).expect_err("exact");
        assert!(e.contains("allow_exact"), "{e}");
    }
}

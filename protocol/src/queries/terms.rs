//! The digest two parties compare before a session exchanges anything: it
//! binds the job to the query spec (privacy parameters included) each party
//! was offered. A relay that offered the parties different terms, for example
//! an exact result to one and a noised one to the other, is caught at the
//! first message.

use prost::Message;
use sha2::{Digest, Sha256};

use crate::{session::stream::Terms, wire::QuerySpec};

const DOMAIN: &[u8] = b"JOINTLY-V1-TERMS";

/// prost encodes a message's fields in field-number order, so two parties
/// holding equal specs compute equal digests.
pub fn job_terms(job_id: &str, spec: &QuerySpec) -> Terms {
    job_terms_with(job_id, spec, &[])
}

/// The terms with numbers that are not in the spec but must be equal at both
/// parties (a breakdown's schema, see `breakdown_plan`).
pub fn job_terms_with(job_id: &str, spec: &QuerySpec, extra: &[u64]) -> Terms {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update((job_id.len() as u64).to_be_bytes());
    h.update(job_id.as_bytes());
    h.update(spec.encode_to_vec());
    for x in extra {
        h.update(x.to_be_bytes());
    }
    h.finalize().into()
}

/// The terms with the job's requester bound in: both nodes compare this
/// digest before anything else, so a coordinator that names different
/// planners (or signed requests) to the two nodes stops the session.
pub fn with_requester(terms: Terms, requester: Option<&crate::wire::Requester>) -> Terms {
    let mut h = Sha256::new();
    h.update(b"JOINTLY-V1-TERMS-REQUESTER");
    h.update(terms);
    h.update(crate::access::request::requester_digest(requester));
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{DatasetRef, OverlapQuery, Privacy, query_spec::Query};

    fn spec(epsilon: f64, exact: bool) -> QuerySpec {
        QuerySpec {
            query: Some(Query::Overlap(OverlapQuery {
                left: Some(DatasetRef {
                    node: "bank".into(),
                    dataset: "customers".into(),
                }),
                right: Some(DatasetRef {
                    node: "partner".into(),
                    dataset: "members".into(),
                }),
            })),
            privacy: Some(Privacy { epsilon, exact }),
        }
    }

    #[test]
    fn every_part_of_the_terms_counts() {
        let base = job_terms("job-1", &spec(1.0, false));
        assert_eq!(base, job_terms("job-1", &spec(1.0, false)));
        assert_ne!(base, job_terms("job-2", &spec(1.0, false)));
        assert_ne!(base, job_terms("job-1", &spec(1.0, true)));
        assert_ne!(base, job_terms("job-1", &spec(2.0, false)));
        let alice = crate::wire::Requester {
            principal: "alice".into(),
            ..Default::default()
        };
        let bob = crate::wire::Requester {
            principal: "bob".into(),
            ..Default::default()
        };
        let with_alice = with_requester(base, Some(&alice));
        assert_ne!(with_alice, base);
        assert_ne!(with_alice, with_requester(base, Some(&bob)));
        assert_ne!(with_alice, with_requester(base, None));
        assert_eq!(with_alice, with_requester(base, Some(&alice)));
    }
}

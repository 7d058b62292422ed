//! What the keeper committed to in its closing: its release (the result
//! commitment) and its masking proofs, each checked against the lists the
//! chains carry.

use std::collections::HashSet;

use super::{
    chain::Direction,
    report::{AuditReport, CheckStatus},
};
use crate::{
    crypto::dleq::{self, DleqError, Proof},
    crypto::group::{PointBytes, split_points},
    session::attest,
    session::stream::Terms,
    transcript::summary::result_commitment,
    wire::{self, OwnRelease},
};

/// Why one masking proof fails. Counts are of masked points; nothing names a
/// point or an identifier.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
enum AttestationFault {
    #[error("{0}")]
    Proof(DleqError),
    #[error("the proven list is not the V the chain carries")]
    NotTheChainsList,
    #[error("the chain gives |V ∩ r*W| = {matched}, but node '{node}' recorded an exact count of {count}")]
    CountDiffers { matched: u64, node: String, count: u64 },
    #[error("step '{step}' is not a step node '{node}' masks in its role")]
    NotItsStep { step: String, node: String },
}

/// The node's stored report against the result commitment in its closing.
pub(super) fn check_release(
    report: &mut AuditReport,
    node: &str,
    keeper: &Direction,
    releases: &[OwnRelease],
) -> Option<OwnRelease> {
    const NAME: &str = "result commitment";
    if releases.is_empty() && keeper.closing.is_some() {
        report.add(
            NAME,
            CheckStatus::NotChecked,
            format!(
                "no release of node '{node}' in this file: a shared copy withholds it (it holds the node's decryption shares); verify the node's own copy to check it against the commitment"
            ),
        );
        return None;
    }
    let [release] = releases else {
        report.fail(
            NAME,
            format!(
                "the file holds {} releases of node '{node}', expected one",
                releases.len()
            ),
        );
        return None;
    };
    let Some((closing, _)) = &keeper.closing else {
        report.fail(
            NAME,
            format!("node '{node}' never closed, so its release is not committed"),
        );
        return None;
    };
    if result_commitment(&release.salt, &release.report).as_slice() == closing.result_commitment.as_slice() {
        report.pass(
            NAME,
            format!("what node '{node}' reported to the coordinator is what it committed to in its closing"),
        );
        Some(release.clone())
    } else {
        report.fail(
            NAME,
            format!("node '{node}''s stored report differs from the one it committed to in its closing"),
        );
        None
    }
}

/// Every masking proof the file holds: committed to in the keeper's
/// closing, and proving the lists its chain carries.
#[allow(clippy::too_many_arguments)]
pub(super) fn check_attestations(
    report: &mut AuditReport,
    node: &str,
    keeper_is_receiver: bool,
    keeper: &Direction,
    (r2s, s2r): (&Direction, &Direction),
    terms: &Terms,
    attestations: &[(usize, wire::Attestation)],
    release: Option<&OwnRelease>,
) {
    const NAME: &str = "masking proofs";
    let listed: Vec<&Vec<u8>> = keeper
        .closing
        .as_ref()
        .map(|(c, _)| c.attestations.iter().collect())
        .unwrap_or_default();
    let attested_kind = matches!(report.query_kind.as_str(), "overlap" | "segment");
    if attestations.is_empty() {
        if !listed.is_empty() {
            report.add(
                NAME,
                CheckStatus::NotChecked,
                format!(
                    "node '{node}' made {} masking proof(s), kept in its own copy only (a shared copy withholds them); verify that copy at the node",
                    listed.len()
                ),
            );
        } else if attested_kind && keeper.closing.is_some() {
            report.fail(
                NAME,
                format!(
                    "node '{node}' committed to no masking proof in a {} session",
                    report.query_kind
                ),
            );
        } else {
            report.add(
                NAME,
                CheckStatus::NotChecked,
                format!("masking is not attested for {} sessions yet", report.query_kind),
            );
        }
        return;
    }
    let key = keeper
        .announce
        .as_ref()
        .map(|a| a.session_key.clone())
        .unwrap_or_default();
    // A sender answers U with its dummies too, a receiver answers W with
    // its own in an activation: each adds twice its offset to the list.
    let width = keeper
        .announce
        .as_ref()
        .map_or(0, |a| a.dummy_offset.saturating_mul(2) as usize);
    let Ok(key) = PointBytes::try_from(key.as_slice()) else {
        report.fail(
            NAME,
            format!("node '{node}' announced no session key, so its proofs refer to nothing"),
        );
        return;
    };
    let [u, _, _, z] = &r2s.lists;
    let [_, v, w, _] = &s2r.lists;
    let mut seen = HashSet::new();
    for (index, a) in attestations {
        let at = format!("record {index} (step {})", a.step);
        let digest = attest::digest(
            &a.step,
            crate::session::stream::list_from_wire(a.inputs)
                .map(|l| l.name())
                .unwrap_or("?"),
            &a.outputs,
            &a.proof,
        );
        if !listed.iter().any(|l| l.as_slice() == digest) || !seen.insert(digest) {
            report.fail(
                NAME,
                format!("{at}: not among the proofs node '{node}' committed to in its closing"),
            );
            continue;
        }
        let (Some(outputs), Ok(proof)) = (split_points(&a.outputs), Proof::from_bytes(&a.proof)) else {
            report.fail(NAME, format!("{at}: malformed outputs or proof"));
            continue;
        };
        let context = attest::context(terms, &a.step, &key);
        // Hints of the wrong length (none, in an older file) are ignored.
        let hints = dleq::Hints {
            inputs: Some(&a.input_hints),
            outputs: Some(&a.output_hints),
        };
        let result: Result<String, AttestationFault> = match (a.step.as_str(), keeper_is_receiver) {
            (attest::SENDER_STEP, false) => dleq::verify_contained_hinted(
                &context, &key, u, &outputs, v, width, hints, &proof,
            )
            .map(|()| {
                format!(
                    "{at}: V holds the sender's committed key times U ({} points) and {width} dummy answers",
                    u.len()
                )
            })
            .map_err(AttestationFault::Proof),
            (attest::ACTIVATION_SENDER_STEP, false) => dleq::verify_aligned_hinted(
                &context, &key, u, &outputs, hints, &proof,
            )
            .map_err(AttestationFault::Proof)
            .and_then(|()| {
                if outputs == *v {
                    Ok(format!(
                        "{at}: V, sent in U's order, is the sender's committed key times U ({} points)",
                        u.len()
                    ))
                } else {
                    Err(AttestationFault::NotTheChainsList)
                }
            }),
            (step @ (attest::RECEIVER_STEP | attest::ACTIVATION_RECEIVER_STEP), true) => {
                let checked = if step == attest::RECEIVER_STEP {
                    dleq::verify_aligned_hinted(&context, &key, w, &outputs, hints, &proof)
                } else {
                    // Z in the chain is r*W shuffled with the receiver's
                    // dummy answers.
                    dleq::verify_contained_hinted(&context, &key, w, &outputs, z, width, hints, &proof)
                };
                match checked {
                    Err(e) => Err(AttestationFault::Proof(e)),
                    Ok(()) => {
                        let matched = recount(v, &outputs);
                        let proved = format!(
                            "{at}: r*W is the receiver's committed key times W ({} points)",
                            w.len()
                        );
                        match release.and_then(|r| r.exact_count) {
                            Some(count) if count != matched => Err(AttestationFault::CountDiffers {
                                matched,
                                node: node.to_string(),
                                count,
                            }),
                            Some(_) => Ok(format!(
                                "{proved}, and |V ∩ r*W| = {matched} is the count it released before noise"
                            )),
                            None => Ok(format!("{proved}; |V ∩ r*W| = {matched}")),
                        }
                    }
                }
            }
            (step, _) => Err(AttestationFault::NotItsStep {
                step: step.to_string(),
                node: node.to_string(),
            }),
        };
        match result {
            Ok(text) => report.pass(NAME, text),
            Err(e) => report.fail(NAME, format!("{at}: {e}")),
        }
    }
    if seen.len() < listed.len() {
        report.fail(
            NAME,
            format!(
                "node '{node}' committed to {} proofs but the file holds {}",
                listed.len(),
                seen.len()
            ),
        );
    }
}

/// `|V ∩ outputs|` by sorting and merging, as the receiver counts.
fn recount(v: &[PointBytes], outputs: &[PointBytes]) -> u64 {
    use rayon::slice::ParallelSliceMut;
    let (mut a, mut b) = (v.to_vec(), outputs.to_vec());
    rayon::join(|| a.par_sort_unstable(), || b.par_sort_unstable());
    crate::session::stream::count_common(&a, &b)
}

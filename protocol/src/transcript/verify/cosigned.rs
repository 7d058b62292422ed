//! The co-signed session summary: both nodes' signatures over it, and its
//! equality, field for field, with the summary rebuilt from the chains; and
//! the parties the auditor reads from it.

use ed25519_dalek::{Signature, VerifyingKey};
use prost::Message;

use super::{
    chain::Direction,
    report::{AuditReport, DisclosureReport, PartyReport},
};
use crate::{
    session::stream::Terms,
    transcript::recorder::{build_summary, signing_bytes},
    wire::{self, CosignedSummary, SessionSummary, SummaryParty, TranscriptHead},
};

pub(super) fn fill_parties(
    report: &mut AuditReport,
    summary: &SessionSummary,
    (r2s, s2r): (&Direction, &Direction),
) {
    let party = |p: &Option<SummaryParty>, role: &str, d: &Direction| {
        let p = p.clone().unwrap_or_default();
        let closing = p.closing.clone().unwrap_or_default();
        PartyReport {
            node: p.node,
            role: role.to_string(),
            identity_key: hex::encode(&p.identity_key),
            session_key: hex::encode(&p.session_key),
            set_size: p.set_size,
            messages_sent: d.reader.count(),
            policy_checks: closing.policy_checks,
            epsilon: closing.epsilon,
        }
    };
    report.parties = vec![
        party(&summary.receiver, "receiver", r2s),
        party(&summary.sender, "sender", s2r),
    ];
    report.disclosures = summary
        .disclosures
        .iter()
        .map(|d| DisclosureReport {
            party: d.party.clone(),
            learns: d.learns.clone(),
        })
        .collect();
}

/// The summary must carry both signatures, and equal, field for field, the
/// summary rebuilt from the file's head and chains.
pub(super) fn check_summary(
    report: &mut AuditReport,
    head: &TranscriptHead,
    spec: &wire::QuerySpec,
    terms: &Terms,
    (r2s, r_key): (&Direction, VerifyingKey),
    (s2r, s_key): (&Direction, VerifyingKey),
    summaries: &[CosignedSummary],
) -> Option<SessionSummary> {
    const NAME: &str = "co-signed summary";
    let [cosigned] = summaries else {
        report.fail(
            NAME,
            format!("the file holds {} summaries, expected one", summaries.len()),
        );
        return None;
    };
    let Ok(summary) = SessionSummary::decode(cosigned.summary.as_slice()) else {
        report.fail(NAME, "the summary is not a valid SessionSummary");
        return None;
    };
    let mut ok = true;
    for (who, key, sig) in [
        ("receiver", r_key, &cosigned.receiver_signature),
        ("sender", s_key, &cosigned.sender_signature),
    ] {
        if !signed(&key, &cosigned.summary, sig) {
            report.fail(
                NAME,
                format!("the {who}'s signature does not verify under its registered identity key"),
            );
            ok = false;
        }
    }
    // The co-signatures also travel in the chains; they must be the ones stored.
    if r2s
        .cosign
        .as_ref()
        .is_some_and(|s| s != &cosigned.receiver_signature)
        || s2r
            .cosign
            .as_ref()
            .is_some_and(|s| s != &cosigned.sender_signature)
    {
        report.fail(
            NAME,
            "a co-signature in the chain differs from the one stored with the summary",
        );
        ok = false;
    }
    let party = |d: &Direction, node: &str, key: &VerifyingKey| {
        let (set_size, session_key) = d
            .announce
            .as_ref()
            .map(|a| (a.set_size, a.session_key.clone()))
            .unwrap_or_default();
        SummaryParty {
            node: node.to_string(),
            identity_key: key.to_bytes().to_vec(),
            session_key,
            set_size,
            closing: d.closing.as_ref().map(|(c, _)| c.clone()),
        }
    };
    let (r_name, s_name) = (&r2s.reader_from(), &s2r.reader_from());
    let expected = build_summary(
        &head.job_id,
        &head.session_id,
        spec,
        terms,
        head.requester.as_ref(),
        party(r2s, r_name, &r_key),
        party(s2r, s_name, &s_key),
        r2s.closing.as_ref().map(|(_, h)| h.clone()).unwrap_or_default(),
        s2r.closing.as_ref().map(|(_, h)| h.clone()).unwrap_or_default(),
    );
    if expected != summary {
        ok = false;
        report.fail(
            NAME,
            format!(
                "the signed summary disagrees with the transcript: {}",
                difference(&expected, &summary)
            ),
        );
    }
    if ok {
        report.pass(
            NAME,
            "signed by both nodes, and equal to the summary rebuilt from the chains (query, keys, sizes, closings, chain heads, disclosures)",
        );
    }
    Some(summary)
}

/// Names the first field where the signed summary and the rebuilt one differ.
fn difference(expected: &SessionSummary, got: &SessionSummary) -> String {
    let fields: [(&str, bool); 9] = [
        ("job id", expected.job_id == got.job_id),
        ("session id", expected.session_id == got.session_id),
        ("query spec hash", expected.spec_sha256 == got.spec_sha256),
        ("terms digest", expected.terms == got.terms),
        (
            "receiver's part (keys, size or closing)",
            expected.receiver == got.receiver,
        ),
        (
            "sender's part (keys, size or closing)",
            expected.sender == got.sender,
        ),
        (
            "receiver -> sender chain head",
            expected.receiver_to_sender == got.receiver_to_sender,
        ),
        (
            "sender -> receiver chain head",
            expected.sender_to_receiver == got.sender_to_receiver,
        ),
        ("disclosure manifest", expected.disclosures == got.disclosures),
    ];
    fields
        .iter()
        .find(|(_, same)| !same)
        .map(|(name, _)| format!("the {name} differs"))
        .unwrap_or_else(|| "the query kind differs".into())
}

fn signed(key: &VerifyingKey, summary: &[u8], signature: &[u8]) -> bool {
    Signature::from_slice(signature)
        .map(|s| key.verify_strict(&signing_bytes(summary), &s).is_ok())
        .unwrap_or(false)
}

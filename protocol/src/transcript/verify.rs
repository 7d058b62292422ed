//! The auditor's check of one node's transcript file, with no secret and no
//! data: every envelope, both chains (`chain`), the planner's request
//! (`requester`), the co-signed summary against what the chains show
//! (`cosigned`), the node's result commitment and its masking attestations
//! (`commitments`).

use ed25519_dalek::VerifyingKey;

use crate::{
    session::stream::Terms,
    transcript::summary::{describe_query, query_kind},
    wire::{TranscriptRecord, transcript_record::Record},
};

mod chain;
mod commitments;
mod cosigned;
mod report;
mod requester;

use chain::Direction;
use commitments::{check_attestations, check_release};
use cosigned::{check_summary, fill_parties};
pub use report::{AuditReport, Check, CheckStatus, PartyReport, RequesterReport};
use requester::check_requester;

fn key_of(bytes: &[u8]) -> Option<VerifyingKey> {
    VerifyingKey::from_bytes(bytes.try_into().ok()?).ok()
}

/// Verifies a parsed transcript file. Never panics on any input: every
/// problem becomes a failed check that names the record, message and step.
pub fn verify(records: &[TranscriptRecord]) -> AuditReport {
    let mut report = AuditReport::default();
    let head = match records.first().and_then(|r| r.record.as_ref()) {
        Some(Record::Head(h)) if h.format == super::FORMAT => h.clone(),
        Some(Record::Head(h)) => {
            report.fail(
                "file",
                format!(
                    "transcript format {} is not known to this tool (expects {})",
                    h.format,
                    super::FORMAT
                ),
            );
            return report.finish();
        }
        _ => {
            report.fail("file", "the first record is not a transcript head");
            return report.finish();
        }
    };
    report.job_id = head.job_id.clone();
    report.session_id = head.session_id.clone();
    report.kept_by = head.node.clone();
    let spec = head.spec.clone().unwrap_or_default();
    report.query_kind = query_kind(&spec).to_string();
    report.query = describe_query(&spec);
    check_requester(&mut report, &head, &spec);
    let Some(terms) = <Terms>::try_from(head.terms.as_slice()).ok() else {
        report.fail("file", "the head's terms digest is not 32 bytes");
        return report.finish();
    };
    let (Some(node_key), Some(peer_key)) = (key_of(&head.node_key), key_of(&head.peer_key)) else {
        report.fail(
            "identity keys",
            "the head's identity keys are not valid Ed25519 keys",
        );
        return report.finish();
    };
    let keeper_is_receiver = match head.role.as_str() {
        "receiver" => true,
        "sender" => false,
        other => {
            report.fail("file", format!("the head names an unknown role '{other}'"));
            return report.finish();
        }
    };
    let (r_name, s_name, r_key, s_key) = if keeper_is_receiver {
        (&head.node, &head.peer, node_key, peer_key)
    } else {
        (&head.peer, &head.node, peer_key, node_key)
    };
    let mut r2s = Direction::new(&head.session_id, r_name, s_name, r_key);
    let mut s2r = Direction::new(&head.session_id, s_name, r_name, s_key);

    let mut attestations = Vec::new();
    let mut releases = Vec::new();
    let mut summaries = Vec::new();
    for (index, rec) in records.iter().enumerate().skip(1) {
        match &rec.record {
            Some(Record::Message(m)) => {
                let envelope = m.sealed.as_ref().and_then(|s| s.envelope.as_ref());
                let (from, to) = envelope
                    .map(|e| (e.from.as_str(), e.to.as_str()))
                    .unwrap_or(("?", "?"));
                let direction = if (from, to) == (r_name.as_str(), s_name.as_str()) {
                    &mut r2s
                } else if (from, to) == (s_name.as_str(), r_name.as_str()) {
                    &mut s2r
                } else {
                    report.fail(
                        "messages",
                        format!("record {index}: a message from '{from}' to '{to}', who are not this session's parties"),
                    );
                    continue;
                };
                if direction.failed {
                    continue;
                }
                if let Err(e) = direction.accept(index, m) {
                    direction.failed = true;
                    let name = format!("chain {}", direction.name);
                    report.fail(
                        &name,
                        format!("{e}; later messages of this direction were not checked"),
                    );
                }
            }
            Some(Record::Attestation(a)) => attestations.push((index, a.clone())),
            Some(Record::Release(r)) => releases.push(r.clone()),
            Some(Record::Summary(s)) => summaries.push(s.clone()),
            Some(Record::Head(_)) => report.fail("file", format!("record {index}: a second transcript head")),
            None => report.fail("file", format!("record {index}: an empty record")),
        }
    }
    for d in [&r2s, &s2r] {
        if d.failed {
            continue;
        }
        let elided = if d.elided > 0 {
            format!(
                " ({} ciphertext payloads not kept; their envelopes verified)",
                d.elided
            )
        } else {
            String::new()
        };
        match (&d.closing, &d.cosign) {
            (Some(_), Some(_)) => report.pass(
                &format!("chain {}", d.name),
                format!(
                    "{} messages, each signed, in order, hash-linked and with its payload intact{elided}",
                    d.reader.count()
                ),
            ),
            (None, _) => report.fail(
                &format!("chain {}", d.name),
                format!(
                    "ends after {} messages without a closing: messages were dropped or the session did not finish",
                    d.reader.count()
                ),
            ),
            (Some(_), None) => report.fail(
                &format!("chain {}", d.name),
                "ends without its co-signature: the last message was dropped or the session did not finish".to_string(),
            ),
        }
    }
    for (d, role) in [(&r2s, "receiver"), (&s2r, "sender")] {
        if let Some(announced) = &d.announce
            && announced.terms.as_slice() != terms.as_slice()
        {
            report.fail(
                "terms",
                format!("the {role}'s announcement carries other terms than the file's head: the two saw different queries"),
            );
        }
    }

    let summary = check_summary(
        &mut report,
        &head,
        &spec,
        &terms,
        (&r2s, r_key),
        (&s2r, s_key),
        &summaries,
    );
    if let Some(summary) = &summary {
        fill_parties(&mut report, summary, (&r2s, &s2r));
    }
    let keeper = if keeper_is_receiver { &r2s } else { &s2r };
    let release = check_release(&mut report, &head.node, keeper, &releases);
    check_attestations(
        &mut report,
        &head.node,
        keeper_is_receiver,
        keeper,
        (&r2s, &s2r),
        &terms,
        &attestations,
        release.as_ref(),
    );
    report.finish()
}

//! The auditor's check of one node's transcript file, with no secret and no
//! data: every envelope, both chains, the co-signed summary against what the
//! chains show, the node's result commitment, and its masking attestations.

use std::collections::HashSet;

use ed25519_dalek::{Signature, VerifyingKey};
use prost::Message;
use serde::Serialize;

use super::{
    recorder::{build_summary, elide, from_wire, signing_bytes},
    summary::{describe_query, query_kind, result_commitment, step_of},
};
use crate::{
    crypto::dleq::{self, Proof},
    crypto::group::{PointBytes, split_points},
    session::attest,
    session::stream::Terms,
    transcript::envelope::ChainReader,
    wire::{
        self, ChainHead, Closing, CosignedSummary, MaskedList, OwnRelease, ProtocolMessage, SessionSummary,
        SummaryParty, TranscriptHead, TranscriptRecord, protocol_message::Kind, transcript_record::Record,
    },
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Passed,
    Failed,
    /// Not possible with this copy (a shared copy holds no attestations).
    NotChecked,
}

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub status: CheckStatus,
    pub detail: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PartyReport {
    pub node: String,
    pub role: String,
    pub identity_key: String,
    pub session_key: String,
    pub set_size: u64,
    pub messages_sent: u64,
    pub policy_checks: Vec<String>,
    pub epsilon: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct DisclosureReport {
    pub party: String,
    pub learns: String,
}

/// Who asked for the job, as the planner signed it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RequesterReport {
    pub principal: String,
    pub organisation: String,
    pub workspace: String,
    pub public_key: String,
    pub coordinator_id: String,
    pub signed_unix_ms: i64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct AuditReport {
    /// True when no check failed.
    pub verified: bool,
    pub job_id: String,
    pub session_id: String,
    /// The node whose file this is.
    pub kept_by: String,
    pub query_kind: String,
    pub query: String,
    pub parties: Vec<PartyReport>,
    pub disclosures: Vec<DisclosureReport>,
    /// The planner who asked, when the file records one.
    pub requester: Option<RequesterReport>,
    pub checks: Vec<Check>,
}

impl AuditReport {
    fn pass(&mut self, name: &str, detail: impl Into<String>) {
        self.add(name, CheckStatus::Passed, detail.into());
    }
    fn fail(&mut self, name: &str, detail: impl Into<String>) {
        self.add(name, CheckStatus::Failed, detail.into());
    }
    fn add(&mut self, name: &str, status: CheckStatus, detail: String) {
        self.checks.push(Check {
            name: name.to_string(),
            status,
            detail,
        });
    }
    fn finish(mut self) -> Self {
        self.verified = !self.checks.iter().any(|c| c.status == CheckStatus::Failed);
        self
    }
}

/// One direction of the session as the file shows it.
struct Direction {
    name: String,
    reader: ChainReader,
    failed: bool,
    elided: u64,
    announce: Option<wire::Announce>,
    closing: Option<(Closing, ChainHead)>,
    cosign: Option<Vec<u8>>,
    after_cosign: bool,
    /// Lists U, V, W, Z, concatenated in chain order.
    lists: [Vec<PointBytes>; 4],
}

fn list_slot(list: i32) -> Option<usize> {
    match MaskedList::try_from(list) {
        Ok(MaskedList::U) => Some(0),
        Ok(MaskedList::V) => Some(1),
        Ok(MaskedList::W) => Some(2),
        Ok(MaskedList::Z) => Some(3),
        _ => None,
    }
}

impl Direction {
    fn new(session: &str, from: &str, to: &str, key: VerifyingKey) -> Self {
        Self {
            name: format!("{from} -> {to}"),
            reader: ChainReader::new(session, from, to, key),
            failed: false,
            elided: 0,
            announce: None,
            closing: None,
            cosign: None,
            after_cosign: false,
            lists: Default::default(),
        }
    }

    /// Checks one message; the first failure stops this direction (later
    /// messages cannot be trusted to follow a broken chain).
    fn accept(&mut self, index: usize, m: &wire::TranscriptMessage) -> Result<(), String> {
        let at = |e: String| format!("record {index}: {e}");
        let sealed = m
            .sealed
            .as_ref()
            .ok_or_else(|| at("a message without its envelope".into()))?;
        let envelope = sealed
            .envelope
            .as_ref()
            .ok_or_else(|| at("a message without its envelope".into()))?;
        let header = from_wire(envelope).ok_or_else(|| at("an envelope field of the wrong length".into()))?;
        let (seq, label) = (header.header.seq, header.header.step.clone());
        if m.payload_elided {
            self.reader.open_elided(&header).map_err(|e| at(e.to_string()))?;
            self.elided += 1;
            return Ok(());
        }
        self.reader
            .open(&header, &sealed.payload)
            .map_err(|e| at(e.to_string()))?;
        let msg = ProtocolMessage::decode(sealed.payload.as_slice()).map_err(|_| {
            at(format!(
                "message {seq} ({label}): the payload is not a protocol message"
            ))
        })?;
        let actual = step_of(&msg);
        if actual != label {
            return Err(at(format!(
                "message {seq} is labelled '{label}' but carries '{actual}'"
            )));
        }
        if elide(&msg) {
            return Ok(());
        }
        if self.closing.is_some() && !matches!(msg.kind, Some(Kind::Cosign(_))) {
            return Err(at(format!(
                "message {seq} ({label}) follows this side's closing, after which only its co-signature may come"
            )));
        }
        if self.after_cosign {
            return Err(at(format!("message {seq} ({label}) follows the co-signature")));
        }
        match msg.kind {
            Some(Kind::Announce(a)) if self.announce.is_none() => {
                self.announce = Some(a);
            }
            Some(Kind::Points(p)) if msg.lane == 0 => {
                if let (Some(slot), Some(points)) = (list_slot(p.list), split_points(&p.points)) {
                    self.lists[slot].extend_from_slice(&points);
                }
            }
            Some(Kind::Closing(c)) => {
                if self.closing.is_some() {
                    return Err(at(format!("message {seq}: a second closing")));
                }
                let head = ChainHead {
                    messages: seq + 1,
                    head: self.reader.head().to_vec(),
                };
                self.closing = Some((c, head));
            }
            Some(Kind::Cosign(c)) => {
                if self.closing.is_none() {
                    return Err(at(format!(
                        "message {seq}: a co-signature before this side's closing"
                    )));
                }
                self.cosign = Some(c.signature);
                self.after_cosign = true;
            }
            _ => {}
        }
        Ok(())
    }
}

fn key_of(bytes: &[u8]) -> Option<VerifyingKey> {
    VerifyingKey::from_bytes(bytes.try_into().ok()?).ok()
}

fn signed(key: &VerifyingKey, summary: &[u8], signature: &[u8]) -> bool {
    Signature::from_slice(signature)
        .map(|s| key.verify_strict(&signing_bytes(summary), &s).is_ok())
        .unwrap_or(false)
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

/// The planner's signature over the request that created the job, and that
/// the request's query is the one the session ran. (The terms digest both
/// nodes announced binds the requester too: a file whose head names another
/// planner fails the co-signed summary.)
fn check_requester(report: &mut AuditReport, head: &TranscriptHead, spec: &wire::QuerySpec) {
    const NAME: &str = "planner's request";
    let Some(r) = &head.requester else {
        report.add(
            NAME,
            CheckStatus::NotChecked,
            "the file names no planner (a job run before planners signed their requests)".into(),
        );
        return;
    };
    report.requester = Some(RequesterReport {
        principal: r.principal.clone(),
        organisation: r.organisation.clone(),
        workspace: r.workspace.clone(),
        public_key: hex::encode(&r.public_key),
        coordinator_id: r.coordinator_id.clone(),
        signed_unix_ms: r.timestamp_ms,
    });
    let signed_spec = wire::SubmitQueryRequest::decode(r.request.as_slice())
        .ok()
        .and_then(|q| q.spec)
        .map(|q| q.encode_to_vec());
    match crate::access::request::verify_requester(r) {
        Err(e) => report.fail(NAME, format!("planner '{}': {e}", r.principal)),
        Ok(()) if signed_spec != Some(spec.encode_to_vec()) => report.fail(
            NAME,
            format!("the session ran another query than the one planner '{}' signed", r.principal),
        ),
        Ok(()) => report.pass(
            NAME,
            format!(
                "planner '{}' of organisation '{}' (workspace '{}') signed this query for coordinator '{}' with key {}; check the key against the coordinator's registry of that date",
                r.principal,
                r.organisation,
                r.workspace,
                r.coordinator_id,
                hex::encode(&r.public_key)
            ),
        ),
    }
}

fn fill_parties(report: &mut AuditReport, summary: &SessionSummary, (r2s, s2r): (&Direction, &Direction)) {
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
fn check_summary(
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

impl Direction {
    fn reader_from(&self) -> String {
        self.name.split(" -> ").next().unwrap_or_default().to_string()
    }
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

fn check_release(
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

#[allow(clippy::too_many_arguments)]
fn check_attestations(
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
        let result: Result<String, String> = match (a.step.as_str(), keeper_is_receiver) {
            (attest::SENDER_STEP, false) => dleq::verify_contained_hinted(
                &context, &key, u, &outputs, v, width, hints, &proof,
            )
            .map(|()| {
                format!(
                    "{at}: V holds the sender's committed key times U ({} points) and {width} dummy answers",
                    u.len()
                )
            })
            .map_err(|e| e.to_string()),
            (attest::ACTIVATION_SENDER_STEP, false) => dleq::verify_aligned_hinted(
                &context, &key, u, &outputs, hints, &proof,
            )
            .map_err(|e| e.to_string())
            .and_then(|()| {
                if outputs == *v {
                    Ok(format!(
                        "{at}: V, sent in U's order, is the sender's committed key times U ({} points)",
                        u.len()
                    ))
                } else {
                    Err("the proven list is not the V the chain carries".to_string())
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
                    Err(e) => Err(e.to_string()),
                    Ok(()) => {
                        let matched = recount(v, &outputs);
                        let proved = format!(
                            "{at}: r*W is the receiver's committed key times W ({} points)",
                            w.len()
                        );
                        match release.and_then(|r| r.exact_count) {
                            Some(count) if count != matched => Err(format!(
                                "the chain gives |V ∩ r*W| = {matched}, but node '{node}' recorded an exact count of {count}"
                            )),
                            Some(_) => Ok(format!(
                                "{proved}, and |V ∩ r*W| = {matched} is the count it released before noise"
                            )),
                            None => Ok(format!("{proved}; |V ∩ r*W| = {matched}")),
                        }
                    }
                }
            }
            (step, _) => Err(format!(
                "step '{step}' is not a step node '{node}' masks in its role"
            )),
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

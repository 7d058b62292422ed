//! What both nodes put in the session summary, computed alike on both sides
//! and again by the auditor: step labels, the result commitment, the query's
//! kind and description, and the disclosure manifest.

use sha2::{Digest, Sha256};

use crate::wire::{
    CipherList, Disclosure, Filter, MaskedList, ProtocolMessage, QuerySpec, filter::Test,
    protocol_message::Kind, query_spec::Query,
};

const RESULT_TAG: &[u8] = b"JOINTLY-V1-RESULT";
pub(crate) const SUMMARY_TAG: &[u8] = b"JOINTLY-V1-SUMMARY";

/// The step label an envelope carries for a message: derived from the
/// message itself, so the auditor can check that labels tell the truth.
pub fn step_of(msg: &ProtocolMessage) -> String {
    let list = |l: i32| match MaskedList::try_from(l) {
        Ok(MaskedList::U) => "O.1",
        Ok(MaskedList::V) => "O.2",
        Ok(MaskedList::W) => "O.3",
        Ok(MaskedList::Z) => "A.Z",
        _ => "unknown list",
    };
    let step = match &msg.kind {
        Some(Kind::Announce(_)) => "announce",
        Some(Kind::Points(p)) => list(p.list),
        Some(Kind::ListEnd(e)) => list(e.list),
        Some(Kind::KeyOffer(_)) => "B.keys",
        Some(Kind::Batches(_)) => "B.1",
        Some(Kind::Ciphers(c)) => match CipherList::try_from(c.list) {
            Ok(CipherList::Payloads) => "B.2",
            Ok(CipherList::Release) => "B.4",
            _ => "unknown ciphers",
        },
        Some(Kind::Closing(_)) => "close",
        Some(Kind::Cosign(_)) => "cosign",
        None => "empty",
    };
    if msg.lane == 0 {
        step.to_string()
    } else {
        format!("{step} (lane {})", msg.lane)
    }
}

/// Binds a node's report to the coordinator without showing it to the peer:
/// the salt stops anyone from confirming a guessed count.
pub fn result_commitment(salt: &[u8], report: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(RESULT_TAG);
    h.update((salt.len() as u64).to_be_bytes());
    h.update(salt);
    h.update(report);
    h.finalize().into()
}

pub(crate) fn spec_sha256(spec: &QuerySpec) -> [u8; 32] {
    use prost::Message;
    Sha256::digest(spec.encode_to_vec()).into()
}

pub fn query_kind(spec: &QuerySpec) -> &'static str {
    match spec.query {
        Some(Query::Overlap(_)) => "overlap",
        Some(Query::Breakdown(_)) => "breakdown",
        Some(Query::Segment(_)) => "segment",
        Some(Query::Attribution(_)) => "attribution",
        Some(Query::Lift(_)) => "lift",
        None => "unknown",
    }
}

fn filters(side: &str, list: &[Filter]) -> Vec<String> {
    list.iter()
        .map(|f| {
            let test = match &f.test {
                Some(Test::Equals(v)) => format!("= {v:?}"),
                Some(Test::OneOf(set)) => format!("in {:?}", set.values),
                Some(Test::Range(r)) => match (r.min, r.max) {
                    (Some(a), Some(b)) => format!("between {a} and {b}"),
                    (Some(a), None) => format!(">= {a}"),
                    (None, Some(b)) => format!("<= {b}"),
                    (None, None) => "any value".into(),
                },
                None => "(no test)".into(),
            };
            format!("{side}.{} {test}", f.column)
        })
        .collect()
}

/// " where left.a = .. and right.b .." for the filters of both sides, or nothing.
fn where_clause(left: &[Filter], right: &[Filter]) -> String {
    let all = [filters("left", left), filters("right", right)].concat();
    if all.is_empty() {
        String::new()
    } else {
        format!(" where {}", all.join(" and "))
    }
}

/// The question in one line, as the auditor reads it.
pub fn describe_query(spec: &QuerySpec) -> String {
    let refer = |d: &Option<crate::wire::DatasetRef>| {
        d.as_ref()
            .map(|d| format!("{}:{}", d.node, d.dataset))
            .unwrap_or_else(|| "?".into())
    };
    let mut text = match &spec.query {
        Some(Query::Overlap(q)) => format!("overlap of {} with {}", refer(&q.left), refer(&q.right)),
        Some(Query::Segment(q)) => {
            let mut t = format!("segment of {} with {}", refer(&q.left), refer(&q.right));
            t += &where_clause(&q.left_filters, &q.right_filters);
            if !q.activate.is_empty() {
                t += &format!(", members activated for '{}'", q.activate);
            }
            t
        }
        Some(Query::Breakdown(q)) => {
            let mut t = format!("breakdown of {} with {}", refer(&q.left), refer(&q.right));
            let groups: Vec<String> = q
                .left_group_by
                .iter()
                .map(|c| format!("left.{c}"))
                .chain(q.right_group_by.iter().map(|c| format!("right.{c}")))
                .collect();
            if !groups.is_empty() {
                t += &format!(" by {}", groups.join(", "));
            }
            let measures: Vec<String> = q
                .measures
                .iter()
                .map(|m| {
                    let side = if m.side == crate::wire::Side::Right as i32 {
                        "right"
                    } else {
                        "left"
                    };
                    format!("sum({side}.{})", m.column)
                })
                .collect();
            if !measures.is_empty() {
                t += &format!(", measuring {}", measures.join(", "));
            }
            t += &where_clause(&q.left_filters, &q.right_filters);
            t
        }
        Some(Query::Attribution(q)) => {
            let model =
                crate::queries::attribution_query::model(q).map_or_else(|_| "?".into(), |m| m.to_string());
            format!(
                "{model} attribution of {} conversions to {} exposures, {}-day lookback, {}{}",
                refer(&q.conversions),
                refer(&q.exposures),
                q.lookback_days,
                crate::queries::attribution_query::describe_period(q.period.as_ref()),
                if q.by_campaign {
                    ", by channel and campaign"
                } else {
                    ", by channel"
                }
            )
        }
        Some(Query::Lift(q)) => {
            let customers = refer(&q.customers);
            format!(
                "conversion lift of {} ({}: '{}' vs '{}') on {customers} customers and their '{}' conversions, {}, value clipped at {} CNY",
                refer(&q.groups),
                q.group_column,
                q.test_value,
                q.control_value,
                q.conversions,
                crate::queries::attribution_query::describe_period(q.period.as_ref()),
                q.value_clip
            )
        }
        None => "an unknown query".into(),
    };
    match &spec.privacy {
        Some(p) if p.exact => text += "; exact (no noise)",
        Some(p) => text += &format!("; epsilon {}", p.epsilon),
        None => text += "; no privacy terms",
    }
    text
}

/// Who learns what in a session, from the query and the announced list
/// lengths. Both nodes derive it alike and co-sign it; the auditor derives it
/// again. Outside exact runs every length and match count a node sees is
/// noised by its owner (README, "Leakage").
pub(crate) fn disclosures(
    spec: &QuerySpec,
    (receiver, receiver_size): (&str, u64),
    (sender, sender_size): (&str, u64),
) -> Vec<Disclosure> {
    let exact = spec.privacy.as_ref().is_none_or(|p| p.exact);
    let release = match &spec.privacy {
        Some(p) if !p.exact => format!("noised (epsilon {}) and thresholded", p.epsilon),
        _ => "exact, thresholded".to_string(),
    };
    // What a length or a match count is, in words.
    let (length, matches) = if exact {
        ("exact", "exactly")
    } else {
        (
            "padded with its owner's random points",
            "plus the sender's dummy matches (noise the sender drew)",
        )
    };
    let d = |party: &str, learns: String| Disclosure {
        party: party.to_string(),
        learns,
    };
    let coordinator_sizes = format!("both list lengths ({receiver_size}, {sender_size}), {length}");
    match &spec.query {
        Some(Query::Overlap(_)) => vec![
            d(
                receiver,
                format!(
                    "the intersection size {matches}, and the sender's list length ({sender_size}), {length}"
                ),
            ),
            d(
                sender,
                format!("the receiver's list length ({receiver_size}), {length}"),
            ),
            d(
                "coordinator",
                format!("{coordinator_sizes}, and the receiver's count with its noise share"),
            ),
            d("planner", format!("the intersection size, {release}")),
        ],
        Some(Query::Segment(q)) => {
            let mut v = Vec::new();
            if q.activate.is_empty() {
                v.push(d(
                    receiver,
                    format!(
                        "the segment size {matches}, and the sender's filtered list length ({sender_size}), {length}"
                    ),
                ));
                v.push(d(
                    sender,
                    format!("the receiver's filtered list length ({receiver_size}), {length}"),
                ));
            } else {
                v.push(d(
                    receiver,
                    format!(
                        "which of its own filtered rows are in the segment (the activation), and the sender's filtered list length ({sender_size}), {length}"
                    ),
                ));
                v.push(d(
                    sender,
                    format!(
                        "the segment size {}, and the receiver's filtered list length ({receiver_size}), {length}",
                        if exact {
                            "exactly"
                        } else {
                            "plus the receiver's dummy matches (noise the receiver drew)"
                        }
                    ),
                ));
                v.push(d(
                    &q.activate,
                    "the identifiers of its own customers in the segment (its members file)".into(),
                ));
            }
            v.push(d(
                "coordinator",
                format!("{coordinator_sizes}, and the noised segment size"),
            ));
            v.push(d("planner", format!("the segment size, {release}")));
            v
        }
        Some(Query::Breakdown(_)) => vec![
            d(
                receiver,
                format!(
                    "per batch of its own rows how many matched, {matches}; the sender's list length ({sender_size}), {length}; cell values only encrypted under both nodes' keys"
                ),
            ),
            d(
                sender,
                format!(
                    "the receiver's list length ({receiver_size}) and batch sizes, {length}; cell values only encrypted"
                ),
            ),
            d(
                "coordinator",
                format!("{coordinator_sizes}, and every cell with both noise shares added (it decrypts)"),
            ),
            d("planner", format!("the cells' counts, sums and means, {release}")),
        ],
        Some(Query::Attribution(_)) => vec![
            d(
                receiver,
                format!(
                    "per window and value bucket how many of its converters the sender exposed, {matches}; the sender's per-window list length ({sender_size} in all), {length}; credits only encrypted"
                ),
            ),
            d(
                sender,
                format!(
                    "the receiver's conversion batch sizes per window and value bucket ({receiver_size} in all), {length}; credits only encrypted"
                ),
            ),
            d(
                "coordinator",
                format!(
                    "{coordinator_sizes}; every window's credits per value bucket and channel with both noise shares added (it decrypts), and the receiver's noised conversion count"
                ),
            ),
            d(
                "planner",
                format!("credits and value per channel, conversions, attributed and unattributed, {release}"),
            ),
        ],
        Some(Query::Lift(_)) => vec![
            d(
                receiver,
                format!(
                    "how many of its test and control persons are the sender's customers, {matches}; the sender's list length ({sender_size}), {length}; conversions only encrypted"
                ),
            ),
            d(
                sender,
                format!("the receiver's test and control batch sizes ({receiver_size} in all), {length}"),
            ),
            d(
                "coordinator",
                format!(
                    "{coordinator_sizes}; per arm the customers, converters and value with both noise shares added (it decrypts)"
                ),
            ),
            d(
                "planner",
                format!(
                    "per arm the customers, converters and value, and the lift with its interval, {release}"
                ),
            ),
        ],
        None => Vec::new(),
    }
}

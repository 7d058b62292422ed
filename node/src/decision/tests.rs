use std::sync::Arc;

use ed25519_dalek::SigningKey;
use jointly_protocol::{
    access::request::{self, RequestHeader, SUBMIT_QUERY},
    ids::idlist::IdList,
    wire::{DatasetRef, OverlapQuery, Privacy, QuerySpec, SubmitQueryRequest},
};
use prost::Message;

use super::*;
use crate::{
    attributes::Attributes,
    config::{BudgetConfig, EventKind, PlannerRule},
    dataset::LoadReport,
    period::Period,
};

fn alice() -> SigningKey {
    SigningKey::from_bytes(&[5; 32])
}

/// The requester a coordinator puts in an offer for alice of the bank,
/// signed by `key` over the offer's own query `age_ms` ago.
fn requester(offer: &JobOffer, key: &SigningKey, age_ms: i64) -> Requester {
    let request = SubmitQueryRequest {
        spec: offer.spec.clone(),
        workspace: "campaigns".into(),
    }
    .encode_to_vec();
    let nonce = [9u8; 16];
    let timestamp_ms = now_ms() - age_ms;
    let header = RequestHeader {
        coordinator_id: "coord",
        method: SUBMIT_QUERY,
        principal: "alice",
        timestamp_ms,
        nonce: &nonce,
    };
    Requester {
        principal: "alice".into(),
        organisation: "bank".into(),
        role: "planner".into(),
        workspace: "campaigns".into(),
        public_key: key.verifying_key().to_bytes().to_vec(),
        signature: request::sign(key, &header, &request).to_vec(),
        request,
        timestamp_ms,
        nonce: nonce.to_vec(),
        coordinator_id: "coord".into(),
    }
}

fn signed(mut offer: JobOffer) -> JobOffer {
    offer.requester = Some(requester(&offer, &alice(), 0));
    offer
}

fn bank_planners() -> Vec<PlannerRule> {
    vec![PlannerRule {
        datasets: vec!["*".into()],
        planners: vec![],
        organisations: vec!["bank".into()],
        kinds: vec![],
    }]
}

fn limits() -> NodeLimits {
    NodeLimits::default()
}

fn at(node: &str, dataset: &str) -> Option<DatasetRef> {
    Some(DatasetRef {
        node: node.into(),
        dataset: dataset.into(),
    })
}

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
                left: at("bank", "customers"),
                right: at("partner", "users"),
            })),
            privacy: Some(privacy),
        }),
        role: Role::Receiver.into(),
        dataset: "customers".into(),
        peer_node: peer.into(),
        peer_id_kind: kind.into(),
        peer_groups: 0,
        peer_measure_bounds: vec![],
        peer_channels: 0,
        peer_campaigns: 0,
        requester: None,
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
        planners: bank_planners(),
        ..Policy::default()
    };
    let datasets = BTreeMap::from([("customers".to_string(), dataset(IdKind::Phone))]);
    let (no_datasets, events) = (BTreeMap::new(), BTreeMap::new());
    let d = Holdings {
        datasets: &datasets,
        events: &events,
    };
    let none = Holdings {
        datasets: &no_datasets,
        events: &events,
    };
    let ok = decide(
        "bank",
        &policy,
        &limits(),
        &signed(offer("partner", "sha256_phone", true)),
        d,
        0,
    )
    .expect("accept");
    assert_eq!(ok.hash_kind, IdKind::Sha256Phone);
    let e = decide(
        "bank",
        &policy,
        &limits(),
        &signed(offer("stranger", "phone", true)),
        d,
        0,
    )
    .expect_err("partner");
    assert!(
        matches!(&e, Refusal::PartnerNotAllowed { partner, .. } if partner == "stranger"),
        "{e}"
    );
    let e = decide(
        "bank",
        &policy,
        &limits(),
        &signed(offer("partner", "email", true)),
        d,
        0,
    )
    .expect_err("kinds");
    assert!(
        matches!(
            e,
            Refusal::KindsCannotMatch {
                own: IdKind::Phone,
                peer: IdKind::Email,
                ..
            }
        ),
        "{e}"
    );
    let e = decide(
        "bank",
        &policy,
        &limits(),
        &signed(offer("partner", "phone", true)),
        none,
        0,
    )
    .expect_err("dataset");
    assert!(
        matches!(&e, Refusal::NoDataset { dataset, .. } if dataset == "customers"),
        "{e}"
    );
    let e = decide(
        "bank",
        &policy,
        &limits(),
        &signed(offer("partner", "phone", true)),
        d,
        4,
    )
    .expect_err("busy");
    assert!(
        matches!(
            e,
            Refusal::Busy {
                running: 4,
                max: 4,
                ..
            }
        ),
        "{e}"
    );
    let noised = decide(
        "bank",
        &policy,
        &limits(),
        &signed(offer("partner", "phone", false)),
        d,
        0,
    )
    .expect("noised");
    assert!(!noised.noise.exact && noised.noise.sigma() > 0.5);
    assert_eq!(noised.noise.charges[0].partner, "partner");
    assert_eq!(noised.noise.charges[0].budget_partner, "*");
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
        let e = decide("bank", &policy, &limits(), &signed(o), d, 0).expect_err("epsilon");
        let above = epsilon == 1.5;
        assert!(
            matches!(e, Refusal::EpsilonAboveMax { .. } if above)
                || matches!(e, Refusal::InvalidEpsilon { .. } if !above),
            "{e}"
        );
    }
    let strict = Policy {
        allow_exact: false,
        ..policy.clone()
    };
    let e = decide(
        "bank",
        &strict,
        &limits(),
        &signed(offer("partner", "phone", true)),
        d,
        0,
    )
    .expect_err("exact");
    assert!(matches!(e, Refusal::ExactNotAllowed { .. }), "{e}");
    let no_budget = Policy {
        budgets: vec![],
        ..policy
    };
    let e = decide(
        "bank",
        &no_budget,
        &limits(),
        &signed(offer("partner", "phone", false)),
        d,
        0,
    )
    .expect_err("budget");
    assert!(
        matches!(&e, Refusal::NoBudget { partner, .. } if partner == "partner"),
        "{e}"
    );
}

fn event_table(kind: EventKind) -> LoadedEvents {
    use crate::{
        config::EventsConfig,
        events::{Conversions, EventReport, Exposures},
    };
    let exposures = kind == EventKind::Exposures;
    let config = EventsConfig {
        name: kind.label().into(),
        kind,
        path: "events.csv".into(),
        format: None,
        id_column: "phone".into(),
        id_kind: IdKind::Phone,
        ts_column: "ts".into(),
        channel_column: exposures.then(|| "channel".into()),
        campaign_column: exposures.then(|| "campaign".into()),
        channels: if exposures {
            vec!["sms".into(), "app".into()]
        } else {
            vec![]
        },
        campaigns: if exposures { vec!["C1".into()] } else { vec![] },
        value_column: (!exposures).then(|| "value".into()),
    };
    let ids = Arc::new(IdList::from_normalized(IdKind::Phone, vec![]));
    let report = EventReport::default();
    if exposures {
        LoadedEvents::Exposures {
            config,
            data: Exposures {
                ids,
                touches: vec![],
                report,
            },
        }
    } else {
        LoadedEvents::Conversions {
            config,
            data: Conversions {
                ids,
                rows: vec![],
                report,
            },
        }
    }
}

fn attribution_offer(role: Role, dataset: &str, channels: u32) -> JobOffer {
    use jointly_protocol::wire::{AttributionModel, AttributionQuery, ConversionPeriod, ConversionWindow};
    let r = |node: &str, dataset: &str| {
        Some(DatasetRef {
            node: node.into(),
            dataset: dataset.into(),
        })
    };
    JobOffer {
        spec: Some(QuerySpec {
            query: Some(Query::Attribution(AttributionQuery {
                conversions: r("bank", "conversions"),
                exposures: r("partner", "exposures"),
                model: AttributionModel::Linear.into(),
                lookback_days: 7,
                period: Some(ConversionPeriod {
                    start: 0,
                    end: 3 * 86_400,
                    window: ConversionWindow::Day.into(),
                    max_conversions: 3,
                }),
                value_clip: 20_000,
                ..Default::default()
            })),
            privacy: Some(Privacy {
                epsilon: 1.0,
                exact: false,
            }),
        }),
        role: role.into(),
        dataset: dataset.into(),
        peer_channels: channels,
        peer_campaigns: 1,
        ..offer("partner", "phone", false)
    }
}

#[test]
fn attribution_decisions() {
    let policy = |peer: &str, dataset: &str| Policy {
        partners: vec![peer.into()],
        budgets: vec![BudgetConfig {
            dataset: dataset.into(),
            partner: "*".into(),
            epsilon: 4.0,
            period: Period::Month,
        }],
        planners: bank_planners(),
        ..Policy::default()
    };
    let datasets = BTreeMap::new();
    let events = BTreeMap::from([
        ("exposures".to_string(), event_table(EventKind::Exposures)),
        ("conversions".to_string(), event_table(EventKind::Conversions)),
    ]);
    let h = Holdings {
        datasets: &datasets,
        events: &events,
    };
    let partner_policy = policy("bank", "exposures");
    let mut offer = attribution_offer(Role::Sender, "exposures", 2);
    offer.peer_node = "bank".into();
    // Both nodes get the one request the planner signed.
    let offer = signed(offer);
    let ok = decide("partner", &partner_policy, &limits(), &offer, h, 0).expect("partner accepts");
    let Work::Attribution { plan } = &ok.work else {
        panic!("not attribution work")
    };
    assert_eq!((plan.slots(), plan.windows()), (2, 3));
    // The pooled release: credits and weighted credits per slot, no count.
    assert_eq!(ok.noise.shares().len(), 2 * 2);
    let misstated = JobOffer {
        peer_channels: 3,
        ..offer.clone()
    };
    let e = decide("partner", &partner_policy, &limits(), &misstated, h, 0).expect_err("misstated");
    assert!(matches!(e, Refusal::ChannelsMisstated { .. }), "{e}");
    let wrong_role = JobOffer {
        role: Role::Receiver.into(),
        ..offer.clone()
    };
    let e = decide("partner", &partner_policy, &limits(), &wrong_role, h, 0).expect_err("role");
    assert!(matches!(e, Refusal::AttributionRole { .. }), "{e}");

    let bank_policy = policy("partner", "conversions");
    let bank_offer = JobOffer {
        requester: offer.requester.clone(),
        ..attribution_offer(Role::Receiver, "conversions", 2)
    };
    let ok = decide("bank", &bank_policy, &limits(), &bank_offer, h, 0).expect("bank accepts");
    // The bank also noises its conversion count.
    assert_eq!(ok.noise.shares().len(), 2 * 2 + 1);
    assert_eq!(ok.terms, {
        let p = decide("partner", &partner_policy, &limits(), &offer, h, 0).expect("partner");
        p.terms
    });
    // A table of the wrong kind under the offered name.
    let e = decide(
        "bank",
        &bank_policy,
        &limits(),
        &signed(attribution_offer(Role::Receiver, "exposures", 2)),
        h,
        0,
    )
    .expect_err("not named");
    assert!(matches!(e, Refusal::DatasetNotNamed { .. }), "{e}");
}

fn holdings_with_customers() -> (BTreeMap<String, LoadedDataset>, BTreeMap<String, LoadedEvents>) {
    (
        BTreeMap::from([("customers".to_string(), dataset(IdKind::Phone))]),
        BTreeMap::new(),
    )
}

fn plain_policy() -> Policy {
    Policy {
        partners: vec!["partner".into()],
        budgets: vec![BudgetConfig {
            dataset: "customers".into(),
            partner: "partner".into(),
            epsilon: 4.0,
            period: Period::Month,
        }],
        planners: bank_planners(),
        ..Policy::default()
    }
}

#[test]
fn who_asked_is_checked_before_anything_is_drawn() {
    let (datasets, events) = holdings_with_customers();
    let h = Holdings {
        datasets: &datasets,
        events: &events,
    };
    let policy = plain_policy();
    let decide_on = |policy: &Policy, o: &JobOffer| decide("bank", policy, &limits(), o, h, 0);
    let base = offer("partner", "phone", false);
    let ok = decide_on(&policy, &signed(base.clone())).expect("alice of the bank");
    assert_eq!(ok.requester.principal, "alice");
    assert!(
        ok.checks[0].contains("planner 'alice'") && ok.checks[0].contains("entry 1"),
        "{:?}",
        ok.checks
    );
    // The terms bind the requester: another request, other terms.
    let mut other = signed(base.clone());
    if let Some(r) = other.requester.as_mut() {
        r.nonce = vec![1; 16];
        let header = RequestHeader {
            nonce: &r.nonce,
            ..request::requester_header(r)
        };
        r.signature = request::sign(&alice(), &header, &r.request).to_vec();
    }
    assert_ne!(
        decide_on(&policy, &other).expect("another request").terms,
        ok.terms
    );

    let e = decide_on(&policy, &base).expect_err("no requester");
    assert!(matches!(e, Refusal::NoPlanner { .. }), "{e}");
    // The coordinator changes the query after alice signed it.
    let mut altered = signed(base.clone());
    if let Some(Query::Overlap(q)) = altered.spec.as_mut().and_then(|s| s.query.as_mut()) {
        q.right = at("partner", "other");
    }
    let e = decide_on(&policy, &altered).expect_err("altered");
    assert!(
        matches!(&e, Refusal::QueryNotSigned { planner, .. } if planner == "alice"),
        "{e}"
    );
    // Or forges her signature with a key of its own.
    let mut forged = signed(base.clone());
    if let Some(r) = forged.requester.as_mut() {
        r.signature[0] ^= 1;
    }
    let e = decide_on(&policy, &forged).expect_err("forged");
    assert!(matches!(e, Refusal::BadSignature { .. }), "{e}");
    let mut stale = base.clone();
    stale.requester = Some(requester(&stale, &alice(), 3_600_000));
    let e = decide_on(&policy, &stale).expect_err("stale");
    assert!(matches!(e, Refusal::StaleRequest { .. }), "{e}");
    // A pinned key that differs: the coordinator stands in for alice.
    let pinned = Policy {
        planner_keys: [("alice".to_string(), [7u8; 32])].into(),
        ..plain_policy()
    };
    let e = decide_on(&pinned, &signed(base.clone())).expect_err("pinned");
    assert!(matches!(e, Refusal::PlannerKeyMismatch { .. }), "{e}");
    // No rule names her organisation.
    let nobody = Policy {
        planners: vec![PlannerRule {
            datasets: vec!["customers".into()],
            planners: vec!["bob".into()],
            organisations: vec![],
            kinds: vec![],
        }],
        ..plain_policy()
    };
    let e = decide_on(&nobody, &signed(base.clone())).expect_err("not allowed");
    assert!(
        matches!(&e, Refusal::NoPlannerRule { planner, dataset, .. } if planner == "alice" && dataset == "customers"),
        "{e}"
    );
    let wrong_kind = Policy {
        planners: vec![PlannerRule {
            kinds: vec!["breakdown".into()],
            ..bank_planners()[0].clone()
        }],
        ..plain_policy()
    };
    let e = decide_on(&wrong_kind, &signed(base)).expect_err("kind");
    assert!(
        matches!(&e, Refusal::NoPlannerRule { kind, .. } if kind == "overlap"),
        "{e}"
    );
}

#[test]
fn the_offer_must_name_the_dataset_the_query_names() {
    let mut datasets = BTreeMap::from([("customers".to_string(), dataset(IdKind::Phone))]);
    let mut vip = dataset(IdKind::Phone);
    vip.name = "vip".into();
    datasets.insert("vip".into(), vip);
    let events = BTreeMap::new();
    let h = Holdings {
        datasets: &datasets,
        events: &events,
    };
    let mut o = offer("partner", "phone", false);
    o.dataset = "vip".into();
    let e = decide("bank", &plain_policy(), &limits(), &signed(o), h, 0).expect_err("other dataset");
    assert!(
        matches!(&e, Refusal::DatasetNotNamed { dataset, .. } if dataset == "vip"),
        "{e}"
    );
}

#[test]
fn an_offer_cannot_make_the_node_draw_without_bound() {
    use jointly_protocol::wire::BreakdownQuery;
    let (datasets, events) = holdings_with_customers();
    let h = Holdings {
        datasets: &datasets,
        events: &events,
    };
    let breakdown = |peer_groups: u32| JobOffer {
        spec: Some(QuerySpec {
            query: Some(Query::Breakdown(BreakdownQuery {
                left: at("bank", "customers"),
                right: at("partner", "users"),
                ..Default::default()
            })),
            privacy: Some(Privacy {
                epsilon: 1.0,
                exact: false,
            }),
        }),
        peer_groups,
        ..offer("partner", "phone", false)
    };
    let e = decide(
        "bank",
        &plain_policy(),
        &limits(),
        &signed(breakdown(u32::MAX)),
        h,
        0,
    )
    .expect_err("four billion groups");
    assert!(
        matches!(&e, Refusal::Plan { reason, .. } if reason.contains("at most 4096")),
        "{e}"
    );
    // (Drawing noise for it first would allocate billions of shares.)
    let tight = NodeLimits {
        max_job_values: 5,
        ..NodeLimits::default()
    };
    let e = decide("bank", &plain_policy(), &tight, &signed(breakdown(10)), h, 0).expect_err("bounded");
    assert!(matches!(e, Refusal::TooManyValues { max: 5, .. }), "{e}");
    assert!(decide("bank", &plain_policy(), &limits(), &signed(breakdown(10)), h, 0).is_ok());
}

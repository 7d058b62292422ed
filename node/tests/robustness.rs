//! A node against a coordinator that misbehaves: one that never starts (or
//! cancels) what the node accepted, one that starts a session and then goes
//! silent, one whose offer asks for unbounded work. A fake coordinator plays
//! the gateway side of the wire API on a loopback port; the node is the real
//! one, with its real ledger.

use std::{path::Path, pin::Pin, sync::Arc, time::Duration};

use ed25519_dalek::SigningKey;
use jointly_node::{Node, NodeConfig, identity::Identity, ledger::Ledger};
use jointly_protocol::{
    access::request::{self, RequestHeader, SUBMIT_QUERY},
    wire::{
        Challenge, CoordinatorMessage, DatasetRef, JobOffer, NodeMessage, OverlapQuery, Privacy, QuerySpec,
        Requester, Role, SessionFrame, StartSession, SubmitQueryRequest, TranscriptPart, TranscriptReceipt,
        Welcome,
        coordinator_message::Body as ToNode,
        node_gateway_server::{NodeGateway, NodeGatewayServer},
        node_message::Body as FromNode,
        query_spec::Query,
    },
};
use prost::Message;
use tokio::sync::{Mutex, mpsc};
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::{Request, Response, Status, Streaming};

type Boxed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The fake coordinator: hands the test what the node sends and lets it send.
struct Fake {
    /// Control messages from the node (after the handshake).
    from_node: mpsc::Sender<NodeMessage>,
    /// The test's messages for the node, taken by the first attach.
    to_node: Mutex<Option<mpsc::Receiver<CoordinatorMessage>>>,
    /// Session frames from the node; nothing is ever sent back.
    frames: mpsc::Sender<SessionFrame>,
    /// The request id of every transcript upload the node opens.
    uploads: mpsc::Sender<u64>,
}

#[tonic::async_trait]
impl NodeGateway for Fake {
    type AttachStream = Boxed<CoordinatorMessage>;
    type SessionStream = Boxed<SessionFrame>;

    async fn attach(
        &self,
        request: Request<Streaming<NodeMessage>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        let mut inbound = request.into_inner();
        let mut script = self
            .to_node
            .lock()
            .await
            .take()
            .ok_or_else(|| Status::unavailable("one attach only"))?;
        let (tx, rx) = mpsc::channel(64);
        let from_node = self.from_node.clone();
        tokio::spawn(async move {
            // Hello, then the proof: this fake trusts any key.
            let _ = inbound.message().await;
            let challenge = ToNode::Challenge(Challenge {
                nonce: vec![1; 32],
                coordinator_id: "fake".into(),
            });
            let _ = tx
                .send(Ok(CoordinatorMessage {
                    body: Some(challenge),
                }))
                .await;
            let _ = inbound.message().await;
            let _ = tx
                .send(Ok(CoordinatorMessage {
                    body: Some(ToNode::Welcome(Welcome {})),
                }))
                .await;
            loop {
                tokio::select! {
                    m = inbound.message() => match m {
                        Ok(Some(m)) => { let _ = from_node.send(m).await; }
                        _ => return,
                    },
                    m = script.recv() => match m {
                        Some(m) => { let _ = tx.send(Ok(m)).await; }
                        None => return,
                    },
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn session(
        &self,
        request: Request<Streaming<SessionFrame>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let mut inbound = request.into_inner();
        let frames = self.frames.clone();
        let (keep, rx) = mpsc::channel::<Result<SessionFrame, Status>>(1);
        tokio::spawn(async move {
            while let Ok(Some(f)) = inbound.message().await {
                let _ = frames.send(f).await;
            }
            // The relay stays open and silent until the node gives up.
            drop(keep);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn transcript(
        &self,
        request: Request<Streaming<TranscriptPart>>,
    ) -> Result<Response<TranscriptReceipt>, Status> {
        let mut inbound = request.into_inner();
        if let Ok(Some(first)) = inbound.message().await {
            let _ = self.uploads.send(first.request_id).await;
        }
        Ok(Response::new(TranscriptReceipt {}))
    }
}

struct Harness {
    to_node: mpsc::Sender<CoordinatorMessage>,
    from_node: mpsc::Receiver<NodeMessage>,
    _frames: mpsc::Receiver<SessionFrame>,
    uploads: mpsc::Receiver<u64>,
    data_dir: std::path::PathBuf,
    _dir: tempfile::TempDir,
    stop: tokio::sync::oneshot::Sender<()>,
}

fn phone(i: u32) -> String {
    format!("+86139{i:08}")
}

async fn start(limits: &str) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv: String = std::iter::once("phone\n".to_string())
        .chain((0..60).map(|i| format!("{}\n", phone(i))))
        .collect();
    std::fs::write(dir.path().join("people.csv"), csv).expect("csv");
    Identity::generate()
        .save(&dir.path().join("bank.key"))
        .expect("key");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (from_tx, from_node) = mpsc::channel(64);
    let (to_node, script) = mpsc::channel(64);
    let (frames_tx, frames) = mpsc::channel(1024);
    let (uploads_tx, uploads) = mpsc::channel(8);
    let fake = Fake {
        from_node: from_tx,
        to_node: Mutex::new(Some(script)),
        frames: frames_tx,
        uploads: uploads_tx,
    };
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(NodeGatewayServer::new(fake))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let config = format!(
        "name = \"bank\"\nidentity_key = \"bank.key\"\ndata_dir = \"data\"\n\
         [coordinator]\nurl = \"http://{addr}\"\nreconnect_seconds = 1\n\
         [policy]\npartners = [\"partner\"]\nmin_aggregation = 0\n\
         partner_keys = {{ partner = \"{}\" }}\n\
         [[policy.planners]]\ndatasets = [\"*\"]\norganisations = [\"bank\"]\n\
         [[policy.budgets]]\ndataset = \"people\"\npartner = \"partner\"\nepsilon = 100.0\nperiod = \"month\"\n\
         [limits]\n{limits}\n\
         [[datasets]]\nname = \"people\"\npath = \"people.csv\"\nid_column = \"phone\"\nid_kind = \"phone\"\n",
        hex::encode(peer().verifying_key().as_bytes())
    );
    std::fs::write(dir.path().join("bank.toml"), config).expect("config");
    let config = NodeConfig::load(&dir.path().join("bank.toml")).expect("config");
    let data_dir = config.data_dir.clone();
    let node = Arc::new(Node::load(config).expect("node"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = node
            .run(async {
                let _ = stopped.await;
            })
            .await;
    });
    Harness {
        to_node,
        from_node,
        _frames: frames,
        uploads,
        data_dir,
        _dir: dir,
        stop,
    }
}

fn peer() -> SigningKey {
    SigningKey::from_bytes(&[3; 32])
}

/// An overlap offer with the bank receiving, as alice of the bank signed it.
fn offer(job: &str) -> JobOffer {
    let at = |node: &str, dataset: &str| {
        Some(DatasetRef {
            node: node.into(),
            dataset: dataset.into(),
        })
    };
    let spec = QuerySpec {
        query: Some(Query::Overlap(OverlapQuery {
            left: at("bank", "people"),
            right: at("partner", "users"),
        })),
        privacy: Some(Privacy {
            epsilon: 1.0,
            exact: false,
        }),
    };
    let request = SubmitQueryRequest {
        spec: Some(spec.clone()),
        workspace: "w".into(),
    }
    .encode_to_vec();
    let planner = SigningKey::from_bytes(&[8; 32]);
    let nonce: Vec<u8> = job.bytes().chain(std::iter::repeat(0)).take(16).collect();
    let timestamp_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let header = RequestHeader {
        coordinator_id: "fake",
        method: SUBMIT_QUERY,
        principal: "alice",
        timestamp_ms,
        nonce: &nonce,
    };
    JobOffer {
        job_id: job.into(),
        spec: Some(spec),
        role: Role::Receiver.into(),
        dataset: "people".into(),
        peer_node: "partner".into(),
        peer_id_kind: "phone".into(),
        requester: Some(Requester {
            principal: "alice".into(),
            organisation: "bank".into(),
            role: "planner".into(),
            workspace: "w".into(),
            public_key: planner.verifying_key().to_bytes().to_vec(),
            signature: request::sign(&planner, &header, &request).to_vec(),
            request,
            timestamp_ms,
            nonce,
            coordinator_id: "fake".into(),
        }),
        ..Default::default()
    }
}

impl Harness {
    async fn send(&self, body: ToNode) {
        self.to_node
            .send(CoordinatorMessage { body: Some(body) })
            .await
            .expect("the fake's script");
    }

    /// The next decision or report the node sends, skipping progress.
    async fn next(&mut self) -> FromNode {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(20), self.from_node.recv())
                .await
                .expect("the node answers")
                .expect("the node's stream");
            match m.body {
                Some(FromNode::Progress(_)) | None => continue,
                Some(body) => return body,
            }
        }
    }

    async fn decision(&mut self, job: &str) -> (bool, String) {
        self.send(ToNode::Offer(offer(job))).await;
        match self.next().await {
            FromNode::Decision(d) => {
                assert_eq!(d.job_id, job);
                (d.accept, d.reason)
            }
            other => panic!("expected a decision, got {other:?}"),
        }
    }

    fn ledger_state(&self, job: &str) -> Option<jointly_node::ledger::EntryState> {
        Ledger::open(&self.data_dir)
            .expect("ledger")
            .entries()
            .expect("entries")
            .into_iter()
            .find(|e| e.charge.job_id == job)
            .map(|e| e.state)
    }
}

fn data_dir_mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_job_that_never_starts_gives_its_slot_and_budget_back() {
    let mut h = start("max_sessions = 1\noffer_start_seconds = 1").await;
    assert_eq!(data_dir_mode(&h.data_dir), 0o700, "the data directory is private");
    assert_eq!(h.decision("job-1").await, (true, String::new()));
    // Its start (or cancel) is lost: the node is full meanwhile...
    let (accept, reason) = h.decision("job-2").await;
    assert!(!accept && reason.contains("busy"), "{reason}");
    // ...but not for ever: the acceptance expires and the budget returns.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        h.ledger_state("job-1"),
        Some(jointly_node::ledger::EntryState::Released)
    );
    assert!(h.decision("job-3").await.0);
    let _ = h.stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_peer_goes_silent_is_ended_by_the_node() {
    let mut h = start("session_idle_seconds = 1").await;
    assert!(h.decision("job-1").await.0);
    h.send(ToNode::Start(StartSession {
        job_id: "job-1".into(),
        session_id: "s-1".into(),
        token: vec![0; 32],
        peer_key: peer().verifying_key().to_bytes().to_vec(),
    }))
    .await;
    // The fake relays nothing back: no announcement from the peer ever comes.
    match h.next().await {
        FromNode::Report(r) => {
            let Some(jointly_protocol::wire::session_report::Outcome::Error(e)) = r.outcome else {
                panic!("expected an error report, got {r:?}")
            };
            assert!(e.contains("limits.session_idle_seconds"), "{e}");
        }
        other => panic!("expected a report, got {other:?}"),
    }
    // The lists went out, so their cover's part stays spent; the rest is back.
    assert_eq!(
        h.ledger_state("job-1"),
        Some(jointly_node::ledger::EntryState::Partial)
    );
    // The slot is free again.
    assert!(h.decision("job-2").await.0);
    let _ = h.stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_request_gets_no_second_job() {
    let mut h = start("").await;
    assert!(h.decision("job-1").await.0);
    // The same signed request (same nonce) offered again under a new job id.
    let mut replay = offer("job-1");
    replay.job_id = "job-9".into();
    h.send(ToNode::Offer(replay)).await;
    match h.next().await {
        FromNode::Decision(d) => {
            assert!(!d.accept);
            assert!(d.reason.contains("replayed request"), "{}", d.reason);
        }
        other => panic!("expected a decision, got {other:?}"),
    }
    let _ = h.stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deciding_an_offer_does_not_hold_up_the_control_stream() {
    let mut h = start("").await;
    // Someone else holds the ledger's write lock: the node's reservation
    // for the next offer waits for it.
    std::fs::create_dir_all(&h.data_dir).expect("dir");
    let other = rusqlite_lock(&h.data_dir);
    h.send(ToNode::Offer(offer("job-1"))).await;
    h.send(ToNode::FetchTranscript(
        jointly_protocol::wire::TranscriptRequest {
            request_id: 77,
            job_id: "job-0".into(),
            token: vec![1; 32],
        },
    ))
    .await;
    // The fetch is served while the decision still waits.
    let upload = tokio::time::timeout(Duration::from_secs(5), h.uploads.recv()).await;
    assert_eq!(
        upload.ok().flatten(),
        Some(77),
        "the control loop was held up by a decision"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(200), h.from_node.recv())
            .await
            .is_err(),
        "the decision cannot have been made while the ledger was locked"
    );
    drop(other);
    match h.next().await {
        FromNode::Decision(d) => assert!(d.accept, "{}", d.reason),
        other => panic!("expected a decision, got {other:?}"),
    }
    let _ = h.stop.send(());
}

/// An open write transaction on the node's ledger, until dropped.
fn rusqlite_lock(data_dir: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(data_dir.join(jointly_node::ledger::LEDGER_FILE)).expect("ledger");
    conn.execute_batch("BEGIN IMMEDIATE").expect("write lock");
    conn
}

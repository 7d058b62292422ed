//! Serves an auditor's fetch: the shared copy of a job's transcript, in
//! parts, on a stream of its own (`NodeGateway.Transcript`). The control
//! stream carries only the request: an auditor who reads slowly, or not at
//! all, holds back this upload and nothing else.

use std::path::Path;

use jointly_protocol::wire::{TranscriptPart, TranscriptRequest};
use tokio::{io::AsyncReadExt, sync::mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tracing::warn;

use crate::{transcripts, transport::GatewayClient};

/// Bytes per transcript part: well inside the transport's frame limit
/// (`MAX_FRAME_BYTES`) with the message around it.
pub const TRANSCRIPT_PART: usize = 512 << 10;

/// Uploads the shared copy of `request.job_id`'s transcript, or one part
/// saying why it cannot.
pub async fn serve(mut client: GatewayClient, node: String, data_dir: &Path, request: TranscriptRequest) {
    let (tx, rx) = mpsc::channel::<TranscriptPart>(2);
    let upload = tokio::spawn(async move { client.transcript(ReceiverStream::new(rx)).await });
    // The first part names the fetch; later ones need not.
    let mut first = Some(request.token.clone());
    let mut send = |data: Vec<u8>, last: bool, error: String| {
        let part = TranscriptPart {
            request_id: request.request_id,
            data,
            last,
            error,
            token: first.take().unwrap_or_default(),
        };
        let tx = tx.clone();
        async move { tx.send(part).await.is_ok() }
    };
    if let Err(e) = transcripts::check_job_id(&request.job_id) {
        send(Vec::new(), true, e.to_string()).await;
    } else {
        let path = transcripts::shared_path(data_dir, &request.job_id);
        match tokio::fs::File::open(&path).await {
            Err(e) => {
                let error = format!("node '{node}' has no transcript of job {} ({e})", request.job_id);
                send(Vec::new(), true, error).await;
            }
            Ok(file) => {
                let mut reader = tokio::io::BufReader::new(file);
                loop {
                    let mut data = Vec::with_capacity(TRANSCRIPT_PART);
                    match (&mut reader)
                        .take(TRANSCRIPT_PART as u64)
                        .read_to_end(&mut data)
                        .await
                    {
                        Ok(n) => {
                            let last = n < TRANSCRIPT_PART;
                            if !send(data, last, String::new()).await || last {
                                break;
                            }
                        }
                        Err(e) => {
                            let error = format!("node '{node}' cannot read {}: {e}", path.display());
                            send(Vec::new(), true, error).await;
                            break;
                        }
                    }
                }
            }
        }
    }
    drop(tx);
    match upload.await {
        Ok(Ok(_)) => {}
        Ok(Err(status)) => {
            warn!(node = %node, job = %request.job_id, reason = %status.message(), "transcript upload ended early")
        }
        Err(e) => warn!(node = %node, error = %e, "transcript upload task failed"),
    }
}

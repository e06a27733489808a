//! Serving rvsd's clients off the control loop: the control socket and
//! `/metrics`, on one thread of their own running a tokio runtime.
//!
//! The control loop (see `daemon`) owns the live state and must never wait
//! for a client: SIGHUP reloads, health results and neighbour work go
//! through it. So it never touches a client socket. This thread accepts,
//! reads each request under a deadline and a size limit, hands the parsed
//! request to the loop as a [`Job`] and writes the answer back, also under a
//! deadline. A client that sends nothing, trickles bytes or sends a huge
//! line costs one small task here and is cut off; the loop sees only whole
//! requests and answers them in microseconds to milliseconds.
//!
//! Limits (all per connection):
//! - the control socket: one JSON line of at most [`MAX_REQUEST_BYTES`],
//!   complete within [`REQUEST_DEADLINE`] of connecting; the answer written
//!   within [`ANSWER_DEADLINE`];
//! - `/metrics`: HTTP/1.1 through `hyper`, headers within
//!   [`REQUEST_DEADLINE`], at most 16 KiB buffered, one request per
//!   connection, the whole exchange within [`ANSWER_DEADLINE`];
//! - at most [`MAX_CLIENTS`] connections of each kind at once; one more is
//!   closed at once (the control socket tells it why).
//!
//! The thread is spawned from the main lcore's thread and so inherits its
//! CPU affinity: it never runs on a worker core.

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::{Sender, TrySendError};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{oneshot, Semaphore};

use crate::api::{Request, Response};

/// Largest control request accepted (a request is one short JSON line).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Time a client has, from connecting, to send its whole request.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// Time for the answer: the control loop's work plus writing it out.
pub const ANSWER_DEADLINE: Duration = Duration::from_secs(30);
/// Connections served at once, per listener.
pub const MAX_CLIENTS: usize = 256;
/// Requests waiting for the control loop at once.
pub const QUEUE: usize = 256;

/// What a client asks the control loop for.
#[derive(Debug)]
pub enum Job {
    /// A control socket request; the loop sends its answer on `reply`.
    Control {
        /// The request.
        request: Request,
        /// Where the answer goes.
        reply: oneshot::Sender<Response>,
    },
    /// A `/metrics` scrape; the loop sends the rendered text (or why not).
    Metrics {
        /// Where the text goes.
        reply: oneshot::Sender<Result<String, String>>,
    },
}

/// The listeners to serve, bound (and checked) by the caller.
pub struct Listeners {
    /// The control socket.
    pub control: std::os::unix::net::UnixListener,
    /// The metrics address, if configured.
    pub metrics: Option<std::net::TcpListener>,
}

/// Starts the serving thread. Requests come out of `jobs`' other end.
///
/// # Errors
/// The runtime or the thread could not be created.
pub fn start(listeners: Listeners, jobs: Sender<Job>) -> io::Result<()> {
    listeners.control.set_nonblocking(true)?;
    if let Some(m) = &listeners.metrics {
        m.set_nonblocking(true)?;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    std::thread::Builder::new()
        .name("rvsd-serve".into())
        .spawn(move || {
            crate::affinity::pin_current();
            rt.block_on(serve(listeners, jobs))
        })?;
    Ok(())
}

async fn serve(listeners: Listeners, jobs: Sender<Job>) {
    let control = match tokio::net::UnixListener::from_std(listeners.control) {
        Ok(l) => l,
        Err(e) => return eprintln!("rvsd: control socket: {e}"),
    };
    if let Some(m) = listeners.metrics {
        match tokio::net::TcpListener::from_std(m) {
            Ok(m) => {
                tokio::spawn(serve_metrics(m, jobs.clone()));
            }
            Err(e) => eprintln!("rvsd: metrics: {e}"),
        }
    }
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    loop {
        let mut stream = match control.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of descriptors, say: wait rather than spin.
                eprintln!("rvsd: control socket: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let jobs = jobs.clone();
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tokio::spawn(async move {
                let busy = Response::Error(format!(
                    "rvsd is serving {MAX_CLIENTS} clients already; try again"
                ));
                let _ =
                    tokio::time::timeout(REQUEST_DEADLINE, write_answer(&mut stream, &busy)).await;
            });
            continue;
        };
        tokio::spawn(async move {
            let answer =
                match tokio::time::timeout(REQUEST_DEADLINE, read_request(&mut stream)).await {
                    Err(_) => Err(format!(
                        "no complete request within {} s",
                        REQUEST_DEADLINE.as_secs()
                    )),
                    Ok(Err(e)) => Err(e),
                    Ok(Ok(request)) => Ok(request),
                };
            let answer = match answer {
                Ok(request) => ask(&jobs, |reply| Job::Control { request, reply })
                    .await
                    .unwrap_or_else(Response::Error),
                Err(e) => Response::Error(e),
            };
            let _ = tokio::time::timeout(ANSWER_DEADLINE, write_answer(&mut stream, &answer)).await;
            drop(slot);
        });
    }
}

/// Reads one request line: at most [`MAX_REQUEST_BYTES`], ended by a
/// newline (or by the client closing its side).
async fn read_request<R: tokio::io::AsyncRead + Unpin>(stream: &mut R) -> Result<Request, String> {
    let mut line = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("reading the request: {e}"))?;
        let got = &chunk[..n];
        let end = got.iter().position(|&b| b == b'\n');
        line.extend_from_slice(&got[..end.unwrap_or(n)]);
        if line.len() > MAX_REQUEST_BYTES {
            return Err(format!(
                "request larger than {} KiB refused",
                MAX_REQUEST_BYTES / 1024
            ));
        }
        if end.is_some() || n == 0 {
            break;
        }
    }
    serde_json::from_slice(&line).map_err(|e| format!("bad request: {e}"))
}

async fn write_answer<W: tokio::io::AsyncWrite + Unpin>(
    stream: &mut W,
    answer: &Response,
) -> io::Result<()> {
    let mut text = serde_json::to_vec(answer).map_err(io::Error::other)?;
    text.push(b'\n');
    stream.write_all(&text).await?;
    stream.shutdown().await
}

/// Queues a job for the control loop and waits for its answer.
async fn ask<T>(
    jobs: &Sender<Job>,
    make: impl FnOnce(oneshot::Sender<T>) -> Job,
) -> Result<T, String> {
    let (tx, rx) = oneshot::channel();
    match jobs.try_send(make(tx)) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            return Err(format!("rvsd has {QUEUE} requests waiting; try again"))
        }
        Err(TrySendError::Disconnected(_)) => return Err("rvsd is stopping".into()),
    }
    match tokio::time::timeout(ANSWER_DEADLINE, rx).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(_)) => Err("rvsd is stopping".into()),
        Err(_) => Err(format!(
            "no answer from the control loop within {} s",
            ANSWER_DEADLINE.as_secs()
        )),
    }
}

async fn serve_metrics(listener: tokio::net::TcpListener, jobs: Sender<Job>) {
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                eprintln!("rvsd: metrics: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Over the limit: closed unanswered.
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            continue;
        };
        let jobs = jobs.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let jobs = jobs.clone();
                async move { Ok::<_, Infallible>(scrape(req, &jobs).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(REQUEST_DEADLINE)
                .max_buf_size(16 * 1024)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(ANSWER_DEADLINE, conn).await;
            drop(slot);
        });
    }
}

/// Answers one HTTP request: `GET /metrics` (any query), else 404.
async fn scrape(req: hyper::Request<Incoming>, jobs: &Sender<Job>) -> hyper::Response<Full<Bytes>> {
    let (status, body) = if req.method() == Method::GET && req.uri().path() == "/metrics" {
        match ask(jobs, |reply| Job::Metrics { reply }).await {
            Ok(Ok(text)) => (StatusCode::OK, text),
            Ok(Err(e)) | Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
        }
    } else {
        (StatusCode::NOT_FOUND, "rvsd serves /metrics\n".to_string())
    };
    let mut resp = hyper::Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> Result<Request, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(read_request(&mut &bytes[..]))
    }

    #[test]
    fn one_line_is_one_request() {
        assert_eq!(read(b"\"ListServices\"\n"), Ok(Request::ListServices));
        // What follows the newline is not read as part of it.
        assert_eq!(read(b"\"Stats\"\ngarbage"), Ok(Request::Stats));
        // A client that closes its side after the line without a newline.
        assert_eq!(read(b"\"Stats\""), Ok(Request::Stats));
    }

    #[test]
    fn a_line_past_the_limit_is_refused_without_reading_it_all() {
        let mut huge = vec![b' '; MAX_REQUEST_BYTES + 1];
        huge.extend_from_slice(b"\"Stats\"\n");
        let err = read(&huge).unwrap_err();
        assert!(err.contains("larger than 64 KiB"), "{err}");
        // Exactly at the limit is fine (JSON allows the leading spaces).
        let mut at = vec![b' '; MAX_REQUEST_BYTES - 7];
        at.extend_from_slice(b"\"Stats\"\n");
        assert_eq!(read(&at), Ok(Request::Stats));
    }

    #[test]
    fn garbage_gets_a_reason() {
        assert!(read(b"hello\n").unwrap_err().starts_with("bad request: "));
    }
}

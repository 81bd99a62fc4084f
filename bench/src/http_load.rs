//! A lean HTTP/1.1 load generator, so that what is measured is the server,
//! not the client.
//!
//! The benchmark shares two cores with what it measures. A general-purpose
//! client (reqwest) spends more per request than the gateway answering from
//! its cache does, so it would be the bottleneck. Here every connection is
//! a keep-alive TCP stream on one thread of its own: it writes a request
//! prepared in advance, reads the answer with the least parsing that checks
//! it (status line, `content-length`, `cache-status`, the body's verdict),
//! and sends the next one — at most one core, like `wrk -t1`.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

use crate::measure::Sample;

/// What one run saw.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) sample: Sample,
    /// Answers whose `Cache-Status` said the gateway's cache answered.
    pub(crate) cache_hits: u64,
}

/// A prepared request and what a good answer to it contains.
#[derive(Debug)]
pub(crate) struct Request {
    bytes: Vec<u8>,
}

impl Request {
    /// `POST path` with a JSON `body`, to `address`.
    pub(crate) fn post_json(address: SocketAddr, path: &str, body: &str) -> Self {
        let bytes = format!(
            "POST {path} HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes();
        Self { bytes }
    }
}

/// Runs `concurrency` connections to `address` until `window` has passed,
/// connection `n` sending requests `n`, `n + concurrency`, … in turn. A
/// success is a 200 whose body contains `expect`.
pub(crate) async fn run(
    address: SocketAddr,
    requests: Arc<Vec<Request>>,
    expect: &'static str,
    concurrency: usize,
    window: Duration,
) -> anyhow::Result<Outcome> {
    on_own_thread(async move {
        let mut streams = Vec::with_capacity(concurrency);
        for _ in 0..concurrency {
            let stream = TcpStream::connect(address).await?;
            stream.set_nodelay(true)?;
            streams.push(stream);
        }
        let deadline = Instant::now() + window;
        let connections: Vec<_> = streams
            .into_iter()
            .enumerate()
            .map(|(first, stream)| {
                let requests = Arc::clone(&requests);
                tokio::spawn(connection(stream, requests, first, concurrency, expect, deadline))
            })
            .collect();
        let mut total = Outcome::default();
        for connection in connections {
            let outcome = connection.await?;
            total.sample.merge(outcome.sample);
            total.cache_hits += outcome.cache_hits;
        }
        Ok(total)
    })
    .await
}

/// Runs `load` on a thread and single-threaded runtime of its own: at most
/// one core, whatever the caller's runtime does meanwhile.
async fn on_own_thread<T: Send + 'static>(
    load: impl std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
) -> anyhow::Result<T> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name("http-load".into()).spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
        let outcome = runtime
            .map_err(anyhow::Error::from)
            .and_then(|runtime| runtime.block_on(load));
        let _ = sender.send(outcome);
    })?;
    receiver.await?
}

async fn connection(
    mut stream: TcpStream,
    requests: Arc<Vec<Request>>,
    first: usize,
    stride: usize,
    expect: &'static str,
    deadline: Instant,
) -> Outcome {
    let mut outcome = Outcome::default();
    let mut buffer = Vec::with_capacity(4096);
    let mut next = first % requests.len();
    while Instant::now() < deadline {
        let started = Instant::now();
        let answer = exchange(&mut stream, &requests[next].bytes, &mut buffer).await;
        next = (next + stride) % requests.len();
        match answer {
            Ok(answer) if answer.status == 200 && contains(answer.body, expect.as_bytes()) => {
                outcome.sample.latencies.push(started.elapsed());
                outcome.cache_hits += u64::from(answer.cache_hit);
            }
            Ok(_) => outcome.sample.failures += 1,
            // The connection is unusable: the rest of the window counts as nothing.
            Err(_) => {
                outcome.sample.failures += 1;
                break;
            }
        }
    }
    outcome
}

struct Answer<'a> {
    status: u16,
    cache_hit: bool,
    body: &'a [u8],
}

/// Writes `request` and reads one whole answer into `buffer`.
async fn exchange<'a>(stream: &mut TcpStream, request: &[u8], buffer: &'a mut Vec<u8>) -> anyhow::Result<Answer<'a>> {
    stream.write_all(request).await?;
    buffer.clear();
    let (head_end, content_length) = loop {
        if let Some(head_end) = find(buffer, b"\r\n\r\n") {
            let length = header(&buffer[..head_end], b"content-length")
                .and_then(|value| std::str::from_utf8(value).ok()?.trim().parse::<usize>().ok())
                .ok_or_else(|| anyhow::anyhow!("an answer without content-length"))?;
            break (head_end + 4, length);
        }
        read_more(stream, buffer).await?;
    };
    while buffer.len() < head_end + content_length {
        read_more(stream, buffer).await?;
    }
    let head = &buffer[..head_end];
    let status = head
        .get(9..12)
        .and_then(|code| std::str::from_utf8(code).ok()?.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("a malformed status line"))?;
    let cache_hit = header(head, b"cache-status").is_some_and(|value| value.ends_with(b"; hit"));
    Ok(Answer {
        status,
        cache_hit,
        body: &buffer[head_end..head_end + content_length],
    })
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> anyhow::Result<()> {
    if buffer.capacity() - buffer.len() < 1024 {
        buffer.reserve(4096);
    }
    let read = stream.read_buf(buffer).await?;
    anyhow::ensure!(read > 0, "the server closed the connection");
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

/// The value of header `name` (lower-case) in a response head.
fn header<'a>(head: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    head.split(|byte| *byte == b'\n').skip(1).find_map(|line| {
        let colon = line.iter().position(|byte| *byte == b':')?;
        let (key, value) = line.split_at(colon);
        key.eq_ignore_ascii_case(name).then(|| value[1..].trim_ascii())
    })
}

#[cfg(test)]
mod tests {
    use super::header;

    #[test]
    fn headers_are_found_whatever_their_case() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 42\r\ncache-status: gateway; hit\r\n";
        assert_eq!(header(head, b"content-length"), Some(&b"42"[..]));
        assert_eq!(header(head, b"cache-status"), Some(&b"gateway; hit"[..]));
        assert_eq!(header(head, b"x-missing"), None);
    }
}

//! HTTP on the node, for monitoring: `/metrics` (Prometheus text format) and `/healthz`.
//!
//! It listens on `http.listen`, loopback by default: the endpoints have no authentication, so
//! exposing them is an installer's explicit choice. The server is deliberately tiny — GET only,
//! one request per connection, a few hundred bytes read — since a scraper is its only client.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::config::HttpConfig;
use crate::stats::NodeStats;

/// A camera loop quiet for this long is stuck: `/healthz` answers 503 (the systemd watchdog,
/// at `WatchdogSec=30`, gives up at the same point).
pub const STUCK_AFTER: Duration = Duration::from_secs(15);
/// A client that has not sent its request line and headers by then is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// Binds `http.listen` now, so a taken port stops the node at start with a clear error.
pub async fn bind(config: &HttpConfig) -> Result<TcpListener, String> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("http.listen: cannot listen on {}: {e}", config.listen))?;
    if let Ok(address) = listener.local_addr() {
        tracing::info!("HTTP on http://{address} (/metrics, /healthz)");
    }
    Ok(listener)
}

/// Answers requests until the runtime shuts down.
pub async fn serve(listener: TcpListener, stats: Arc<NodeStats>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, say: wait rather than spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let stats = stats.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, &stats)).await;
        });
    }
}

async fn answer(mut stream: TcpStream, stats: &NodeStats) -> std::io::Result<()> {
    let request = read_head(&mut stream).await?;
    let (status, content_type, body) = respond(&request, stats);
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&body).await?;
    stream.shutdown().await
}

/// The request line and headers (the body of a GET is empty).
async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST_BYTES {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..n]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// Status line, content type and body for a request head.
fn respond(request: &str, stats: &NodeStats) -> (&'static str, &'static str, Vec<u8>) {
    let mut words = request.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    const TEXT: &str = "text/plain; charset=utf-8";
    const JSON: &str = "application/json";
    match (method, path) {
        ("GET", "/metrics") => {
            ("200 OK", "text/plain; version=0.0.4; charset=utf-8", stats.prometheus().into_bytes())
        }
        ("GET", "/healthz") => {
            let (healthy, body) = stats.health(STUCK_AFTER);
            let status = if healthy { "200 OK" } else { "503 Service Unavailable" };
            (status, JSON, body.to_string().into_bytes())
        }
        ("GET", _) => ("404 Not Found", TEXT, b"not found; try /metrics or /healthz\n".to_vec()),
        _ => ("405 Method Not Allowed", TEXT, b"only GET\n".to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let stats = NodeStats::new("edge-1", ["kerb"]);
        let status = |request: &str| respond(request, &stats).0;
        assert_eq!(status("GET /metrics HTTP/1.1\r\n\r\n"), "200 OK");
        assert_eq!(status("GET /healthz?verbose HTTP/1.1\r\n\r\n"), "200 OK");
        assert_eq!(status("GET /admin HTTP/1.1\r\n\r\n"), "404 Not Found");
        assert_eq!(status("POST /metrics HTTP/1.1\r\n\r\n"), "405 Method Not Allowed");
        assert_eq!(status(""), "405 Method Not Allowed");
    }
}

//! HTTP on the node: `/metrics` (Prometheus text format) and `/healthz` for monitoring, and the
//! web page ([`web`]) for installers and operators.
//!
//! It listens on `http.listen`, loopback by default: the endpoints have no authentication, so
//! exposing them is an installer's explicit choice. The server is deliberately tiny — GET only,
//! one request per connection, a few hundred bytes read — since a scraper and a browser or two
//! are its only clients.

pub mod web;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::config::HttpConfig;
use crate::stats::NodeStats;
use web::Web;

/// A camera loop quiet for this long is stuck: `/healthz` answers 503 (the systemd watchdog,
/// at `WatchdogSec=30`, gives up at the same point).
pub const STUCK_AFTER: Duration = Duration::from_secs(15);
/// A client that has not sent its request line and headers by then is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// Status line, content type and body.
pub type Response = (&'static str, &'static str, Vec<u8>);

/// Binds `http.listen` now, so a taken port stops the node at start with a clear error.
pub async fn bind(config: &HttpConfig) -> Result<TcpListener, String> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("http.listen: cannot listen on {}: {e}", config.listen))?;
    if let Ok(address) = listener.local_addr() {
        tracing::info!("HTTP on http://{address} (web page, /metrics, /healthz)");
    }
    Ok(listener)
}

/// Answers requests until the runtime shuts down.
pub async fn serve(listener: TcpListener, stats: Arc<NodeStats>, web: Arc<Web>) {
    let loopback = listener.local_addr().is_ok_and(|a| a.ip().is_loopback());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, say: wait rather than spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let (stats, web) = (stats.clone(), web.clone());
        tokio::spawn(async move {
            let answered = answer(stream, loopback, &stats, &web);
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answered).await;
        });
    }
}

async fn answer(
    mut stream: TcpStream,
    loopback: bool,
    stats: &NodeStats,
    web: &Web,
) -> std::io::Result<()> {
    let request = read_head(&mut stream).await?;
    let (status, content_type, body) = match loopback && !local_host(&request) {
        true => (
            "421 Misdirected Request",
            "text/plain; charset=utf-8",
            b"use http://127.0.0.1\n".to_vec(),
        ),
        false => respond(&request, stats, web).await,
    };
    // The page loads nothing from elsewhere and runs no inline script: the policy says so, and
    // nothing of it may be framed by another site or sniffed as another type.
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n\
         Content-Security-Policy: default-src 'self'; frame-ancestors 'none'\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&body).await?;
    stream.shutdown().await
}

/// Whether the request's `Host` is this machine by name or address. On a loopback listener
/// anything else is a web page elsewhere reaching the node through the viewer's browser with a
/// rebound DNS name, which must not see the cameras. A request without `Host` is no browser's.
fn local_host(request: &str) -> bool {
    let host = request
        .lines()
        .skip(1)
        .find_map(|line| line.split_once(':').filter(|(name, _)| name.eq_ignore_ascii_case("host")))
        .map(|(_, value)| value.trim());
    let Some(host) = host else { return true };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
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

/// The response to a request head.
async fn respond(request: &str, stats: &NodeStats, web: &Web) -> Response {
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
        ("GET", path) => match web::route(path) {
            Some(route) => web.respond(route).await,
            None => ("404 Not Found", TEXT, b"not found; try /, /metrics or /healthz\n".to_vec()),
        },
        _ => ("405 Method Not Allowed", TEXT, b"only GET\n".to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn routes() {
        let stats = Arc::new(NodeStats::new("edge-1", ["kerb"]));
        let web = Web::new(stats.clone());
        let respond = async |request: &str| respond(request, &stats, &web).await;
        assert_eq!(respond("GET /metrics HTTP/1.1\r\n\r\n").await.0, "200 OK");
        assert_eq!(respond("GET /healthz?verbose HTTP/1.1\r\n\r\n").await.0, "200 OK");
        let page = respond("GET /?camera=kerb HTTP/1.1\r\n\r\n").await;
        assert_eq!((page.0, page.1), ("200 OK", "text/html; charset=utf-8"));
        assert!(String::from_utf8(page.2).unwrap().contains("<script src=\"/page.js\""));
        let cameras = respond("GET /api/cameras HTTP/1.1\r\n\r\n").await;
        assert_eq!((cameras.0, cameras.1), ("200 OK", "application/json"));
        let no_frame = respond("GET /cameras/kerb/frame.jpg?t=1 HTTP/1.1\r\n\r\n").await;
        assert_eq!(no_frame.0, "404 Not Found");
        assert_eq!(respond("GET /admin HTTP/1.1\r\n\r\n").await.0, "404 Not Found");
        assert_eq!(
            respond("GET /cameras/../etc/frame.jpg HTTP/1.1\r\n\r\n").await.0,
            "404 Not Found"
        );
        assert_eq!(respond("POST /metrics HTTP/1.1\r\n\r\n").await.0, "405 Method Not Allowed");
        assert_eq!(respond("DELETE / HTTP/1.1\r\n\r\n").await.0, "405 Method Not Allowed");
        assert_eq!(respond("").await.0, "405 Method Not Allowed");
    }

    #[test]
    fn only_local_host_names_reach_a_loopback_listener() {
        let with_host = |host: &str| format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        for host in ["127.0.0.1:8630", "localhost:8630", "LOCALHOST", "[::1]:8630", "10.0.0.5"] {
            assert!(local_host(&with_host(host)), "{host}");
        }
        for host in ["attacker.example:8630", "cityeye.example", "127.0.0.1.nip.io"] {
            assert!(!local_host(&with_host(host)), "{host}");
        }
        assert!(local_host("GET /metrics HTTP/1.0\r\n\r\n"), "no Host header: not a browser");
    }
}

//! HTTP on the node: `/metrics` (Prometheus text format) and `/healthz` for monitoring, and the
//! web page ([`web`]) for installers and operators, with what it changes ([`operate`]) behind
//! the sign-in ([`auth`]).
//!
//! It listens on `http.listen`: loopback unless users are configured (`http.users_file`), as
//! without them anyone reaching the page could watch the cameras and edit the config. The
//! routes are an axum [`Router`]; hyper serves it one request per connection, since a scraper
//! and a browser or two are its only clients. GET anywhere; POST only under `/api/`.

pub mod auth;
pub mod edit;
pub mod health;
pub mod metrics;
pub mod operate;
pub mod web;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::config::HttpConfig;
use crate::stats::NodeStats;
use operate::Operate;
use web::Web;

/// A connection is dropped when its request has not been read and answered by then.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The most a request head may take (hyper's smallest buffer cap); a larger one gets 431.
const MAX_REQUEST_BYTES: usize = 8 * 1024;

const TEXT: &str = "text/plain; charset=utf-8";

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
pub async fn serve(
    listener: TcpListener,
    stats: Arc<NodeStats>,
    web: Arc<Web>,
    operate: Arc<Operate>,
) {
    let loopback = listener.local_addr().is_ok_and(|a| a.ip().is_loopback());
    serve_with(listener, router(stats, web, operate, loopback), REQUEST_TIMEOUT).await;
}

/// The accept loop. Not `axum::serve`: it keeps connections alive and reads request heads
/// without a time limit (it sets no hyper timer), so one client could hold a connection
/// forever. Each connection here gets hyper's HTTP/1 server without keep-alive and with a small
/// head buffer, and the whole exchange (head read, handler, answer written) must end within
/// `timeout`: one `tokio::time::timeout` bounds slow clients and slow answers alike, with no
/// extra dependency (`tower_http::timeout` would bound only the handler).
async fn serve_with(listener: TcpListener, router: Router, timeout: Duration) {
    let service = TowerToHyperService::new(router);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, say: wait rather than spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let service = service.clone();
        tokio::spawn(async move {
            let connection = http1::Builder::new()
                .keep_alive(false)
                .max_buf_size(MAX_REQUEST_BYTES)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(timeout, connection).await;
        });
    }
}

/// The node's routes. `loopback`: whether it listens on loopback only, where requests must be
/// addressed to this machine (see `local_host`).
pub fn router(
    stats: Arc<NodeStats>,
    web: Arc<Web>,
    operate: Arc<Operate>,
    loopback: bool,
) -> Router {
    let monitoring = Router::new()
        .route("/metrics", get(metrics::metrics))
        .route("/healthz", get(health::healthz))
        .with_state(stats);
    let page = Router::new()
        .route("/", get(web::page))
        .route("/page.js", get(web::script))
        .route("/page.css", get(web::style))
        .route("/api/cameras", get(web::cameras))
        .route("/api/incidents", get(web::incidents))
        .route("/cameras/{id}/frame.jpg", get(frame))
        .route("/incidents/{id}/snapshot.jpg", get(snapshot))
        .with_state(web);
    let signing = Router::new()
        .route("/api/session", get(auth::session))
        .route("/api/signin", post(auth::sign_in))
        .route("/api/signout", post(auth::sign_out))
        .with_state(operate.auth.clone());
    let changes = Router::new()
        .route("/api/incidents/{id}/verdict", post(operate::give_verdict))
        .route("/api/suppressions", get(operate::suppressions))
        .route("/api/suppressions/{id}/remove", post(operate::remove_suppression))
        .route("/suppressions/{id}/snapshot.jpg", get(operate::suppression_snapshot))
        .route("/api/config", get(operate::config))
        .route("/api/config/edit", post(operate::edit))
        .with_state(operate.clone());
    // The last layer added runs first: the headers go on every answer, the guards' included.
    monitoring
        .merge(page)
        .merge(signing)
        .merge(changes)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(operate.auth.clone(), auth::guard))
        .layer(middleware::from_fn(only_get))
        .layer(middleware::from_fn_with_state(loopback, local_host_only))
        .layer(middleware::from_fn(protective_headers))
}

/// `/cameras/{id}/frame.jpg`, for an id in the config's alphabet (checked as sent, before any
/// percent-decoding); any other is a path the node does not have.
async fn frame(State(web): State<Arc<Web>>, uri: Uri) -> Response {
    match id_as_sent(&uri).and_then(web::camera_id) {
        Some(camera) => web.frame_jpeg(camera).await,
        None => not_found().await,
    }
}

/// `/incidents/{id}/snapshot.jpg`, for a UUID; anything else is a path the node does not have.
async fn snapshot(State(web): State<Arc<Web>>, uri: Uri) -> Response {
    match id_as_sent(&uri).and_then(web::incident_id) {
        Some(id) => web.snapshot_jpeg(id).await,
        None => not_found().await,
    }
}

/// The `{id}` of `/cameras/{id}/…` and `/incidents/{id}/…` as the request spelled it: axum's
/// path extractors percent-decode it (`%2e%2e` would pass as `..`, and `%ff` fail with 400).
fn id_as_sent(uri: &Uri) -> Option<&str> {
    uri.path().split('/').nth(2)
}

async fn not_found() -> Response {
    let body = "not found; try /, /metrics or /healthz\n";
    (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, TEXT)], body).into_response()
}

/// GET anywhere, POST for the API's changes; any other method, on any path, is refused before
/// routing (`HEAD` too, which axum's `get` would otherwise answer).
async fn only_get(request: Request, next: Next) -> Response {
    let post = request.method() == Method::POST && request.uri().path().starts_with("/api/");
    if request.method() != Method::GET && !post {
        let headers = [(header::CONTENT_TYPE, TEXT), (header::ALLOW, "GET")];
        return (StatusCode::METHOD_NOT_ALLOWED, headers, "only GET\n").into_response();
    }
    next.run(request).await
}

/// On a loopback listener, refuses requests addressed to anything but this machine.
async fn local_host_only(State(loopback): State<bool>, request: Request, next: Next) -> Response {
    let host = request.headers().get(header::HOST).map(|h| h.to_str().unwrap_or(""));
    if loopback && !local_host(host) {
        let body = "use http://127.0.0.1\n";
        let headers = [(header::CONTENT_TYPE, TEXT)];
        return (StatusCode::MISDIRECTED_REQUEST, headers, body).into_response();
    }
    next.run(request).await
}

/// Whether a request's `Host` is this machine by name or address. On a loopback listener
/// anything else is a web page elsewhere reaching the node through the viewer's browser with a
/// rebound DNS name, which must not see the cameras. A request without `Host` is no browser's.
fn local_host(host: Option<&str>) -> bool {
    let Some(host) = host.map(str::trim) else { return true };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok()
}

/// The page loads nothing from elsewhere and runs no inline script: the policy says so, and
/// nothing the node answers may be framed by another site, sniffed as another type or cached.
async fn protective_headers(request: Request, next: Next) -> Response {
    const HEADERS: [(HeaderName, &str); 3] = [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CONTENT_SECURITY_POLICY, "default-src 'self'; frame-ancestors 'none'"),
    ];
    let mut response = next.run(request).await;
    for (name, value) in HEADERS {
        response.headers_mut().insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;
    use web::tests::{frame, incident, read, see, uuid};

    const NOT_FOUND: &str = "not found; try /, /metrics or /healthz\n";

    fn node() -> (Arc<NodeStats>, Arc<Web>) {
        let stats = Arc::new(NodeStats::new("edge-1", ["kerb"]));
        let web = Arc::new(Web::new(stats.clone()));
        (stats, web)
    }

    fn router(stats: Arc<NodeStats>, web: Arc<Web>, loopback: bool) -> Router {
        super::router(stats, web, Arc::new(Operate::none()), loopback)
    }

    /// Status, content type and body of `method path`, sent with `Host: host` if given.
    async fn send(
        router: &Router,
        method: &str,
        path: &str,
        host: Option<&str>,
    ) -> (StatusCode, String, Vec<u8>) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(host) = host {
            request = request.header(header::HOST, host);
        }
        let response = router.clone().oneshot(request.body(Body::empty()).unwrap()).await;
        let response = response.unwrap();
        for (name, value) in [
            ("cache-control", "no-store"),
            ("x-content-type-options", "nosniff"),
            ("content-security-policy", "default-src 'self'; frame-ancestors 'none'"),
        ] {
            assert_eq!(response.headers()[name], value, "{method} {path}");
        }
        read(response).await
    }

    #[tokio::test]
    async fn routes() {
        let (stats, web) = node();
        let router = router(stats, web, true);
        let get = async |path: &str| send(&router, "GET", path, Some("127.0.0.1:8630")).await;
        let metrics = get("/metrics").await;
        assert_eq!(
            (metrics.0, metrics.1.as_str()),
            (StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8")
        );
        let health = get("/healthz?verbose").await;
        assert_eq!((health.0, health.1.as_str()), (StatusCode::OK, "application/json"));
        let page = get("/?camera=kerb").await;
        assert_eq!((page.0, page.1.as_str()), (StatusCode::OK, "text/html; charset=utf-8"));
        assert!(String::from_utf8(page.2).unwrap().contains("<script src=\"/page.js\""));
        let script = get("/page.js").await;
        assert_eq!(
            (script.0, script.1.as_str()),
            (StatusCode::OK, "text/javascript; charset=utf-8")
        );
        let style = get("/page.css").await;
        assert_eq!((style.0, style.1.as_str()), (StatusCode::OK, "text/css; charset=utf-8"));
        for path in ["/api/cameras", "/api/incidents"] {
            let api = get(path).await;
            assert_eq!((api.0, api.1.as_str()), (StatusCode::OK, "application/json"), "{path}");
        }
        let no_frame = get("/cameras/kerb/frame.jpg?t=1").await;
        assert_eq!(no_frame.0, StatusCode::NOT_FOUND);
        assert_eq!(no_frame.2, b"no frame from this camera (yet)\n", "routed, not there yet");
        let unknown = get("/admin").await;
        assert_eq!((unknown.0, unknown.1.as_str()), (StatusCode::NOT_FOUND, TEXT));
        assert_eq!(unknown.2, NOT_FOUND.as_bytes());
        assert_eq!(get("/cameras/../etc/frame.jpg").await.0, StatusCode::NOT_FOUND);
        for (method, path) in [("POST", "/metrics"), ("DELETE", "/"), ("HEAD", "/"), ("PUT", "/x")]
        {
            let refused = send(&router, method, path, None).await;
            assert_eq!(refused.0, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            // A HEAD answer has no body: axum drops it.
            let body: &[u8] = if method == "HEAD" { b"" } else { b"only GET\n" };
            assert_eq!(refused.2, body);
        }
    }

    #[tokio::test]
    async fn frames_and_snapshots_are_routed_for_plain_camera_ids_and_uuids_only() {
        let stats = Arc::new(NodeStats::new("edge-1", ["kerb-2.a_b"]));
        let web = Arc::new(Web::new(stats.clone()));
        let router = router(stats, web.clone(), false);
        let mut watch = web.watcher("kerb-2.a_b");
        let f = frame(1);
        see(&mut watch, &f, &[incident(&uuid(7), "start", Some(&f))]);
        let get = async |path: &str| send(&router, "GET", path, None).await;

        let picture = get("/cameras/kerb-2.a_b/frame.jpg").await;
        assert_eq!((picture.0, picture.1.as_str()), (StatusCode::OK, "image/jpeg"));
        assert_eq!(image::load_from_memory(&picture.2).unwrap().width(), 80);
        // The URL the page lists for the snapshot is the one served.
        let listed: serde_json::Value =
            serde_json::from_slice(&get("/api/incidents").await.2).unwrap();
        let url = listed["incidents"][0]["snapshot"].as_str().unwrap().to_string();
        let snapshot = get(&url).await;
        assert_eq!((snapshot.0, snapshot.1.as_str()), (StatusCode::OK, "image/jpeg"), "{url}");
        let other = get(&format!("/incidents/{}/snapshot.jpg", uuid(8))).await;
        assert_eq!(other.2, b"no such incident among the last ones\n");

        for path in [
            "/cameras//frame.jpg",
            "/cameras/a/b/frame.jpg",
            "/cameras/%2e%2e/frame.jpg",
            "/cameras/%ff/frame.jpg",
            "/cameras/kerb%2D2.a_b/frame.jpg",
            "/cameras/%3Cscript%3E/frame.jpg",
            "/cameras/kerb-2.a_b/frame.jpg/x",
            &format!("/cameras/{}/frame.jpg", "a".repeat(65)),
            "/incidents/not-a-uuid/snapshot.jpg",
            "/incidents/../snapshot.jpg",
            "/page.html",
            "/api",
            "/api/cameras/",
        ] {
            let (status, _, body) = get(path).await;
            let body = String::from_utf8(body).unwrap();
            assert_eq!((status, body.as_str()), (StatusCode::NOT_FOUND, NOT_FOUND), "{path}");
        }
    }

    #[test]
    fn only_local_host_names_reach_a_loopback_listener() {
        for host in ["127.0.0.1:8630", "localhost:8630", "LOCALHOST", "[::1]:8630", "10.0.0.5"] {
            assert!(local_host(Some(host)), "{host}");
        }
        for host in ["attacker.example:8630", "cityeye.example", "127.0.0.1.nip.io", ""] {
            assert!(!local_host(Some(host)), "{host}");
        }
        assert!(local_host(None), "no Host header: not a browser");
    }

    #[tokio::test]
    async fn a_loopback_listener_answers_other_host_names_421() {
        let (stats, web) = node();
        let loopback = router(stats.clone(), web.clone(), true);
        for path in ["/", "/metrics", "/nothing-here"] {
            let misdirected = send(&loopback, "GET", path, Some("attacker.example:8630")).await;
            assert_eq!(
                (misdirected.0, misdirected.1.as_str()),
                (StatusCode::MISDIRECTED_REQUEST, TEXT)
            );
            assert_eq!(misdirected.2, b"use http://127.0.0.1\n");
        }
        assert_eq!(send(&loopback, "GET", "/", Some("localhost")).await.0, StatusCode::OK);
        assert_eq!(send(&loopback, "GET", "/", None).await.0, StatusCode::OK);
        // Listening beyond loopback is the installer's choice of names.
        let exposed = router(stats, web, false);
        assert_eq!(send(&exposed, "GET", "/", Some("cityeye.example")).await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn one_request_per_connection_and_slow_clients_are_dropped() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stats, web) = node();
        let timeout = Duration::from_millis(300);
        tokio::spawn(serve_with(listener, router(stats, web, true), timeout));

        let mut client = tokio::net::TcpStream::connect(address).await.unwrap();
        client.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
        let mut answer = String::new();
        // Read to the end: the server closes the connection after its answer.
        client.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        let head = answer.to_ascii_lowercase();
        assert!(head.contains("\r\nconnection: close\r\n"), "{answer}");
        assert!(head.contains("\r\ncontent-type: application/json\r\n"), "{answer}");

        // A client that never finishes its request head is dropped at the timeout.
        let mut slow = tokio::net::TcpStream::connect(address).await.unwrap();
        slow.write_all(b"GET /metrics HTTP/1.1\r\n").await.unwrap();
        let started = std::time::Instant::now();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "still connected after 5 s");
        assert!(started.elapsed() >= timeout / 2, "dropped early: {:?}", started.elapsed());
    }
}

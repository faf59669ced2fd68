//! Sign-in for the node's page: users, sessions, CSRF tokens and roles.
//!
//! Users are kept in `http.users_file` (TOML, `[[users]]` with `name`, `role` and `password`,
//! an Argon2id PHC string), written by `cityeye user add`. A `viewer` sees cameras, incidents
//! and suppressions and gives verdicts; an `installer` may also edit zones, lines and
//! algorithms and remove suppressions. Without a users file the node listens on loopback only
//! (the config check refuses anything else) and everyone who reaches the page is an installer,
//! as before sign-in existed.
//!
//! A session is a random token in an HttpOnly, SameSite=Strict cookie, kept in memory (a
//! restart signs everyone out) and ending `http.session_hours` after sign-in. Every request
//! that changes something (every POST but the sign-in itself) carries the session's CSRF
//! token in `X-CSRF-Token`: a page elsewhere can make a browser send the cookie, not read the
//! token. The sign-in takes JSON only, which a form elsewhere cannot send. Failed sign-ins are
//! logged with the name tried (never the password) and limited: [`MAX_FAILURES`] per name and
//! [`MAX_FAILURES_ALL`] over all names within [`FAILURE_WINDOW`], then refused (429) until the
//! oldest failure leaves the window.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cookie::{Cookie, SameSite};
use serde::{Deserialize, Serialize};

const COOKIE: &str = "cityeye_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
pub const MAX_FAILURES: usize = 5;
pub const MAX_FAILURES_ALL: usize = 50;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
const JSON: &str = "application/json";

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees cameras, incidents and suppressions; gives verdicts.
    Viewer,
    /// Also edits zones, lines and algorithms, and removes suppressions.
    Installer,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Installer => "installer",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// Argon2id, as a PHC string.
    pub password: String,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    users: Vec<User>,
}

/// The users in `path`; the error names the file and what is wrong, for `http.users_file`.
pub fn load_users(path: &Path) -> Result<Vec<User>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!("cannot read {}: {e}; add a user with `cityeye user add`", path.display())
    })?;
    let file: UsersFile =
        toml::from_str(&text).map_err(|e| format!("{}: not a users file: {e}", path.display()))?;
    for user in &file.users {
        PasswordHash::new(&user.password).map_err(|e| {
            format!(
                "{}: user {}: the password is not an Argon2 hash: {e}",
                path.display(),
                user.name
            )
        })?;
    }
    Ok(file.users)
}

/// Adds user `name` to `path` (created, readable by its owner only), or replaces their role
/// and password; whether they were there already.
pub fn add_user(path: &Path, name: &str, role: Role, password: &str) -> Result<bool, String> {
    let valid = |c: char| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@');
    if name.is_empty() || name.chars().count() > 64 || !name.chars().all(valid) {
        return Err(format!(
            "`{name}` is not a user name: 1 to 64 letters, digits, `-`, `_`, `.` or `@`"
        ));
    }
    if password.chars().count() < 10 {
        return Err("the password must have at least 10 characters".into());
    }
    let mut users = match path.exists() {
        true => load_users(path)?,
        false => Vec::new(),
    };
    let user = User { name: name.to_string(), role, password: hash_password(password)? };
    let replaced = match users.iter_mut().find(|u| u.name == name) {
        Some(known) => {
            *known = user;
            true
        }
        None => {
            users.push(user);
            false
        }
    };
    let text = toml::to_string(&UsersFile { users }).map_err(|e| e.to_string())?;
    write_private(path, &text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(replaced)
}

/// Writes `text` to `path`, readable and writable by its owner alone.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    // Without the OS's random source no token is safe: nothing sensible to go on with.
    getrandom::fill(&mut bytes).expect("the operating system's random source works");
    bytes
}

/// A random token, hex: 32 bytes.
fn token() -> String {
    random_bytes::<32>().iter().map(|b| format!("{b:02x}")).collect()
}

/// Who sends a request: their name, role and their session's CSRF token.
#[derive(Debug, Clone)]
pub struct Who {
    pub name: String,
    pub role: Role,
    pub csrf: String,
}

struct Session {
    who: Who,
    ends: Instant,
}

/// The node's users and their sessions.
pub struct Auth {
    /// `None`: sign-in is off (loopback only) and everyone is [`Auth::local`].
    users: Option<Vec<User>>,
    session_for: Duration,
    sessions: Mutex<HashMap<String, Session>>,
    /// Failed sign-ins by name tried; `""` holds all of them.
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
    local: Who,
    /// Checked when the name is unknown, so that a wrong name takes as long as a wrong password.
    decoy: String,
}

impl Auth {
    /// Sign-in with `users`, sessions lasting `session_for`; `None`: sign-in off.
    pub fn new(users: Option<Vec<User>>, session_for: Duration) -> Auth {
        Auth {
            users,
            session_for,
            sessions: Mutex::default(),
            failures: Mutex::default(),
            local: Who { name: "local".into(), role: Role::Installer, csrf: token() },
            decoy: hash_password(&token()).unwrap_or_default(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.users.is_some()
    }

    /// The sender of a request with these headers, if signed in (or sign-in is off).
    pub fn who(&self, headers: &HeaderMap) -> Option<Who> {
        if !self.enabled() {
            return Some(self.local.clone());
        }
        let token = session_token(headers)?;
        let mut sessions = lock(&self.sessions);
        let now = Instant::now();
        sessions.retain(|_, s| s.ends > now);
        sessions.get(&token).map(|s| s.who.clone())
    }

    /// Checks a name and password (slow on purpose: run it off the async threads); a new
    /// session's token and who it is, or why not.
    fn sign_in(&self, name: &str, password: &str) -> Result<(String, Who), SignInRefused> {
        if self.limited(name) {
            tracing::warn!(user = name, "sign-in refused: too many failed attempts");
            return Err(SignInRefused::Limited);
        }
        let users = self.users.as_deref().unwrap_or_default();
        let user = users.iter().find(|u| u.name == name);
        let hash = user.map_or(self.decoy.as_str(), |u| u.password.as_str());
        let matches = PasswordHash::new(hash)
            .is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok());
        let Some(user) = user.filter(|_| matches) else {
            self.failed(name);
            tracing::warn!(user = name, "sign-in failed: wrong name or password");
            return Err(SignInRefused::Wrong);
        };
        let who = Who { name: user.name.clone(), role: user.role, csrf: token() };
        let token = token();
        let session = Session { who: who.clone(), ends: Instant::now() + self.session_for };
        lock(&self.sessions).insert(token.clone(), session);
        tracing::info!(user = name, role = user.role.name(), "signed in");
        Ok((token, who))
    }

    fn limited(&self, name: &str) -> bool {
        let mut failures = lock(&self.failures);
        let now = Instant::now();
        for tries in failures.values_mut() {
            while tries.front().is_some_and(|t| now.duration_since(*t) > FAILURE_WINDOW) {
                tries.pop_front();
            }
        }
        failures.retain(|_, tries| !tries.is_empty());
        failures.get(name).is_some_and(|t| t.len() >= MAX_FAILURES)
            || failures.get("").is_some_and(|t| t.len() >= MAX_FAILURES_ALL)
    }

    fn failed(&self, name: &str) {
        let mut failures = lock(&self.failures);
        let now = Instant::now();
        failures.entry(name.to_string()).or_default().push_back(now);
        failures.entry(String::new()).or_default().push_back(now);
    }

    fn sign_out(&self, headers: &HeaderMap) {
        if let Some(token) = session_token(headers) {
            lock(&self.sessions).remove(&token);
        }
    }
}

enum SignInRefused {
    Wrong,
    Limited,
}

fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .flatten()
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_string())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Paths anyone may GET: the page itself (which asks for the sign-in), monitoring, and the
/// session's state.
fn open_path(path: &str) -> bool {
    matches!(path, "/" | "/page.js" | "/page.css" | "/metrics" | "/healthz" | "/api/session")
}

/// Lets a request through to its handler only when its sender may send it, with a [`Who`]
/// for the handler: signed in (unless the path is open), and for a POST with the session's
/// CSRF token.
pub async fn guard(State(auth): State<Arc<Auth>>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if request.method() == Method::POST && path == "/api/signin" {
        return next.run(request).await;
    }
    let who = auth.who(request.headers());
    if request.method() == Method::GET && open_path(path) {
        if let Some(who) = who {
            request.extensions_mut().insert(who);
        }
        return next.run(request).await;
    }
    let Some(who) = who else {
        return refuse(StatusCode::UNAUTHORIZED, "sign in first");
    };
    if request.method() != Method::GET {
        let sent = request.headers().get(CSRF_HEADER).map(HeaderValue::as_bytes);
        if !sent.is_some_and(|t| same(t, who.csrf.as_bytes())) {
            tracing::warn!(user = %who.name, path, "refused: missing or wrong CSRF token");
            return refuse(StatusCode::FORBIDDEN, "missing or wrong CSRF token");
        }
    }
    request.extensions_mut().insert(who);
    next.run(request).await
}

/// Compares in time that does not depend on where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |d, (x, y)| d | (x ^ y)) == 0
}

/// A JSON error answer: `{"error": why}`.
pub fn refuse(status: StatusCode, why: &str) -> Response {
    let body = serde_json::json!({ "error": why }).to_string();
    (status, [(header::CONTENT_TYPE, JSON)], body).into_response()
}

/// The answer refusing `who` unless they are an installer.
pub fn unless_installer(who: &Who) -> Option<Response> {
    match who.role {
        Role::Installer => None,
        Role::Viewer => Some(refuse(StatusCode::FORBIDDEN, "only an installer may change this")),
    }
}

#[derive(Serialize)]
struct SessionJson<'a> {
    /// Whether the node asks for a sign-in at all.
    signin: bool,
    user: Option<&'a str>,
    role: Option<&'static str>,
    csrf: Option<&'a str>,
}

fn session_json(auth: &Auth, who: Option<&Who>) -> Response {
    let body = SessionJson {
        signin: auth.enabled(),
        user: who.map(|w| w.name.as_str()),
        role: who.map(|w| w.role.name()),
        csrf: who.map(|w| w.csrf.as_str()),
    };
    let body = serde_json::to_string(&body).expect("plain data serializes");
    (StatusCode::OK, [(header::CONTENT_TYPE, JSON)], body).into_response()
}

/// `GET /api/session`: who the page is signed in as, with the CSRF token to send.
pub async fn session(State(auth): State<Arc<Auth>>, headers: HeaderMap) -> Response {
    session_json(&auth, auth.who(&headers).as_ref())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    name: String,
    password: String,
}

/// `POST /api/signin` with `{"name", "password"}` (JSON only): the session cookie.
pub async fn sign_in(State(auth): State<Arc<Auth>>, headers: HeaderMap, body: Bytes) -> Response {
    if !auth.enabled() {
        return refuse(StatusCode::NOT_FOUND, "this node has no users: sign-in is off");
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !json {
        return refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send the sign-in as JSON");
    }
    let Ok(SignIn { name, password }) = serde_json::from_slice(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "expected {\"name\": …, \"password\": …}");
    };
    let checking = auth.clone();
    let signed = tokio::task::spawn_blocking(move || checking.sign_in(&name, &password)).await;
    match signed {
        Ok(Ok((token, who))) => {
            let age = cookie::time::Duration::seconds(auth.session_for.as_secs() as i64);
            let cookie = Cookie::build((COOKIE, token))
                .http_only(true)
                .same_site(SameSite::Strict)
                .path("/")
                .max_age(age)
                .build();
            let mut answer = session_json(&auth, Some(&who));
            if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
                answer.headers_mut().insert(header::SET_COOKIE, value);
            }
            answer
        }
        Ok(Err(SignInRefused::Wrong)) => refuse(StatusCode::UNAUTHORIZED, "wrong name or password"),
        Ok(Err(SignInRefused::Limited)) => refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed sign-ins: wait a quarter of an hour",
        ),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &format!("sign-in failed: {e}")),
    }
}

/// `POST /api/signout`: ends the session and clears the cookie.
pub async fn sign_out(State(auth): State<Arc<Auth>>, headers: HeaderMap) -> Response {
    auth.sign_out(&headers);
    let cookie = Cookie::build((COOKIE, ""))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .max_age(cookie::time::Duration::ZERO)
        .build();
    let mut answer = session_json(&auth, None);
    if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
        answer.headers_mut().insert(header::SET_COOKIE, value);
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_added_with_argon2_hashes_in_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        assert!(!add_user(&path, "ana", Role::Installer, "correct horse").unwrap());
        assert!(add_user(&path, "ana", Role::Viewer, "battery staple").unwrap(), "replaced");
        add_user(&path, "bo", Role::Viewer, "0123456789").unwrap();
        let users = load_users(&path).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].role, Role::Viewer);
        assert!(users[0].password.starts_with("$argon2id$"), "{}", users[0].password);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("battery"), "no password in clear");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(
            add_user(&path, "a b", Role::Viewer, "0123456789")
                .unwrap_err()
                .contains("not a user name")
        );
        assert!(
            add_user(&path, "cy", Role::Viewer, "short").unwrap_err().contains("10 characters")
        );
    }

    /// Sign-in with one installer, `ana` ("correct horse"), sessions lasting `session_for`.
    fn auth_with_ana(session_for: Duration) -> Auth {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        add_user(&path, "ana", Role::Installer, "correct horse").unwrap();
        Auth::new(Some(load_users(&path).unwrap()), session_for)
    }

    #[test]
    fn sign_in_checks_the_password_and_limits_failures() {
        let auth = auth_with_ana(Duration::from_secs(60));
        let (token, who) = auth.sign_in("ana", "correct horse").ok().unwrap();
        assert_eq!((who.name.as_str(), who.role), ("ana", Role::Installer));
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, format!("other=1; {COOKIE}={token}").parse().unwrap());
        assert_eq!(auth.who(&headers).unwrap().csrf, who.csrf);
        assert!(auth.who(&HeaderMap::new()).is_none());
        for _ in 0..MAX_FAILURES {
            assert!(matches!(auth.sign_in("ana", "wrong"), Err(SignInRefused::Wrong)));
        }
        // Now even the right password waits.
        assert!(matches!(auth.sign_in("ana", "correct horse"), Err(SignInRefused::Limited)));
        assert!(matches!(auth.sign_in("nobody", "x"), Err(SignInRefused::Wrong)));
        auth.sign_out(&headers);
        assert!(auth.who(&headers).is_none());
    }

    #[test]
    fn a_session_ends_after_its_time() {
        let auth = auth_with_ana(Duration::from_millis(300));
        let (token, _) = auth.sign_in("ana", "correct horse").ok().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, format!("{COOKIE}={token}").parse().unwrap());
        assert!(auth.who(&headers).is_some());
        std::thread::sleep(Duration::from_millis(400));
        assert!(auth.who(&headers).is_none(), "the session outlived session_hours");
    }

    #[test]
    fn without_users_everyone_is_a_local_installer() {
        let auth = Auth::new(None, Duration::from_secs(60));
        let who = auth.who(&HeaderMap::new()).unwrap();
        assert_eq!(who.role, Role::Installer);
        assert!(same(who.csrf.as_bytes(), auth.who(&HeaderMap::new()).unwrap().csrf.as_bytes()));
        assert!(!same(b"abc", b"abd") && !same(b"abc", b"ab"));
    }
}

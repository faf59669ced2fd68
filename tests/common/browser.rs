//! A headless Chromium session behind its own ChromeDriver (Debian's chromium-driver), driven
//! through the W3C WebDriver API: the node's page in a real browser.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use super::free_port;

/// WebDriver's key for an element reference in JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A headless Chromium session behind its own ChromeDriver, ended when dropped.
pub struct Browser {
    driver: Child,
    agent: ureq::Agent,
    session: String,
    base: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub fn start() -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is installed by scripts/setup (Debian's chromium-driver)");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let profile = tempfile::tempdir().unwrap();
        let mut browser = Browser {
            driver,
            agent,
            session: String::new(),
            base: format!("http://127.0.0.1:{port}"),
            _profile: profile,
        };
        let until = Instant::now() + Duration::from_secs(20);
        while browser.agent.get(format!("{}/status", browser.base)).call().is_err() {
            assert!(Instant::now() < until, "chromedriver did not listen on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        // Without the background-networking flags Chromium's own connections are refused on a
        // closed network, and it waits for them.
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--force-device-scale-factor=1",
            "--window-size=1280,1100",
            &format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
        }}});
        let session = browser.call("POST", "", Some(capabilities));
        browser.session = session["sessionId"].as_str().expect("a session id").to_string();
        browser
    }

    /// A WebDriver command on the session; its `value`. Panics with the driver's message.
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session{}{path}", self.base, self.session_path());
        let response = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            (_, body) => self.agent.post(&url).send_json(body.unwrap_or_else(|| json!({}))),
        };
        let mut response = response.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = response.status();
        let answer: Value = response.body_mut().read_json().expect("WebDriver answers JSON");
        assert!(status.is_success(), "{method} {url}: {status} {answer}");
        answer["value"].clone()
    }

    fn session_path(&self) -> String {
        if self.session.is_empty() { String::new() } else { format!("/{}", self.session) }
    }

    pub fn open(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    /// Runs `body` as a function in the page; what it returns.
    pub fn script(&self, body: &str) -> Value {
        self.call("POST", "/execute/sync", Some(json!({ "script": body, "args": [] })))
    }

    /// Waits until `body` returns something truthy in the page; that value.
    pub fn wait_for(&self, what: &str, timeout: Duration, body: &str) -> Value {
        let until = Instant::now() + timeout;
        loop {
            let value = self.script(body);
            if !matches!(value, Value::Null | Value::Bool(false)) {
                return value;
            }
            assert!(Instant::now() < until, "the page did not show {what} within {timeout:?}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    pub fn element(&self, css: &str) -> String {
        let found =
            self.call("POST", "/element", Some(json!({"using": "css selector", "value": css})));
        found[ELEMENT].as_str().unwrap_or_else(|| panic!("no {css}: {found}")).to_string()
    }

    /// Clicks at each offset from the centre of `element`, in CSS pixels, as a mouse would.
    pub fn click_at(&self, element: &str, offsets: &[(i64, i64)]) {
        let origin = json!({ ELEMENT: element });
        let mut actions = Vec::new();
        for (x, y) in offsets {
            actions.push(json!({"type": "pointerMove", "origin": origin, "x": x, "y": y}));
            actions.push(json!({"type": "pointerDown", "button": 0}));
            actions.push(json!({"type": "pointerUp", "button": 0}));
        }
        let mouse = json!({"type": "pointer", "id": "mouse",
            "parameters": {"pointerType": "mouse"}, "actions": actions});
        self.call("POST", "/actions", Some(json!({ "actions": [mouse] })));
    }

    /// Clicks at each point of the viewport, in CSS pixels, as a mouse would.
    pub fn click_in_viewport(&self, points: &[(i64, i64)]) {
        let mut actions = Vec::new();
        for (x, y) in points {
            actions.push(json!({"type": "pointerMove", "origin": "viewport", "x": x, "y": y}));
            actions.push(json!({"type": "pointerDown", "button": 0}));
            actions.push(json!({"type": "pointerUp", "button": 0}));
        }
        let mouse = json!({"type": "pointer", "id": "mouse",
            "parameters": {"pointerType": "mouse"}, "actions": actions});
        self.call("POST", "/actions", Some(json!({ "actions": [mouse] })));
    }

    /// Replaces the text of the input `css` with `text`, typed as a person would.
    pub fn type_into(&self, css: &str, text: &str) {
        let input = self.element(css);
        self.call("POST", &format!("/element/{input}/clear"), None);
        self.call("POST", &format!("/element/{input}/value"), Some(json!({ "text": text })));
    }

    /// Clicks the element `css`.
    pub fn click(&self, css: &str) {
        let element = self.element(css);
        self.call("POST", &format!("/element/{element}/click"), None);
    }

    pub fn screenshot(&self) -> Vec<u8> {
        let encoded = self.call("GET", "/screenshot", None);
        base64::engine::general_purpose::STANDARD.decode(encoded.as_str().unwrap()).unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.agent.delete(format!("{}/session/{}", self.base, self.session)).call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

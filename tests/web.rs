//! The node's web page in a real browser: Debian's headless Chromium, driven through
//! ChromeDriver's W3C WebDriver API, against a running node watching the shared footage. An
//! installer's round trip: click a zone on the camera's frame, paste its TOML into the config,
//! reload, and see the camera use it.
//!
//! The screenshot it takes lands in the test's temporary folder; with `UPDATE_DOCS=1` it also
//! replaces `docs/web.png`, the one the README shows.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use common::*;

/// WebDriver's key for an element reference in JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A headless Chromium session behind its own ChromeDriver, ended when dropped.
struct Browser {
    driver: Child,
    agent: ureq::Agent,
    session: String,
    base: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
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
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
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

    fn open(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    /// Runs `body` as a function in the page; what it returns.
    fn script(&self, body: &str) -> Value {
        self.call("POST", "/execute/sync", Some(json!({ "script": body, "args": [] })))
    }

    /// Waits until `body` returns something truthy in the page; that value.
    fn wait_for(&self, what: &str, timeout: Duration, body: &str) -> Value {
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

    fn element(&self, css: &str) -> String {
        let found =
            self.call("POST", "/element", Some(json!({"using": "css selector", "value": css})));
        found[ELEMENT].as_str().unwrap_or_else(|| panic!("no {css}: {found}")).to_string()
    }

    /// Clicks at each offset from the centre of `element`, in CSS pixels, as a mouse would.
    fn click_at(&self, element: &str, offsets: &[(i64, i64)]) {
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

    fn screenshot(&self) -> Vec<u8> {
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

/// A coordinate as the page writes it: 3 decimals, and a float even when whole (`1.0`).
fn toml_number(fraction: f64) -> String {
    format!("{:?}", (fraction * 1000.0).round() / 1000.0)
}

#[test]
fn the_page_shows_the_camera_and_its_incidents_and_four_clicks_make_a_zone_the_node_takes() {
    let broker = Mosquitto::start();
    let video = format!("file://{}", shared("testdata/vtest.avi").display());
    let (_dir, config) = write_config(&kerb_config(broker.port, false, &video, 5.0));
    let appliance = Appliance::run(&config);
    let until = Instant::now() + Duration::from_secs(30);
    let port = loop {
        if let Some(port) = appliance.http_port() {
            break port;
        }
        assert!(Instant::now() < until, "no HTTP port:\n{}", appliance.log());
        std::thread::sleep(Duration::from_millis(100));
    };
    let browser = Browser::start();
    browser.open(&format!("http://127.0.0.1:{port}/"));

    let kerb = "article.camera[data-camera='kerb']";
    let size = browser.wait_for(
        "the camera's frame",
        Duration::from_secs(60),
        &format!(
            "const img = document.querySelector(\"{kerb} img.frame\");
             if (!img || !img.complete || img.naturalWidth === 0) return null;
             const r = img.getBoundingClientRect();
             return [r.left, r.top, r.width, r.height, img.naturalWidth, img.naturalHeight];"
        ),
    );
    let rect: Vec<f64> = size.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!((rect[4], rect[5]), (768.0, 576.0), "vtest.avi's size");
    // Shown at its own size on whole pixels, a click lands exactly where the offsets say.
    assert_eq!(rect[..4], [rect[0].round(), rect[1].round(), 768.0, 576.0], "{rect:?}");

    let name = browser.element(&format!("{kerb} input.zone-name"));
    browser.call("POST", &format!("/element/{name}/clear"), None);
    browser.call("POST", &format!("/element/{name}/value"), Some(json!({"text": "bay \"A\""})));
    let image = browser.element(&format!("{kerb} img.frame"));
    let corners = [(0.125, 0.5), (0.5, 0.5), (0.5, 0.875), (0.125, 0.875)];
    let (width, height) = (rect[2], rect[3]);
    let offsets: Vec<(i64, i64)> = corners
        .iter()
        .map(|(x, y)| ((x * width - width / 2.0) as i64, (y * height - height / 2.0) as i64))
        .collect();
    // A fifth click, undone.
    browser.click_at(&image, &[offsets.as_slice(), &[(100, -100)]].concat());
    browser.call(
        "POST",
        &format!("/element/{}/click", browser.element(&format!("{kerb} button.undo"))),
        None,
    );

    let polygon: Vec<String> = offsets
        .iter()
        .map(|(dx, dy)| {
            let x = (width / 2.0 + *dx as f64) / width;
            let y = (height / 2.0 + *dy as f64) / height;
            format!("[{}, {}]", toml_number(x), toml_number(y))
        })
        .collect();
    let expected =
        format!("[[cameras.zones]]\nname = \"bay \\\"A\\\"\"\npolygon = [{}]", polygon.join(", "));
    assert_eq!(
        expected,
        "[[cameras.zones]]\nname = \"bay \\\"A\\\"\"\n\
         polygon = [[0.125, 0.5], [0.5, 0.5], [0.5, 0.875], [0.125, 0.875]]"
    );
    let toml =
        browser.script(&format!("return document.querySelector(\"{kerb} pre.toml\").textContent;"));
    assert_eq!(toml.as_str().unwrap(), expected);

    // The parked cars of the footage raise incidents: listed with their snapshots.
    let listed = browser.wait_for(
        "an incident with its snapshot",
        Duration::from_secs(60),
        "const imgs = [...document.querySelectorAll('#incidents li.incident img.snapshot')];
         if (!imgs.length || imgs.some((img) => !img.complete || img.naturalWidth === 0)) {
           return null;
         }
         return imgs[0].closest('li').querySelector('.name-en').textContent;",
    );
    assert_eq!(listed, "Illegal parking");

    let png = browser.screenshot();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("web.png");
    std::fs::write(&shot, &png).unwrap();
    if std::env::var_os("UPDATE_DOCS").is_some_and(|v| v == "1") {
        std::fs::write(repo("docs/web.png"), &png).unwrap();
    }

    // Pasted at the end of the config (the kerb camera's block) and reloaded, the zone is the
    // camera's: the page lists it with the polygon clicked.
    let text = std::fs::read_to_string(&config).unwrap();
    let staged = config.with_extension("toml.new");
    std::fs::write(&staged, format!("{text}\n{expected}\n")).unwrap();
    std::fs::rename(&staged, &config).unwrap();
    appliance.signal("HUP");
    let zone = browser.wait_for(
        "the pasted zone after the reload",
        Duration::from_secs(30),
        "return fetch('/api/cameras').then((r) => r.json()).then((j) =>
           j.cameras.find((c) => c.id === 'kerb').zones.find((z) => z.name === 'bay \"A\"'));",
    );
    let clicked = json!([[0.125, 0.5], [0.5, 0.5], [0.5, 0.875], [0.125, 0.875]]);
    assert_eq!(zone["polygon"], clicked, "{}", appliance.log());
    browser.wait_for(
        "the pasted zone's name",
        Duration::from_secs(10),
        &format!(
            "return document.querySelector(\"{kerb} .overlay\").textContent.includes('bay \"A\"');"
        ),
    );
}

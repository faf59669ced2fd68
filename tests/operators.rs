//! Operators at the node's page in a real browser (headless Chromium through ChromeDriver):
//! signing in, what a viewer and a forged request cannot do, and an installer moving a zone
//! that the running node then takes, the file keeping its comments; a broken edit is refused
//! next to its field and changes nothing.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::browser::Browser;
use common::*;

/// Adds a user with the command line, the password on stdin.
fn add_user(config: &std::path::Path, name: &str, role: &str, password: &str) {
    let mut add = Command::new(env!("CARGO_BIN_EXE_cityeye"))
        .args(["user", "add", name, "--role", role, "--config"])
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    add.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
    let out = add.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("added {role} user {name}")));
}

fn sign_in(browser: &Browser, name: &str, password: &str) {
    browser.wait_for(
        "the sign-in form",
        Duration::from_secs(10),
        "return !document.getElementById('signin').hidden;",
    );
    browser.type_into("#signin-name", name);
    browser.type_into("#signin-password", password);
    browser.click("#signin button[type=submit]");
}

/// The page's `fetch` of a POST, as a script on it would send it; its status and JSON.
fn post_from_page(browser: &Browser, path: &str, body: &str, with_csrf: bool) -> (u64, Value) {
    let csrf = if with_csrf { "'X-CSRF-Token': session.csrf," } else { "" };
    let answer = browser.call(
        "POST",
        "/execute/async",
        Some(serde_json::json!({"script": format!(
            "const done = arguments[arguments.length - 1];
             fetch('{path}', {{method: 'POST', headers: {{'Content-Type': 'application/json', {csrf}}},
                              body: JSON.stringify({body})}})
               .then(async (r) => done([r.status, await r.json().catch(() => null)]));"
        ), "args": []})),
    );
    (answer[0].as_u64().unwrap(), answer[1].clone())
}

#[test]
fn signed_in_roles_and_csrf_hold_and_an_installer_moves_a_zone_the_node_takes() {
    let broker = Mosquitto::start();
    let subscriber = Subscriber::connect(broker.port, "cityeye/+/+/incident/#");
    let video = format!("file://{}", shared("testdata/vtest.avi").display());
    let text = format!("# A kerb under test.\n{}", kerb_config(broker.port, false, &video, 5.0))
        .replace("[http]\n", "[http]\nusers_file = \"users.toml\"  # who may sign in\n")
        .replace(
            "  [[cameras.zones]]\n",
            "  # Where parking is not allowed.\n  [[cameras.zones]]\n",
        )
        .replace("dwell_s = 5\n", "dwell_s = 5 # seconds\n");
    let (dir, config) = write_config(&text);
    add_user(&config, "ana", "installer", "ana's long password");
    add_user(&config, "bo", "viewer", "bo's long password");
    let users = std::fs::read_to_string(dir.path().join("users.toml")).unwrap();
    assert!(users.contains("$argon2id$") && !users.contains("long password"), "{users}");

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

    // Nothing without signing in, and a wrong password is refused.
    let (status, _) = post_from_page(&browser, "/api/config/edit", "{}", false);
    assert_eq!(status, 401);
    sign_in(&browser, "ana", "not the password");
    let refused = browser.wait_for(
        "the refusal",
        Duration::from_secs(10),
        "return document.getElementById('signin-error').textContent || null;",
    );
    assert_eq!(refused, "wrong name or password");
    assert_eq!(browser.script("return document.querySelector('main').hidden;"), true);
    let log = appliance.log();
    let failed = log.lines().find(|l| l.contains("sign-in failed: wrong name or password"));
    assert!(failed.is_some_and(|l| l.contains("ana")), "{log}");
    assert!(!appliance.log().contains("not the password"), "the password is never logged");

    // A viewer sees the page but cannot save; a POST without the CSRF token is refused.
    sign_in(&browser, "bo", "bo's long password");
    browser.wait_for(
        "the viewer signed in",
        Duration::from_secs(10),
        "return document.getElementById('user').textContent === 'bo (viewer)';",
    );
    let cookie = browser.call("GET", "/cookie/cityeye_session", None);
    assert_eq!(
        (cookie["httpOnly"].as_bool(), cookie["sameSite"].as_str()),
        (Some(true), Some("Strict")),
        "{cookie}"
    );
    let before = std::fs::read_to_string(&config).unwrap();
    let edit = r#"{camera: 'kerb', changes: [{zone: 'no-parking', polygon: [[0, 0], [0.5, 0], [0.5, 0.5]]}]}"#;
    let (status, answer) = post_from_page(&browser, "/api/config/edit", edit, true);
    assert_eq!(
        (status, answer["error"].as_str()),
        (403, Some("only an installer may change this"))
    );
    let (status, answer) = post_from_page(&browser, "/api/config/edit", edit, false);
    assert_eq!((status, answer["error"].as_str()), (403, Some("missing or wrong CSRF token")));
    assert_eq!(std::fs::read_to_string(&config).unwrap(), before, "nothing saved");
    let shown = browser
        .script("return getComputedStyle(document.querySelector('button.save-zone')).display;");
    assert_eq!(shown, "none", "a viewer is offered no save button");
    browser.click("#signout");

    // The installer: both parked vehicles raise incidents in the old zone first.
    sign_in(&browser, "ana", "ana's long password");
    browser.wait_for(
        "the installer signed in",
        Duration::from_secs(10),
        "return document.getElementById('user').textContent === 'ana (installer)';",
    );
    let messages =
        subscriber.wait_until(Duration::from_secs(60), |m| incidents(m, "start").len() >= 2);
    let starts = incidents(&messages, "start");
    assert!(starts.len() >= 2, "{}", appliance.log());
    let foot = |b: &[f64]| (b[0] + b[2] / 2.0, b[1] + b[3]);
    let (kept, other_box) = (foot(&first_box(&starts[0].json())), first_box(&starts[1].json()));
    let left_out = foot(&other_box);

    // Move the zone: pick it, clear it, click a small one around the first vehicle only.
    let kerb = "article.camera[data-camera='kerb']";
    browser.wait_for(
        "the camera's frame",
        Duration::from_secs(30),
        &format!(
            "const img = document.querySelector(\"{kerb} img.frame\");
             return img && img.complete && img.naturalWidth > 0;"
        ),
    );
    browser.script(&format!(
        "const pick = document.querySelector(\"{kerb} select.zone-pick\");
         pick.value = 'no-parking'; pick.dispatchEvent(new Event('change'));"
    ));
    browser.click(&format!("{kerb} button.clear"));
    let (x0, x1) = ((kept.0 - 0.03).max(0.0), (kept.0 + 0.02).min(0.998));
    let (y0, y1) = ((kept.1 - 0.05).max(0.0), (kept.1 + 0.03).min(0.998));
    assert!(
        !(x0..x1).contains(&left_out.0) || !(y0..y1).contains(&left_out.1),
        "the zone takes one vehicle"
    );
    let corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)];
    // Where the picture is in the viewport once scrolled into it.
    let rect = browser.script(&format!(
        "const img = document.querySelector(\"{kerb} img.frame\");
         img.scrollIntoView({{block: 'start', inline: 'start'}});
         const r = img.getBoundingClientRect(); return [r.left, r.top, r.width, r.height];"
    ));
    let r: Vec<f64> = rect.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let points: Vec<(i64, i64)> = corners
        .iter()
        .map(|(x, y)| ((r[0] + x * r[2]).round() as i64, (r[1] + y * r[3]).round() as i64))
        .collect();
    browser.click_in_viewport(&points);
    let saved_at = subscriber.messages().len();
    browser.click(&format!("{kerb} button.save-zone"));
    browser.wait_for(
        "the zone saved",
        Duration::from_secs(30),
        &format!("return document.querySelector(\"{kerb} .copied\").textContent === 'saved' || document.querySelector(\"{kerb} .zone-error\").textContent || null;"),
    );
    let error = browser
        .script(&format!("return document.querySelector(\"{kerb} .zone-error\").textContent;"));
    assert_eq!(error, "", "{}", appliance.log());

    // On disk: the new polygon, every comment, and the old file as the backup.
    let after = std::fs::read_to_string(&config).unwrap();
    for comment in [
        "# A kerb under test.",
        "# who may sign in",
        "# Where parking is not allowed.",
        "dwell_s = 5 # seconds",
    ] {
        assert!(after.contains(comment), "{comment} lost:\n{after}");
    }
    assert!(!after.contains("polygon = [[0.80, 0.00]"), "{after}");
    assert_eq!(std::fs::read_to_string(config.with_extension("toml.bak")).unwrap(), before);
    let saved: toml::Value = toml::from_str(&after).unwrap();
    let polygon = saved["cameras"][0]["zones"][0]["polygon"].as_array().unwrap().clone();
    assert_eq!(polygon.len(), 4, "{after}");

    // The node's next incident comes from the new zone: the vehicle inside it, not the other.
    let messages = subscriber
        .wait_until(Duration::from_secs(30), |m| !incidents(&m[saved_at..], "start").is_empty());
    let next = incidents(&messages[saved_at..], "start");
    assert!(
        !next.is_empty(),
        "no incident after the move, {kept:?} {polygon:?}:\n{}",
        appliance.log()
    );
    let raised = foot(&first_box(&next[0].json()));
    assert!(
        (x0..=x1).contains(&raised.0) && (y0..=y1).contains(&raised.1),
        "{raised:?} is not in the new zone"
    );
    std::thread::sleep(Duration::from_secs(8));
    let later = subscriber.messages();
    let outside = incidents(&later[saved_at..], "start")
        .into_iter()
        .filter(|s| iou(&first_box(&s.json()), &other_box) >= 0.5)
        .count();
    assert_eq!(outside, 0, "the vehicle outside the new zone raises nothing");

    // A broken edit: refused next to its field, and the file stays as it is.
    browser.wait_for(
        "the algorithm editor",
        Duration::from_secs(10),
        &format!("return document.querySelector(\"{kerb} form.algorithm .field[data-key='dwell_s'] input\");"),
    );
    let saved_text = std::fs::read_to_string(&config).unwrap();
    browser.type_into(&format!("{kerb} form.algorithm .field[data-key='dwell_s'] input"), "-3");
    browser.click(&format!("{kerb} form.algorithm button.save-algorithm"));
    let shown = browser.wait_for(
        "the mistake next to dwell_s",
        Duration::from_secs(30),
        &format!("return document.querySelector(\"{kerb} form.algorithm .field[data-key='dwell_s'] .field-error\").textContent || null;"),
    );
    assert!(shown.as_str().unwrap().contains("must be zero or more seconds"), "{shown}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), saved_text, "the file is unchanged");
}

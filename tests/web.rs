//! The node's web page in a real browser: Debian's headless Chromium, driven through
//! ChromeDriver's W3C WebDriver API, against a running node watching the shared footage. An
//! installer's round trip: click a zone on the camera's frame, paste its TOML into the config,
//! reload, and see the camera use it.
//!
//! The screenshot it takes lands in the test's temporary folder; with `UPDATE_DOCS=1` it also
//! replaces `docs/web.png`, the one the README shows.

mod common;

use std::time::{Duration, Instant};

use serde_json::json;

use common::browser::Browser;
use common::*;

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

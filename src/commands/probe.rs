//! `cityeye check --probe`: is the site ready? Opens every camera once, connects to the broker
//! and writes to the data dir, and says for each what works and, when not, why — in the words
//! an installer on a ladder can act on (DNS, refused, the RTSP server's error status, no video,
//! codec missing).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::{CameraConfig, Config};
use crate::ingest::{self, IngestError};
use crate::publish::link::Settings;
use crate::wire::Topics;

/// One stream's probe, as a table row: a camera's stream, or each of its detect and record
/// streams.
pub struct CameraProbe {
    pub camera: String,
    pub outcome: Result<StreamProbe, String>,
}

/// What a stream turned out to be.
pub struct StreamProbe {
    pub codec: Option<String>,
    pub size: Option<(u32, u32)>,
    pub fps: Option<f64>,
    pub first_frame_after: Duration,
}

/// Probes every camera, one after the other (a box's uplink is small), then the broker and the
/// data dir. Prints the report; returns whether everything works.
pub fn run(config: &Config, settings: &Settings) -> bool {
    let cameras: Vec<CameraProbe> = config.cameras.iter().flat_map(probe_camera).collect();
    print!("{}", camera_table(&cameras));
    let broker = if config.mqtt.embedded_broker {
        println!("broker   embedded: started by `cityeye run`, nothing to probe");
        Ok(Duration::ZERO)
    } else {
        probe_broker(config, settings)
    };
    match &broker {
        _ if config.mqtt.embedded_broker => {}
        Ok(took) => println!(
            "broker   ok: {} (published in {:.2} s)",
            settings.describe(),
            took.as_secs_f64()
        ),
        Err(e) => println!("broker   FAILED: {}: {e}", settings.describe()),
    }
    let data = probe_data_dir(&config.node.data_dir);
    match &data {
        Ok(free) => println!("data dir ok: {} ({free} free)", config.node.data_dir.display()),
        Err(e) => println!("data dir FAILED: {e}"),
    }
    cameras.iter().all(|c| c.outcome.is_ok()) && broker.is_ok() && data.is_ok()
}

/// A camera's row; with a record stream, a row for each stream. The record stream is not
/// decoded: its size is what its parser read in the stream.
fn probe_camera(camera: &CameraConfig) -> Vec<CameraProbe> {
    let detect = ingest::probe(camera).map(|p| StreamProbe {
        codec: p.codec,
        size: Some((p.frame.width as u32, p.frame.height as u32)),
        fps: p.fps,
        first_frame_after: p.first_frame_after,
    });
    let Some(record) = ingest::probe_record(camera) else {
        return vec![CameraProbe { camera: camera.id.clone(), outcome: in_words(camera, detect) }];
    };
    let record = record.map(|p| StreamProbe {
        codec: Some(p.codec),
        size: p.size,
        fps: p.fps,
        first_frame_after: p.first_buffer_after,
    });
    vec![
        CameraProbe { camera: format!("{} detect", camera.id), outcome: in_words(camera, detect) },
        CameraProbe { camera: format!("{} record", camera.id), outcome: in_words(camera, record) },
    ]
}

fn in_words(
    camera: &CameraConfig,
    outcome: Result<StreamProbe, IngestError>,
) -> Result<StreamProbe, String> {
    outcome.map_err(|e| {
        let text = camera.url.redact(&e.to_string());
        match e {
            // Already in an installer's words.
            IngestError::Rtsp { .. } | IngestError::NoVideoTrack { .. } => text,
            _ => explain(&text),
        }
    })
}

/// The failure in an installer's words, followed by what the video stack said.
fn explain(error: &str) -> String {
    let lower = error.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| lower.contains(w));
    let cause = if has(&["resolve", "name or service not known", "name resolution"]) {
        "DNS: the camera's host name does not resolve"
    } else if has(&["unauthorized", "401", "not authorized"]) {
        "401 unauthorized: check the user and password in the camera's URL"
    } else if has(&["refused", "could not open resource for reading and writing"]) {
        "refused: nothing answers on the camera's host and port"
    } else if has(&["timeout", "timed out", "no frames for"]) {
        "timeout: the camera answers but sends no video"
    } else if has(&["missing plugin", "no suitable plugins", "no decoder", "not-negotiated"]) {
        "codec missing: no installed GStreamer decoder for this stream"
    } else if has(&["not-linked", "no video", "could not determine type"]) {
        "no video track in the stream"
    } else {
        "failed"
    };
    format!("{cause} ({error})")
}

/// Connects like the node (as a client of its own) and publishes one QoS 1 message under the
/// node's topics, not retained: the node's retained status is left to the node.
fn probe_broker(config: &Config, settings: &Settings) -> Result<Duration, String> {
    let started = Instant::now();
    let client_id = format!("cityeye-probe-{}-{}", config.node.id, std::process::id());
    let (client, mut connection) = rumqttc::Client::new(settings.subscriber_options(&client_id), 8);
    let topic = format!("{}/probe", Topics::new(&config.mqtt.topic_prefix, &config.node.id).base());
    client
        .publish(topic, rumqttc::QoS::AtLeastOnce, false, b"cityeye check --probe".to_vec())
        .map_err(|e| e.to_string())?;
    let deadline = started + Duration::from_secs(10);
    while Instant::now() < deadline {
        match connection.recv_timeout(Duration::from_millis(200)) {
            Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)))) => {
                let _ = client.disconnect();
                return Ok(started.elapsed());
            }
            Ok(Err(e)) => return Err(e.to_string()),
            _ => {}
        }
    }
    Err("no acknowledgement within 10 s".into())
}

/// Writable (a real write, as the outbox does at start), and the space left on its disk.
fn probe_data_dir(dir: &Path) -> Result<String, String> {
    // Created as the node would create it at start.
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    crate::publish::probe_writable(dir).map_err(|e| e.to_string())?;
    let free = crate::publish::free_bytes(dir)
        .map_err(|e| format!("{}: cannot read the free space: {e}", dir.display()))?;
    Ok(format!("{:.1} GiB", free as f64 / f64::from(1u32 << 30)))
}

fn camera_table(cameras: &[CameraProbe]) -> String {
    let mut rows = vec![
        ["camera", "reachable", "codec", "resolution", "fps", "first frame", "reason"]
            .map(String::from),
    ];
    for c in cameras {
        rows.push(match &c.outcome {
            Ok(p) => [
                c.camera.clone(),
                "yes".into(),
                p.codec.as_deref().map_or("?".into(), codec_name),
                p.size.map_or("?".into(), |(w, h)| format!("{w}x{h}")),
                p.fps.map_or("?".into(), |f| format!("{f:.1}")),
                format!("{:.2} s", p.first_frame_after.as_secs_f64()),
                String::new(),
            ],
            Err(reason) => {
                let none = || "-".to_string();
                [c.camera.clone(), "NO".into(), none(), none(), none(), none(), reason.clone()]
            }
        });
    }
    let widths: Vec<usize> =
        (0..7).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    rows.iter()
        .map(|row| {
            let cells: Vec<String> =
                row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
            cells.join("  ").trim_end().to_string() + "\n"
        })
        .collect()
}

/// `video/x-h264` → `H.264`; other media types as they are.
fn codec_name(media: &str) -> String {
    match media {
        "video/x-h264" => "H.264".into(),
        "video/x-h265" => "H.265".into(),
        "video/mpeg" => "MPEG".into(),
        "image/jpeg" => "MJPEG".into(),
        other => other.trim_start_matches("video/x-").into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_explained_in_an_installers_words() {
        let refused = "rtspsrc0: Could not open resource for reading and writing.";
        assert!(explain(refused).starts_with("refused:"));
        assert!(explain("Could not resolve server name.").starts_with("DNS:"));
        assert!(explain("Unauthorized (401)").starts_with("401 unauthorized"));
        assert!(explain("no frames for 10 s").starts_with("timeout"));
        assert!(explain("something new").starts_with("failed (something new)"));
    }

    #[test]
    fn the_table_lines_up() {
        let rows = [CameraProbe { camera: "gate".into(), outcome: Err("refused: x".into()) }];
        let table = camera_table(&rows);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("camera  reachable  codec"));
        assert!(lines[1].starts_with("gate    NO         -"), "{table}");
        assert_eq!(codec_name("video/x-h265"), "H.265");
    }
}

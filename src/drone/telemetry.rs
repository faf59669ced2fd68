//! Telemetry samples, from KLV or MQTT, and the pose each frame is matched with.
//!
//! Both sources become [`UasSample`]s, ST 0601's vocabulary, kept in time order. A frame takes
//! the sample nearest its time: KLV samples are stamped with the stream time of their buffers
//! (the same clock as the frames), MQTT samples with their `timestamp_ms` field or, without
//! one, their arrival, compared with the frame's wall-clock time.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::geo::{LatLon, Pose};
use super::klv::UasSample;
use crate::config::BrokerUrl;
use crate::config::TelemetryConfig;

/// Samples kept: seconds of telemetry at the 10-30 a second drones send.
const KEPT: usize = 512;

/// Telemetry samples in time order, by the time each was taken (seconds). Implausible samples
/// are turned away and counted, never kept.
#[derive(Debug, Default)]
pub struct Samples {
    kept: VecDeque<(f64, UasSample)>,
    /// Samples turned away since the camera started.
    rejected: u64,
    /// Why the newest sample offered was turned away; `None` once a newer one is kept.
    newest_rejected: Option<(f64, String)>,
}

impl Samples {
    /// Keeps `sample`, taken at `t`, unless a value in it is implausible: then says which.
    pub fn push(&mut self, t: f64, sample: UasSample) -> Result<(), String> {
        if let Some(problem) = sample.implausible() {
            self.rejected += 1;
            if self.newest_rejected.as_ref().is_none_or(|(u, _)| *u <= t)
                && self.kept.back().is_none_or(|(u, _)| *u <= t)
            {
                self.newest_rejected = Some((t, problem.clone()));
            }
            return Err(problem);
        }
        if self.newest_rejected.as_ref().is_some_and(|(u, _)| *u <= t) {
            self.newest_rejected = None;
        }
        // Out-of-order arrivals (a reordering link) go where they belong.
        let at = self.kept.iter().rposition(|(u, _)| *u <= t).map_or(0, |i| i + 1);
        self.kept.insert(at, (t, sample));
        if self.kept.len() > KEPT {
            self.kept.pop_front();
        }
        Ok(())
    }

    /// How many samples were turned away.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// Why the newest sample offered was turned away, if it was.
    pub fn newest_rejected(&self) -> Option<&str> {
        self.newest_rejected.as_ref().map(|(_, why)| why.as_str())
    }

    /// The sample nearest `t`, and how far from it it was taken (seconds, positive when
    /// before).
    pub fn nearest(&self, t: f64) -> Option<(f64, &UasSample)> {
        self.kept
            .iter()
            .min_by(|(a, _), (b, _)| (t - a).abs().total_cmp(&(t - b).abs()))
            .map(|(u, s)| (t - u, s))
    }
}

/// A sample as a camera pose, with the config's values where the sample has none. `aspect` is
/// the frame's height over its width, for a vertical field of view derived from the
/// horizontal one. Names the first value a pose cannot do without when it is missing.
pub fn pose(s: &UasSample, config: &TelemetryConfig, aspect: f64) -> Result<Pose, &'static str> {
    let hfov_deg = s.sensor_hfov_deg.or(config.hfov_deg).ok_or("horizontal field of view")?;
    let derived = || 2.0 * ((hfov_deg.to_radians() / 2.0).tan() * aspect).atan().to_degrees();
    Ok(Pose {
        sensor: LatLon {
            lat: s.sensor_latitude_deg.ok_or("sensor latitude")?,
            lon: s.sensor_longitude_deg.ok_or("sensor longitude")?,
        },
        altitude_m: s.sensor_altitude_m.ok_or("sensor altitude")?,
        ground_altitude_m: s.frame_centre_elevation_m.unwrap_or(config.ground_altitude_m),
        heading_deg: s.platform_heading_deg.ok_or("platform heading")?,
        pitch_deg: s.platform_pitch_deg.unwrap_or(0.0),
        roll_deg: s.platform_roll_deg.unwrap_or(0.0),
        sensor_azimuth_deg: s.sensor_relative_azimuth_deg.unwrap_or(0.0),
        sensor_elevation_deg: s.sensor_relative_elevation_deg.ok_or("sensor elevation")?,
        sensor_roll_deg: s.sensor_relative_roll_deg.unwrap_or(0.0),
        hfov_deg,
        vfov_deg: s.sensor_vfov_deg.or(config.vfov_deg).unwrap_or_else(derived),
    })
}

/// A JSON telemetry message read through the configured pointers; `None` when it has none of
/// them (another message on the same topic).
pub fn from_json(json: &serde_json::Value, fields: &[(String, String)]) -> Option<UasSample> {
    let mut s = UasSample::default();
    let mut any = false;
    for (name, pointer) in fields {
        let value = json.pointer(pointer).and_then(|v| match v {
            serde_json::Value::String(text) => text.trim().parse().ok(),
            v => v.as_f64(),
        });
        let Some(v) = value.filter(|v| v.is_finite()) else { continue };
        any = true;
        let slot = match name.as_str() {
            "latitude" => &mut s.sensor_latitude_deg,
            "longitude" => &mut s.sensor_longitude_deg,
            "altitude" => &mut s.sensor_altitude_m,
            "heading" => &mut s.platform_heading_deg,
            "pitch" => &mut s.platform_pitch_deg,
            "roll" => &mut s.platform_roll_deg,
            "gimbal_pitch" => &mut s.sensor_relative_elevation_deg,
            "gimbal_yaw" => &mut s.sensor_relative_azimuth_deg,
            "gimbal_roll" => &mut s.sensor_relative_roll_deg,
            "hfov" => &mut s.sensor_hfov_deg,
            "vfov" => &mut s.sensor_vfov_deg,
            "timestamp_ms" => {
                s.timestamp_us = Some((v * 1000.0) as u64);
                continue;
            }
            _ => continue,
        };
        *slot = Some(v);
    }
    any.then_some(s)
}

/// Logs a turned-away sample: the first and then one in a hundred, so a broken link does not
/// flood the log.
pub fn log_rejected(camera: &str, rejected: u64, why: &str) {
    if rejected % 100 == 1 {
        tracing::warn!(camera, rejected, "telemetry sample rejected: {why}");
    }
}

/// Seconds since 1970 of a wall-clock time.
pub fn epoch_s(at: SystemTime) -> f64 {
    at.duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// An MQTT subscription filling a camera's samples, on a thread of its own, until dropped.
pub struct MqttFeed {
    pub samples: Arc<Mutex<Samples>>,
    stop: Arc<AtomicBool>,
    client: rumqttc::Client,
}

impl MqttFeed {
    pub fn start(
        camera: &str,
        broker: &BrokerUrl,
        topic: &str,
        fields: Vec<(String, String)>,
    ) -> Result<MqttFeed, String> {
        let id = format!("cityeye-telemetry-{camera}-{}", std::process::id());
        let mut options = rumqttc::MqttOptions::new(id, broker.host.clone(), broker.port);
        options.set_keep_alive(Duration::from_secs(15));
        let (client, mut connection) = rumqttc::Client::new(options, 64);
        let samples = Arc::new(Mutex::new(Samples::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (sink, stopped, resubscribe) = (samples.clone(), stop.clone(), client.clone());
        let (topic, camera) = (topic.to_string(), camera.to_string());
        std::thread::Builder::new()
            .name(format!("telemetry-{camera}"))
            .spawn(move || {
                let mut connected = false;
                for event in connection.iter() {
                    if stopped.load(Ordering::Relaxed) {
                        break;
                    }
                    match event {
                        // Also after a reconnect: a clean session forgets subscriptions.
                        Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                            connected = true;
                            let _ = resubscribe.try_subscribe(&topic, rumqttc::QoS::AtMostOnce);
                        }
                        Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                            let Ok(json) = serde_json::from_slice(&p.payload) else {
                                tracing::debug!(camera, "telemetry message is not JSON");
                                continue;
                            };
                            if let Some(sample) = from_json(&json, &fields) {
                                let t = sample
                                    .timestamp_us
                                    .map_or(epoch_s(SystemTime::now()), |us| us as f64 / 1e6);
                                let mut samples = sink.lock().unwrap_or_else(|e| e.into_inner());
                                if let Err(why) = samples.push(t, sample) {
                                    log_rejected(&camera, samples.rejected(), &why);
                                }
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            if connected {
                                tracing::warn!(camera, "telemetry broker: {e}; reconnecting");
                                connected = false;
                            }
                            std::thread::sleep(Duration::from_secs(1));
                        }
                    }
                }
            })
            .map_err(|e| format!("cannot start the telemetry thread: {e}"))?;
        Ok(MqttFeed { samples, stop, client })
    }
}

impl Drop for MqttFeed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.client.try_disconnect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heading(h: f64) -> UasSample {
        UasSample { platform_heading_deg: Some(h), ..UasSample::default() }
    }

    #[test]
    fn implausible_samples_are_turned_away_counted_and_named() {
        let mut samples = Samples::default();
        samples.push(1.0, heading(10.0)).unwrap();
        let bad = UasSample { sensor_latitude_deg: Some(1000.0), ..heading(20.0) };
        assert_eq!(samples.push(2.0, bad).unwrap_err(), "latitude 1000 is outside -90..90");
        assert_eq!(samples.rejected(), 1);
        assert_eq!(samples.newest_rejected(), Some("latitude 1000 is outside -90..90"));
        let (_, kept) = samples.nearest(2.0).unwrap();
        assert_eq!(kept.platform_heading_deg, Some(10.0), "the bad sample is not kept");
        samples.push(3.0, heading(30.0)).unwrap();
        assert_eq!(samples.newest_rejected(), None, "a newer good sample clears it");
        let nan = UasSample { sensor_hfov_deg: Some(f64::NAN), ..heading(40.0) };
        assert!(samples.push(4.0, nan).unwrap_err().starts_with("horizontal field of view NaN"));
        assert_eq!(samples.rejected(), 2);
    }

    #[test]
    fn the_nearest_sample_wins_also_when_it_arrived_late() {
        let mut samples = Samples::default();
        for (t, h) in [(1.0, 10.0), (2.0, 20.0), (1.5, 15.0), (3.0, 30.0)] {
            samples.push(t, heading(h)).unwrap();
        }
        let (age, s) = samples.nearest(1.6).unwrap();
        assert_eq!(s.platform_heading_deg, Some(15.0));
        assert!((age - 0.1).abs() < 1e-9);
        let (age, s) = samples.nearest(2.9).unwrap();
        assert_eq!((s.platform_heading_deg, (age * 10.0).round()), (Some(30.0), -1.0));
        assert!(Samples::default().nearest(1.0).is_none());
    }

    #[test]
    fn json_fields_are_read_through_their_pointers() {
        let json = serde_json::json!({
            "timestamp": 1795000000123u64,
            "data": {"latitude": 31.2, "longitude": "121.5", "height": 120.5,
                     "attitude_head": -30.0, "payload": [{"gimbal_pitch": -45.0}]}
        });
        let fields: Vec<(String, String)> = [
            ("latitude", "/data/latitude"),
            ("longitude", "/data/longitude"),
            ("altitude", "/data/height"),
            ("heading", "/data/attitude_head"),
            ("gimbal_pitch", "/data/payload/0/gimbal_pitch"),
            ("timestamp_ms", "/timestamp"),
            ("gimbal_yaw", "/data/missing"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .into();
        let s = from_json(&json, &fields).unwrap();
        assert_eq!(s.sensor_latitude_deg, Some(31.2));
        assert_eq!(s.sensor_longitude_deg, Some(121.5));
        assert_eq!(s.sensor_altitude_m, Some(120.5));
        assert_eq!(s.platform_heading_deg, Some(-30.0));
        assert_eq!(s.sensor_relative_elevation_deg, Some(-45.0));
        assert_eq!(s.sensor_relative_azimuth_deg, None);
        assert_eq!(s.timestamp_us, Some(1_795_000_000_123_000));
        assert!(from_json(&serde_json::json!({"other": 1}), &fields).is_none());
    }
}

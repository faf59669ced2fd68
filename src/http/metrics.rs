//! `/metrics`: the node's counters in the Prometheus text format (version 0.0.4), encoded by
//! `prometheus-client`.
//!
//! The counters stay where the stages keep them ([`NodeStats`]: plain atomics, no locks on the
//! frame path); each scrape reads them through a [`Collector`] into a registry made for it.
//! Counters are described without their `_total`, which the encoder adds, so the names a
//! scraper sees are `cityeye_frames_in_total` and so on.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet, prometheus_text,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::stats::{CameraStats, Histogram, NodeStats};

/// `text/plain; version=0.0.4; charset=utf-8`: the classic text format, not OpenMetrics.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// `/metrics`
pub async fn metrics(State(stats): State<Arc<NodeStats>>) -> Response {
    match render(stats) {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        // Writing to a String does not fail; a collector could, in principle.
        Err(fmt::Error) => {
            let text = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
            (StatusCode::INTERNAL_SERVER_ERROR, text, "cannot encode the metrics\n").into_response()
        }
    }
}

/// The metrics page now.
pub fn render(stats: Arc<NodeStats>) -> Result<String, fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape(stats)));
    let mut text = String::new();
    prometheus_text::encode(&mut text, &registry)?;
    Ok(text)
}

/// Reads the node's counters at each scrape.
struct Scrape(Arc<NodeStats>);

impl fmt::Debug for Scrape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Scrape").field(&self.0.node()).finish()
    }
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        use MetricType::{Counter, Gauge};
        let (stats, e) = (&self.0, &mut encoder);
        let cameras = stats.cameras();
        // One sample per camera, labelled with its id. Ids are ASCII letters, digits, `-`, `_`
        // and `.` (checked at load); the encoder would escape anything else anyway.
        let per_camera =
            |value: Read| cameras.iter().map(move |(id, c)| ([("camera", id.as_str())], value(c)));
        // A gauge of 1, not the crate's info type, which would name it `<name>_info` itself.
        let node = [([("node", stats.node())], ConstGauge::new(1))];
        family(e, "cityeye_node_info", "The node's id.", Gauge, node)?;
        let uptime = ConstGauge::new(stats.uptime().as_secs());
        single(e, "cityeye_uptime_seconds", "Seconds since the node started.", uptime)?;
        let online = per_camera(|c| u64::from(c.state() == "online"));
        let help = "1 while the camera's stream delivers frames.";
        family(
            e,
            "cityeye_camera_online",
            help,
            Gauge,
            online.map(|(l, v)| (l, ConstGauge::new(v))),
        )?;
        let frames: [(&str, &str, Read); 4] = [
            ("cityeye_frames_in", "Frames decoded.", |c| relaxed(&c.frames_in)),
            ("cityeye_frames_analysed", "Frames analysed.", |c| relaxed(&c.frames_analysed)),
            (
                "cityeye_frames_gated",
                "Frames analysed without running the detectors: no motion in the zones.",
                |c| relaxed(&c.frames_gated),
            ),
            (
                "cityeye_frames_dropped",
                "Frames sampled for analysis but replaced by a newer one first.",
                |c| relaxed(&c.frames_dropped),
            ),
        ];
        for (name, help, value) in frames {
            let samples = per_camera(value).map(|(l, v)| (l, ConstCounter::new(v)));
            family(e, name, help, Counter, samples)?;
        }
        family(
            e,
            "cityeye_inference_seconds",
            "Time per analysed frame in the camera's models, tracker and rules.",
            MetricType::Histogram,
            cameras.iter().map(|(id, c)| ([("camera", id.as_str())], c.inference_histogram())),
        )?;
        single(
            e,
            "cityeye_publish_latency_seconds",
            "From a frame's arrival to the broker's acknowledgement of the incident message it raised.",
            stats.publish_latency(),
        )?;
        let incidents: Vec<_> =
            cameras.iter().map(|(id, c)| (id, c.incidents_by_algorithm())).collect();
        let incidents = incidents.iter().flat_map(|(id, by_algorithm)| {
            by_algorithm.iter().map(|(algorithm, n)| {
                (
                    [("camera", id.as_str()), ("algorithm", algorithm.as_str())],
                    ConstCounter::new(*n),
                )
            })
        });
        family(e, "cityeye_incidents", "New incidents.", Counter, incidents)?;
        let held_back = cameras.iter().map(|(id, c)| {
            ([("camera", id.as_str())], ConstCounter::new(relaxed(&c.incidents_suppressed)))
        });
        let help = "New incidents a suppression (an operator's false_positive verdict) kept from starting.";
        family(e, "cityeye_incidents_suppressed", help, Counter, held_back)?;
        let verdicts = stats.verdicts();
        let verdicts = ["confirmed", "false_positive"]
            .map(|v| ([("verdict", v)], ConstCounter::new(verdicts.get(v).copied().unwrap_or(0))));
        family(e, "cityeye_verdicts", "Operators' verdicts applied.", Counter, verdicts)?;
        let help = "Suppressions in force.";
        single(e, "cityeye_suppressions", help, ConstGauge::new(stats.suppressions()))?;
        let outbox = stats.outbox();
        let waiting = "Messages waiting for the broker's acknowledgement.";
        single(e, "cityeye_outbox_messages", waiting, ConstGauge::new(outbox.depth))?;
        let bytes = "Payload bytes of the waiting messages on disk.";
        single(e, "cityeye_outbox_bytes", bytes, ConstGauge::new(outbox.bytes))?;
        let cap = ConstGauge::new(outbox.max_bytes);
        single(e, "cityeye_outbox_max_bytes", "outbox.max_bytes.", cap)?;
        single(
            e,
            "cityeye_outbox_evidence_dropped",
            "Evidence dropped to keep the outbox under its cap.",
            ConstCounter::new(outbox.evidence_dropped),
        )?;
        single(
            e,
            "cityeye_outbox_store_errors",
            "Writes to the outbox's disk that failed.",
            ConstCounter::new(outbox.store_errors),
        )?;
        single(
            e,
            "cityeye_outbox_recovered",
            "Corrupt outbox files set aside at the start, a fresh outbox started instead.",
            ConstCounter::new(stats.outbox_recoveries()),
        )?;
        let connected = ConstGauge::new(u64::from(stats.mqtt_connected()));
        let help = "1 while the node is connected to its broker.";
        single(e, "cityeye_mqtt_connected", help, connected)
    }
}

/// How a per-camera sample reads its camera's counters.
type Read = fn(&CameraStats) -> u64;

fn relaxed(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// A family: its help and type, then a sample per label set (none at all if there are none).
fn family<L: EncodeLabelSet, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (L, M)>,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, metric) in samples {
        metric.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A metric without labels: its help and type, then its sample.
fn single(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: impl EncodeMetric,
) -> fmt::Result {
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// The histograms in [`NodeStats`] are kept as counts per bucket; the encoder makes them
/// cumulative and adds `_sum` and `_count`.
impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> fmt::Result {
        encoder.encode_histogram::<NoLabelSet>(self.sum_s, self.count(), &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::CameraState;
    use crate::wire::OutboxStats;
    use std::time::Duration;

    /// Two cameras, one online with frames, inference times and incidents; publish latencies;
    /// an outbox; a broker link.
    fn busy_node() -> Arc<NodeStats> {
        let stats = Arc::new(NodeStats::new("edge-1", ["gate", "kerb"]));
        let kerb = stats.camera("kerb");
        kerb.set_state(&CameraState::Online { width: 768, height: 576 });
        kerb.frames_in.store(100, Ordering::Relaxed);
        kerb.frames_analysed.store(3, Ordering::Relaxed);
        kerb.frames_dropped.store(5, Ordering::Relaxed);
        kerb.frames_gated.store(2, Ordering::Relaxed);
        for ms in [4, 12, 2000] {
            kerb.add_inference(Duration::from_millis(ms));
        }
        kerb.count_incident("illegal_parking");
        kerb.count_incident("illegal_parking");
        stats.camera("gate").count_incident("crowd_gathering");
        kerb.incidents_suppressed.store(1, Ordering::Relaxed);
        stats.count_verdict("false_positive");
        stats.set_suppressions(1);
        for ms in 1..=100 {
            stats.add_publish_latency(Duration::from_millis(ms));
        }
        stats.add_publish_latency(Duration::from_millis(7000));
        stats.set_outbox(OutboxStats {
            depth: 3,
            bytes: 1234,
            max_bytes: 1 << 30,
            evidence_dropped: 1,
            evidence_dropped_bytes: 9,
            store_errors: 2,
        });
        stats.set_mqtt_connected(true);
        stats.count_outbox_recovery();
        stats
    }

    /// Every family with its name, help, type and labels as scrapers and dashboards know them
    /// (the page the hand-formatted exposition wrote, but for `0.0` for a zero float sum).
    const BUSY_PAGE: &str = r#"# HELP cityeye_node_info The node's id.
# TYPE cityeye_node_info gauge
cityeye_node_info{node="edge-1"} 1
# HELP cityeye_uptime_seconds Seconds since the node started.
# TYPE cityeye_uptime_seconds gauge
cityeye_uptime_seconds 0
# HELP cityeye_camera_online 1 while the camera's stream delivers frames.
# TYPE cityeye_camera_online gauge
cityeye_camera_online{camera="gate"} 0
cityeye_camera_online{camera="kerb"} 1
# HELP cityeye_frames_in_total Frames decoded.
# TYPE cityeye_frames_in_total counter
cityeye_frames_in_total{camera="gate"} 0
cityeye_frames_in_total{camera="kerb"} 100
# HELP cityeye_frames_analysed_total Frames analysed.
# TYPE cityeye_frames_analysed_total counter
cityeye_frames_analysed_total{camera="gate"} 0
cityeye_frames_analysed_total{camera="kerb"} 3
# HELP cityeye_frames_gated_total Frames analysed without running the detectors: no motion in the zones.
# TYPE cityeye_frames_gated_total counter
cityeye_frames_gated_total{camera="gate"} 0
cityeye_frames_gated_total{camera="kerb"} 2
# HELP cityeye_frames_dropped_total Frames sampled for analysis but replaced by a newer one first.
# TYPE cityeye_frames_dropped_total counter
cityeye_frames_dropped_total{camera="gate"} 0
cityeye_frames_dropped_total{camera="kerb"} 5
# HELP cityeye_inference_seconds Time per analysed frame in the camera's models, tracker and rules.
# TYPE cityeye_inference_seconds histogram
cityeye_inference_seconds_bucket{camera="gate",le="0.005"} 0
cityeye_inference_seconds_bucket{camera="gate",le="0.01"} 0
cityeye_inference_seconds_bucket{camera="gate",le="0.02"} 0
cityeye_inference_seconds_bucket{camera="gate",le="0.04"} 0
cityeye_inference_seconds_bucket{camera="gate",le="0.08"} 0
cityeye_inference_seconds_bucket{camera="gate",le="0.16"} 0
cityeye_inference_seconds_bucket{camera="gate",le="0.32"} 0
cityeye_inference_seconds_bucket{camera="gate",le="1"} 0
cityeye_inference_seconds_bucket{camera="gate",le="+Inf"} 0
cityeye_inference_seconds_sum{camera="gate"} 0.0
cityeye_inference_seconds_count{camera="gate"} 0
cityeye_inference_seconds_bucket{camera="kerb",le="0.005"} 1
cityeye_inference_seconds_bucket{camera="kerb",le="0.01"} 1
cityeye_inference_seconds_bucket{camera="kerb",le="0.02"} 2
cityeye_inference_seconds_bucket{camera="kerb",le="0.04"} 2
cityeye_inference_seconds_bucket{camera="kerb",le="0.08"} 2
cityeye_inference_seconds_bucket{camera="kerb",le="0.16"} 2
cityeye_inference_seconds_bucket{camera="kerb",le="0.32"} 2
cityeye_inference_seconds_bucket{camera="kerb",le="1"} 2
cityeye_inference_seconds_bucket{camera="kerb",le="+Inf"} 3
cityeye_inference_seconds_sum{camera="kerb"} 2.016
cityeye_inference_seconds_count{camera="kerb"} 3
# HELP cityeye_publish_latency_seconds From a frame's arrival to the broker's acknowledgement of the incident message it raised.
# TYPE cityeye_publish_latency_seconds histogram
cityeye_publish_latency_seconds_bucket{le="0.01"} 10
cityeye_publish_latency_seconds_bucket{le="0.025"} 25
cityeye_publish_latency_seconds_bucket{le="0.05"} 50
cityeye_publish_latency_seconds_bucket{le="0.1"} 100
cityeye_publish_latency_seconds_bucket{le="0.15"} 100
cityeye_publish_latency_seconds_bucket{le="0.25"} 100
cityeye_publish_latency_seconds_bucket{le="0.5"} 100
cityeye_publish_latency_seconds_bucket{le="1"} 100
cityeye_publish_latency_seconds_bucket{le="5"} 100
cityeye_publish_latency_seconds_bucket{le="+Inf"} 101
cityeye_publish_latency_seconds_sum 12.05
cityeye_publish_latency_seconds_count 101
# HELP cityeye_incidents_total New incidents.
# TYPE cityeye_incidents_total counter
cityeye_incidents_total{camera="gate",algorithm="crowd_gathering"} 1
cityeye_incidents_total{camera="kerb",algorithm="illegal_parking"} 2
# HELP cityeye_incidents_suppressed_total New incidents a suppression (an operator's false_positive verdict) kept from starting.
# TYPE cityeye_incidents_suppressed_total counter
cityeye_incidents_suppressed_total{camera="gate"} 0
cityeye_incidents_suppressed_total{camera="kerb"} 1
# HELP cityeye_verdicts_total Operators' verdicts applied.
# TYPE cityeye_verdicts_total counter
cityeye_verdicts_total{verdict="confirmed"} 0
cityeye_verdicts_total{verdict="false_positive"} 1
# HELP cityeye_suppressions Suppressions in force.
# TYPE cityeye_suppressions gauge
cityeye_suppressions 1
# HELP cityeye_outbox_messages Messages waiting for the broker's acknowledgement.
# TYPE cityeye_outbox_messages gauge
cityeye_outbox_messages 3
# HELP cityeye_outbox_bytes Payload bytes of the waiting messages on disk.
# TYPE cityeye_outbox_bytes gauge
cityeye_outbox_bytes 1234
# HELP cityeye_outbox_max_bytes outbox.max_bytes.
# TYPE cityeye_outbox_max_bytes gauge
cityeye_outbox_max_bytes 1073741824
# HELP cityeye_outbox_evidence_dropped_total Evidence dropped to keep the outbox under its cap.
# TYPE cityeye_outbox_evidence_dropped_total counter
cityeye_outbox_evidence_dropped_total 1
# HELP cityeye_outbox_store_errors_total Writes to the outbox's disk that failed.
# TYPE cityeye_outbox_store_errors_total counter
cityeye_outbox_store_errors_total 2
# HELP cityeye_outbox_recovered_total Corrupt outbox files set aside at the start, a fresh outbox started instead.
# TYPE cityeye_outbox_recovered_total counter
cityeye_outbox_recovered_total 1
# HELP cityeye_mqtt_connected 1 while the node is connected to its broker.
# TYPE cityeye_mqtt_connected gauge
cityeye_mqtt_connected 1
"#;

    #[test]
    fn the_page_keeps_every_name_help_type_and_label() {
        let page = render(busy_node()).unwrap();
        // Seconds since the node started: 0 unless this machine stalled the test.
        let uptime = |l: &str| l.starts_with("cityeye_uptime_seconds ");
        let page: String = page
            .lines()
            .map(|l| if uptime(l) { "cityeye_uptime_seconds 0\n".into() } else { format!("{l}\n") })
            .collect();
        assert_eq!(page, BUSY_PAGE);
        assert!(!page.contains("_total_total") && !page.contains("# EOF"), "not OpenMetrics");
    }

    #[test]
    fn metrics_are_prometheus_text_with_a_cumulative_histogram() {
        let stats = Arc::new(NodeStats::new("edge-1", ["kerb"]));
        let kerb = stats.camera("kerb");
        kerb.frames_analysed.store(3, Ordering::Relaxed);
        for ms in [4, 12, 2000] {
            kerb.add_inference(Duration::from_millis(ms));
        }
        kerb.count_incident("illegal_parking");
        stats.set_mqtt_connected(true);
        let text = render(stats).unwrap();
        for line in [
            "# TYPE cityeye_inference_seconds histogram",
            "cityeye_inference_seconds_bucket{camera=\"kerb\",le=\"0.005\"} 1",
            "cityeye_inference_seconds_bucket{camera=\"kerb\",le=\"0.02\"} 2",
            "cityeye_inference_seconds_bucket{camera=\"kerb\",le=\"1\"} 2",
            "cityeye_inference_seconds_bucket{camera=\"kerb\",le=\"+Inf\"} 3",
            "cityeye_inference_seconds_sum{camera=\"kerb\"} 2.016",
            "cityeye_inference_seconds_count{camera=\"kerb\"} 3",
            "# TYPE cityeye_incidents_total counter",
            "cityeye_incidents_total{camera=\"kerb\",algorithm=\"illegal_parking\"} 1",
            "cityeye_camera_online{camera=\"kerb\"} 0",
            "cityeye_mqtt_connected 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }

    #[test]
    fn publish_latency_is_a_cumulative_histogram_since_the_start() {
        let stats = Arc::new(NodeStats::new("edge-1", ["kerb"]));
        for ms in 1..=100 {
            stats.add_publish_latency(Duration::from_millis(ms));
        }
        // A stats report starts a new interval for the percentiles, not for the histogram.
        stats.report();
        let metrics = render(stats).unwrap();
        assert!(metrics.contains("cityeye_publish_latency_seconds_bucket{le=\"0.01\"} 10\n"));
        assert!(metrics.contains("cityeye_publish_latency_seconds_bucket{le=\"0.1\"} 100\n"));
        assert!(metrics.contains("cityeye_publish_latency_seconds_count 100\n"), "{metrics}");
    }
}

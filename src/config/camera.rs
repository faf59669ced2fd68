//! `[[cameras]]`: where each camera's video comes from, its zones and its algorithms.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer};
use url::Url;

use super::algorithm::{Algorithm, AlgorithmConfig};
use super::drone::{CameraKind, TelemetryConfig};
use crate::geometry::{GeoPolygon, Point, Polygon};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    pub id: String,
    #[serde(deserialize_with = "camera_source")]
    pub url: Source,
    /// The camera's record stream (its main stream, full resolution) when `url` is a smaller
    /// detect sub-stream: evidence clips are cut from it without decoding it; analysis and
    /// snapshots use `url`. Without it, clips come from `url`.
    #[serde(default, deserialize_with = "record_source")]
    pub record_url: Option<Source>,
    /// A built-in template (`rtsp`, `file`, `test`) or the path of a template file.
    pub pipeline: Option<String>,
    #[serde(default = "default_analysis_fps")]
    pub analysis_fps: f64,
    /// Which frames are decoded: `all` (the default), `keyframes` (delta frames dropped before
    /// the decoder) or `auto` (key frames only once their measured rate serves every algorithm).
    #[serde(default)]
    pub decode: Decode,
    /// How an RTSP camera's RTP comes: `auto` (absent), `tcp` or `udp`. Only for `rtsp://` and
    /// `rtsps://` cameras.
    pub transport: Option<Transport>,
    /// The detector models whose detections are tracked together: `model = "coco"` or
    /// `models = ["coco", "city"]`.
    #[serde(alias = "model", deserialize_with = "one_or_many")]
    pub models: Vec<String>,
    #[serde(default)]
    pub zones: Vec<ZoneConfig>,
    #[serde(default)]
    pub algorithms: Vec<AlgorithmConfig>,
    /// Which plates the camera reads (with `[plates]`): its incidents' vehicles (`false`, the
    /// default), every vehicle (`true`), or as a dedicated plate camera the whole frame
    /// (`"frame"`).
    #[serde(default)]
    pub plates: PlateScope,
    /// Plates exempt from this camera's algorithms, beside `plates.allow`.
    #[serde(default)]
    pub plate_allow: Vec<String>,
    /// `fixed` (the default) or `drone`: a drone's incidents are placed on the ground.
    #[serde(default)]
    pub kind: CameraKind,
    pub telemetry: Option<TelemetryConfig>,
    /// A drone's incident seen again within this many metres and its algorithm's `cooldown_s`
    /// updates the open incident instead of starting another.
    pub dedup_radius_m: Option<f64>,
    /// `algorithms` merged over their catalog entries, in the same order: what the stages run.
    /// Filled when the file has loaded and validated.
    #[serde(skip)]
    pub resolved: Vec<Algorithm>,
}

impl CameraConfig {
    /// The polygon of the zone called `name`.
    pub fn zone(&self, name: &str) -> Option<&Polygon> {
        self.zones.iter().find(|z| z.name == name).map(|z| &z.polygon)
    }

    /// The most analysed frames a second any of its algorithms needs, and which one needs them
    /// (the first, on a tie); `None` without algorithms. Reads the file's algorithms, so it
    /// serves validation before they are resolved; unknown types count for nothing.
    pub fn needed_fps(&self) -> Option<(f64, &'static str)> {
        let entries = self.algorithms.iter().filter_map(|a| super::catalog::find(&a.kind));
        entries.fold(None, |most, e| match most {
            Some((fps, _)) if fps >= e.min_fps => most,
            _ => Some((e.min_fps, e.id.as_str())),
        })
    }
}

/// Where a camera looks for plates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PlateScope {
    /// The vehicles its open incidents name.
    #[default]
    Incidents,
    /// Every vehicle tracked.
    Vehicles,
    /// A dedicated plate camera (a gate, a car-park entrance) that frames one vehicle at a time
    /// closer than a vehicle detector trained on street scenes recognises it: the whole frame
    /// is read, and each plate found is an object of class `plate`.
    Frame,
}

impl PlateScope {
    /// The class of the objects a plate camera's reads become.
    pub const PLATE_CLASS: &'static str = "plate";
}

impl<'de> Deserialize<'de> for PlateScope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Flag(bool),
            Name(String),
        }
        match Written::deserialize(d)? {
            Written::Flag(false) => Ok(PlateScope::Incidents),
            Written::Flag(true) => Ok(PlateScope::Vehicles),
            Written::Name(name) if name == "frame" => Ok(PlateScope::Frame),
            Written::Name(name) => Err(serde::de::Error::custom(format!(
                "`{name}` is not a plate scope: use true (every vehicle), false (the incidents' \
                 vehicles) or \"frame\" (a dedicated plate camera)"
            ))),
        }
    }
}

/// Which of a camera's frames are decoded.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Decode {
    /// Every frame; analysis samples them at `analysis_fps`.
    #[default]
    All,
    /// Key frames only: delta frames are dropped before the decoder, which then costs a tenth
    /// or less. Analysis sees one frame per key-frame interval.
    Keyframes,
    /// Every frame until the stream's key-frame rate is measured, then key frames only if that
    /// rate serves every algorithm of the camera.
    Auto,
}

impl Decode {
    pub fn name(self) -> &'static str {
        match self {
            Decode::All => "all",
            Decode::Keyframes => "keyframes",
            Decode::Auto => "auto",
        }
    }
}

/// The most frames a second key-frame decoding is counted on to give when the config is
/// checked, before any stream is measured: cameras send a key frame every 1 to 4 seconds.
pub const KEYFRAME_FPS: f64 = 1.0;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    pub name: String,
    /// Empty for a geo-fence.
    #[serde(default, deserialize_with = "polygon")]
    pub polygon: Polygon,
    /// A drone camera's zone: `[[lat, lon], …]` on the ground.
    #[serde(default, deserialize_with = "super::drone::geo_polygon")]
    pub geo_polygon: Option<GeoPolygon>,
}

/// How an RTSP camera's RTP packets come: interleaved on the RTSP connection (TCP) or as UDP
/// datagrams. Street links drop UDP, so TCP goes first; some servers (VLC's RTSP output, some
/// NVRs and encoders) offer only UDP.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// TCP first, then UDP when the server refuses TCP; what worked is tried first next time.
    #[default]
    Auto,
    Tcp,
    Udp,
}

impl Transport {
    /// The transports to try, in order, starting with `worked` when `auto` knows one.
    pub fn attempts(self, worked: Option<Transport>) -> Vec<Transport> {
        match (self, worked) {
            (Transport::Auto, Some(Transport::Udp)) => vec![Transport::Udp, Transport::Tcp],
            (Transport::Auto, _) => vec![Transport::Tcp, Transport::Udp],
            (fixed, _) => vec![fixed],
        }
    }

    /// As `rtspsrc`'s `protocols` property reads it; `auto` starts with TCP.
    pub fn protocols(self) -> &'static str {
        match self {
            Transport::Auto | Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

/// Where a camera's video comes from, parsed from its `url`.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// An RTSP stream; credentials are kept apart so they never reach a log.
    Rtsp { url: Url, user: Option<String>, password: Option<String> },
    /// A local video file (`file:///abs/path` or `file://relative/to/config`).
    File { path: PathBuf },
    /// GStreamer's test pattern (`test://smpte?width=640&height=480&fps=10`).
    Test { pattern: String, width: u32, height: u32, fps: u32 },
    /// MPEG-TS over UDP or SRT (`udp://`, `srt://`), or RTMP (`rtmp://`): drone links.
    Stream { url: Url },
}

impl Source {
    /// The built-in pipeline template this kind of source uses unless the camera names one.
    pub fn default_pipeline(&self) -> &'static str {
        match self {
            Source::Rtsp { .. } => "rtsp",
            Source::File { .. } => "file",
            Source::Test { .. } => "test",
            Source::Stream { url } => match url.scheme() {
                "udp" => "udp-ts",
                "srt" => "srt-ts",
                _ => "rtmp",
            },
        }
    }

    /// The URL as it may be shown anywhere: the password replaced by `***`.
    pub fn masked(&self) -> String {
        match self {
            Source::Rtsp { url, user, password } => {
                let mut shown = url.clone();
                if let Some(user) = user {
                    let _ = shown.set_username(user);
                }
                if password.is_some() {
                    let _ = shown.set_password(Some("***"));
                }
                shown.to_string()
            }
            Source::File { path } => format!("file://{}", path.display()),
            Source::Test { pattern, width, height, fps } => {
                format!("test://{pattern}?width={width}&height={height}&fps={fps}")
            }
            Source::Stream { url } => self.redact(url.as_str()),
        }
    }

    /// `text` with this source's password, if any, replaced by `***` (for messages that quote
    /// a URL back, such as GStreamer's errors).
    pub fn redact(&self, text: &str) -> String {
        match self {
            Source::Rtsp { password: Some(p), .. } if !p.is_empty() => {
                text.replace(p.as_str(), "***")
            }
            // An SRT link's secret is its passphrase.
            Source::Stream { url } => match url.query_pairs().find(|(k, _)| k == "passphrase") {
                Some((_, p)) if !p.is_empty() => text.replace(p.as_ref(), "***"),
                _ => text.to_string(),
            },
            _ => text.to_string(),
        }
    }

    pub fn is_live(&self) -> bool {
        !matches!(self, Source::File { .. })
    }
}

fn default_analysis_fps() -> f64 {
    5.0
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "a model name or a list of model names")]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(name) => vec![name],
        OneOrMany::Many(names) => names,
    })
}

/// The most points a zone's outline may have: zones are drawn by hand, and a larger one is a
/// mistake (or a file made to exhaust the node).
pub const MAX_POLYGON_POINTS: usize = 256;

/// What is wrong with a zone outline of `points` (`what`: `polygon`, `geo_polygon`): too few or
/// too many points, or edges that cross.
pub(super) fn outline_problem(what: &str, points: &[[f64; 2]]) -> Option<String> {
    if points.len() < 3 {
        return Some(format!("a {what} needs at least 3 points, this one has {}", points.len()));
    }
    if points.len() > MAX_POLYGON_POINTS {
        return Some(format!(
            "a {what} has at most {MAX_POLYGON_POINTS} points, this one has {}",
            points.len()
        ));
    }
    let (i, j) = crate::geometry::self_crossing(points)?;
    Some(format!(
        "the {what} crosses itself: its edge from point {i} and its edge from point {j} \
         intersect; list the points in order around the zone"
    ))
}

fn polygon<'de, D: Deserializer<'de>>(d: D) -> Result<Polygon, D::Error> {
    let points = Vec::<[f32; 2]>::deserialize(d)?;
    if let Some((i, p)) =
        points.iter().enumerate().find(|(_, p)| p.iter().any(|c| !(0.0..=1.0).contains(c)))
    {
        return Err(serde::de::Error::custom(format!(
            "point {i} [{}, {}] is outside the image: coordinates are fractions of width and height, from 0 to 1",
            p[0], p[1]
        )));
    }
    let wide: Vec<[f64; 2]> = points.iter().map(|p| p.map(f64::from)).collect();
    if let Some(problem) = outline_problem("polygon", &wide) {
        return Err(serde::de::Error::custom(problem));
    }
    Ok(Polygon::new(points.into_iter().map(|[x, y]| Point { x, y }).collect()))
}

fn camera_source<'de, D: Deserializer<'de>>(d: D) -> Result<Source, D::Error> {
    let text = String::deserialize(d)?;
    parse_source(&text).map_err(serde::de::Error::custom)
}

fn record_source<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Source>, D::Error> {
    camera_source(d).map(Some)
}

fn parse_source(text: &str) -> Result<Source, String> {
    // file:// is taken apart by hand: a URL parser would read a relative path's first folder
    // as a host name.
    if let Some(path) = text.strip_prefix("file://") {
        if path.is_empty() {
            return Err("a file:// URL needs a path".into());
        }
        return Ok(Source::File { path: PathBuf::from(path) });
    }
    let url = Url::parse(text).map_err(|e| {
        format!("not a valid camera URL ({e}); expected rtsp://, rtsps://, file:// or test://")
    })?;
    match url.scheme() {
        "rtsp" | "rtsps" => rtsp_source(url),
        "test" => test_source(&url),
        "udp" | "srt" | "rtmp" if url.host_str().is_some_and(|h| !h.is_empty()) => {
            Ok(Source::Stream { url })
        }
        "udp" | "srt" | "rtmp" => Err(format!("a {}:// URL needs a host", url.scheme())),
        other => Err(format!(
            "scheme `{other}` is not supported; use rtsp://, rtsps://, file://, test://, \
             udp://, srt:// or rtmp://"
        )),
    }
}

fn rtsp_source(mut url: Url) -> Result<Source, String> {
    if url.host_str().is_none_or(str::is_empty) {
        return Err("an RTSP URL needs a host".into());
    }
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let user = Some(url.username()).filter(|u| !u.is_empty()).map(decode);
    let password = url.password().map(decode);
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Ok(Source::Rtsp { url, user, password })
}

fn test_source(url: &Url) -> Result<Source, String> {
    let pattern = url.host_str().unwrap_or("smpte").to_string();
    let (mut width, mut height, mut fps) = (640, 480, 10);
    for (key, value) in url.query_pairs() {
        let slot = match key.as_ref() {
            "width" => &mut width,
            "height" => &mut height,
            "fps" => &mut fps,
            other => {
                return Err(format!("unknown test:// parameter `{other}`; use width, height, fps"));
            }
        };
        *slot =
            value.parse().ok().filter(|v| *v > 0).ok_or_else(|| {
                format!("test:// parameter `{key}` must be a positive whole number")
            })?;
    }
    Ok(Source::Test { pattern, width, height, fps })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtsp_credentials_are_separated_and_masked() {
        let s = parse_source("rtsp://admin:p%40ss@192.0.2.10:554/stream1").unwrap();
        let Source::Rtsp { url, user, password } = &s else { panic!("not rtsp: {s:?}") };
        assert_eq!(url.as_str(), "rtsp://192.0.2.10:554/stream1");
        assert_eq!(user.as_deref(), Some("admin"));
        assert_eq!(password.as_deref(), Some("p@ss"));
        assert_eq!(s.masked(), "rtsp://admin:***@192.0.2.10:554/stream1");
        assert!(!s.masked().contains("p@ss") && !s.masked().contains("p%40ss"));
    }

    #[test]
    fn auto_transport_tries_tcp_first_unless_udp_worked() {
        use Transport::*;
        assert_eq!(Auto.attempts(None), [Tcp, Udp]);
        assert_eq!(Auto.attempts(Some(Tcp)), [Tcp, Udp]);
        assert_eq!(Auto.attempts(Some(Udp)), [Udp, Tcp]);
        assert_eq!(Tcp.attempts(Some(Udp)), [Tcp]);
        assert_eq!(Udp.attempts(None), [Udp]);
        assert_eq!((Auto.protocols(), Udp.protocols()), ("tcp", "udp"));
    }

    #[test]
    fn test_and_file_sources_parse() {
        assert_eq!(
            parse_source("test://ball?width=320&height=240&fps=5").unwrap(),
            Source::Test { pattern: "ball".into(), width: 320, height: 240, fps: 5 }
        );
        assert_eq!(
            parse_source("file://videos/a.mp4").unwrap(),
            Source::File { path: PathBuf::from("videos/a.mp4") }
        );
        assert!(parse_source("http://x/y").unwrap_err().contains("scheme `http`"));
        assert!(parse_source("test://smpte?fps=0").unwrap_err().contains("positive"));
    }
}

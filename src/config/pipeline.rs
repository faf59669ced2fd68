//! Pipeline templates: how a camera's source becomes a GStreamer pipeline description.
//!
//! Each camera gets a pipeline built from a template in `pipelines/` (built in: `rtsp`, `file`,
//! `test`, `udp-ts`, `srt-ts`, `rtmp`; a camera may name its own template file), its
//! `{placeholders}` filled from the camera's URL, and the analysis tail appended:
//! `videoconvert ! video/x-raw,format=I420 ! appsink`. The elements ingest looks up by name are
//! named here, so the template and the code that reads it agree.

use super::camera::{CameraConfig, Source, Transport};

const BUILTIN_TEMPLATES: [(&str, &str); 6] = [
    ("rtsp", include_str!("../../pipelines/rtsp.pipeline")),
    ("file", include_str!("../../pipelines/file.pipeline")),
    ("test", include_str!("../../pipelines/test.pipeline")),
    ("udp-ts", include_str!("../../pipelines/udp-ts.pipeline")),
    ("srt-ts", include_str!("../../pipelines/srt-ts.pipeline")),
    ("rtmp", include_str!("../../pipelines/rtmp.pipeline")),
];
/// The converter and sink of the analysis tail.
pub const CONVERT_NAME: &str = "cityeye_convert";
pub const SINK_NAME: &str = "cityeye_frames";
/// The element a template names to expose its stream before decoding.
pub const ENCODED_NAME: &str = "encoded";
/// The element a template names to receive the stream's KLV metadata.
pub const METADATA_NAME: &str = "klv";
const RTSP_LATENCY_MS: u32 = 200;

pub fn is_builtin_template(name: &str) -> bool {
    BUILTIN_TEMPLATES.iter().any(|(n, _)| *n == name)
}

/// The full GStreamer pipeline for a camera; with `masked`, the password reads `***`.
pub fn pipeline_description(camera: &CameraConfig, masked: bool) -> Result<String, String> {
    let name = camera.pipeline.as_deref().unwrap_or(camera.url.default_pipeline());
    let template = read_template(name)?;
    let transport = camera.transport.unwrap_or_default();
    let source = render(&template, &template_values(&camera.url, transport, masked))
        .map_err(|e| format!("template `{name}`: {e}"))?;
    Ok(format!(
        "{source} ! videoconvert name={CONVERT_NAME} ! video/x-raw,format=I420 ! appsink name={SINK_NAME}"
    ))
}

/// The pipeline that receives a camera's record stream (`record_url`), or `None` without one:
/// the camera's template (or the record source's built-in one) filled from `record_url`, cut
/// after the element named `encoded` and ended by a sink. Nothing after that element runs, so
/// the record stream is never decoded. A file plays in real time, like the camera it stands in
/// for.
pub fn record_description(camera: &CameraConfig, masked: bool) -> Option<Result<String, String>> {
    let source = camera.record_url.as_ref()?;
    let sync = !source.is_live();
    let head = encoded_part(camera, source, masked, "a record stream");
    Some(head.map(|head| format!("{head} ! fakesink sync={sync} async=false")))
}

/// A camera's stream before decoding, for a decoder shared with other cameras to take its key
/// frames from: its template cut after the element named `encoded`. Ingest appends the parser
/// and the appsink.
pub fn encoded_description(camera: &CameraConfig, masked: bool) -> Result<String, String> {
    encoded_part(camera, &camera.url, masked, "a shared decoder's key frames")
}

/// `source` in the camera's template (or the source's built-in one), up to and with the element
/// named `encoded`: the stream before decoding. `what` names, in the error, what is taken there.
fn encoded_part(
    camera: &CameraConfig,
    source: &Source,
    masked: bool,
    what: &str,
) -> Result<String, String> {
    let name = camera.pipeline.as_deref().unwrap_or(source.default_pipeline());
    let template = read_template(name)?;
    let transport = camera.transport.unwrap_or_default();
    let whole = render(&template, &template_values(source, transport, masked))
        .map_err(|e| format!("template `{name}`: {e}"))?;
    let named = format!("name={ENCODED_NAME}");
    let whole_word = |&(i, _): &(usize, &str)| {
        whole[i + named.len()..].chars().next().is_none_or(char::is_whitespace)
    };
    let at = whole.match_indices(&named).find(whole_word).map(|(i, _)| i).ok_or_else(|| {
        format!(
            "template `{name}` names no element `{ENCODED_NAME}`: {what} is taken from it before \
             decoding (the built-in templates have `tee name={ENCODED_NAME}`)"
        )
    })?;
    let end = whole[at..].find('!').map_or(whole.len(), |i| at + i);
    Ok(whole[..end].trim_end().to_string())
}

fn read_template(name: &str) -> Result<String, String> {
    match BUILTIN_TEMPLATES.iter().find(|(n, _)| *n == name) {
        Some((_, t)) => Ok(t.to_string()),
        None => std::fs::read_to_string(name)
            .map_err(|e| format!("cannot read pipeline template {name}: {e}")),
    }
}

enum Value {
    Text(String),
    Number(u32),
    Bare(&'static str),
}

fn template_values(
    source: &Source,
    transport: Transport,
    masked: bool,
) -> Vec<(&'static str, Value)> {
    match source {
        Source::Rtsp { url, user, password } => vec![
            ("location", Value::Text(url.to_string())),
            ("user", Value::Text(user.clone().unwrap_or_default())),
            (
                "password",
                Value::Text(match password {
                    Some(_) if masked => "***".into(),
                    p => p.clone().unwrap_or_default(),
                }),
            ),
            ("latency_ms", Value::Number(RTSP_LATENCY_MS)),
            // Bare: a flags value, not text.
            ("protocols", Value::Bare(transport.protocols())),
        ],
        Source::File { path } => {
            vec![("location", Value::Text(path.to_string_lossy().into_owned()))]
        }
        Source::Test { pattern, width, height, fps } => vec![
            ("pattern", Value::Text(pattern.clone())),
            ("width", Value::Number(*width)),
            ("height", Value::Number(*height)),
            ("fps", Value::Number(*fps)),
        ],
        Source::Stream { url } => {
            vec![("location", Value::Text(if masked { source.masked() } else { url.to_string() }))]
        }
    }
}

/// Fills `{name}` placeholders; text values are quoted for gst-launch syntax. Lines starting
/// with `#` are comments.
fn render(template: &str, values: &[(&str, Value)]) -> Result<String, String> {
    let body: Vec<&str> =
        template.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let mut rest = body.join(" ");
    let mut out = String::with_capacity(rest.len());
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').ok_or("unclosed `{`")? + open;
        let name = &rest[open + 1..close];
        let value = values.iter().find(|(n, _)| *n == name).map(|(_, v)| v).ok_or_else(|| {
            let known: Vec<&str> = values.iter().map(|(n, _)| *n).collect();
            format!(
                "unknown placeholder {{{name}}}; this camera's URL provides {}",
                known.join(", ")
            )
        })?;
        out.push_str(&rest[..open]);
        match value {
            Value::Text(t) => {
                out.push_str(&format!("\"{}\"", t.replace('\\', "\\\\").replace('"', "\\\"")))
            }
            Value::Number(n) => out.push_str(&n.to_string()),
            Value::Bare(word) => out.push_str(word),
        }
        rest = rest.split_off(close + 1);
    }
    out.push_str(&rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_values_are_quoted_and_passwords_masked() {
        let source = Source::Rtsp {
            url: url::Url::parse("rtsp://192.0.2.1/s").unwrap(),
            user: Some("admin".into()),
            password: Some("se\"cret".into()),
        };
        let t = "rtspsrc location={location} user-pw={password} latency={latency_ms} \
                 protocols={protocols}";
        assert_eq!(
            render(t, &template_values(&source, Transport::Auto, false)).unwrap(),
            "rtspsrc location=\"rtsp://192.0.2.1/s\" user-pw=\"se\\\"cret\" latency=200 \
             protocols=tcp"
        );
        assert_eq!(
            render(t, &template_values(&source, Transport::Udp, true)).unwrap(),
            "rtspsrc location=\"rtsp://192.0.2.1/s\" user-pw=\"***\" latency=200 protocols=udp"
        );
    }

    #[test]
    fn record_and_key_frame_streams_are_cut_before_the_decoder() {
        let camera = |url: &str, record: Option<&str>, pipeline: Option<&str>| {
            let toml = format!(
                "id = \"c\"\nurl = \"{url}\"\nmodel = \"m\"\n{}{}",
                record.map_or(String::new(), |r| format!("record_url = \"{r}\"\n")),
                pipeline.map_or(String::new(), |p| format!("pipeline = \"{p}\"\n")),
            );
            toml::from_str::<CameraConfig>(&toml).unwrap()
        };
        assert!(record_description(&camera("rtsp://h/sub", None, None), false).is_none());
        let both = camera("rtsp://h/sub", Some("rtsp://u:pw@h/main"), None);
        let record = record_description(&both, true).unwrap().unwrap();
        assert!(record.starts_with("rtspsrc location=\"rtsp://h/main\""), "{record}");
        assert!(record.contains("user-pw=\"***\""), "{record}");
        assert!(
            record.ends_with("parsebin ! tee name=encoded ! fakesink sync=false async=false"),
            "{record}"
        );
        assert!(!record.contains("decodebin"), "{record}");
        let file = camera("rtsp://h/sub", Some("file:///v.mp4"), None);
        let record = record_description(&file, false).unwrap().unwrap();
        assert!(record.starts_with("filesrc") && record.contains("sync=true"), "{record}");
        let bare = camera("rtsp://h/sub", Some("test://smpte"), None);
        let e = record_description(&bare, false).unwrap().unwrap_err();
        assert!(e.contains("`test`") && e.contains("`encoded`"), "{e}");
        // A key-frame camera's own stream, cut the same way, for a shared decoder.
        let keys = encoded_description(&camera("rtsp://h/sub", None, None), false).unwrap();
        assert!(keys.starts_with("rtspsrc location=\"rtsp://h/sub\""), "{keys}");
        assert!(keys.ends_with("parsebin ! tee name=encoded"), "{keys}");
        assert!(encoded_description(&camera("test://smpte", None, None), false).is_err());
    }

    #[test]
    fn unknown_placeholders_are_named() {
        let source = Source::File { path: "/v.mp4".into() };
        let e =
            render("filesrc location={path}", &template_values(&source, Transport::Auto, false))
                .unwrap_err();
        assert!(e.contains("{path}") && e.contains("location"), "{e}");
    }
}

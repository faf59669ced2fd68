//! `cityeye simulate`: video files served as RTSP cameras on this machine, so a site can be
//! rehearsed without its cameras. The tests use the same server as their cameras.
//!
//! Each file is decoded and re-encoded to H.264 (or H.265) as a camera sends it, and served by
//! gst-rtsp-server at a path of a port on a loopback address. Streams never end: at the end of
//! the file it plays again from the start, its timestamps running on, so a node sees one
//! unbroken stream. Clients connected at the same time share one session; a session starts at
//! the beginning of the file.
//!
//! Only loopback addresses are served: a simulator answering at a real camera's address on a
//! site's network would impersonate that camera.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;
use url::Host;

use std::io::Write;
use std::process::ExitCode;

use super::{EXIT_CONFIG, load_config};
use crate::config::Source;
use crate::ingest;

/// The port an `rtsp://` URL without one means.
const RTSP_PORT: u16 = 554;
/// Longest wait for a decoded frame before a video counts as stalled.
const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// What the served streams are encoded with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    H264,
    H265,
}

impl Codec {
    /// The encoder and payloader, with what a camera does: a key frame every 10 frames, the
    /// parameter sets repeated with each.
    fn elements(self) -> &'static str {
        match self {
            Codec::H264 => {
                "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 ! rtph264pay"
            }
            Codec::H265 => {
                "x265enc tune=zerolatency speed-preset=ultrafast key-int-max=10 ! rtph265pay"
            }
        }
    }

    /// The GStreamer elements it needs and the Debian package of each.
    fn needs(self) -> [(&'static str, &'static str); 2] {
        match self {
            Codec::H264 => [
                ("x264enc", "gstreamer1.0-plugins-ugly"),
                ("rtph264pay", "gstreamer1.0-plugins-good"),
            ],
            Codec::H265 => [
                ("x265enc", "gstreamer1.0-plugins-bad"),
                ("rtph265pay", "gstreamer1.0-plugins-good"),
            ],
        }
    }
}

/// A video file served at a path of the server.
#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    /// The URL's path, such as `/stream1`.
    pub path: String,
    pub video: PathBuf,
    /// RTP over UDP only, as VLC's RTSP output and some NVRs offer it: a client asking for TCP
    /// is answered `461 Unsupported transport`. Otherwise both, as most cameras.
    pub udp_only: bool,
}

/// An RTSP server on a loopback address, serving its mounts until dropped.
pub struct Server {
    address: IpAddr,
    port: u16,
    _server: rtsp::RTSPServer,
    source: Option<glib::SourceId>,
}

impl Server {
    /// Serves each mount's video at `rtsp://address:port/path`; port 0 takes a free one. Fails
    /// on an address that is not loopback, a port that is taken, a missing GStreamer element and
    /// a video that does not decode.
    pub fn start(
        address: IpAddr,
        port: u16,
        mounts: &[Mount],
        codec: Codec,
    ) -> Result<Server, String> {
        if !address.is_loopback() {
            return Err(format!(
                "{address} is not a loopback address: it would impersonate a camera"
            ));
        }
        ingest::init_gstreamer().map_err(|e| e.to_string())?;
        for (element, package) in codec.needs() {
            if gst::ElementFactory::find(element).is_none() {
                return Err(format!(
                    "GStreamer element {element} is missing (Debian package {package})"
                ));
            }
        }
        for mount in mounts {
            // Decoding the first frame now turns a bad file into an error before anyone connects.
            Player::open(&mount.video)
                .and_then(|mut player| player.next().map(drop))
                .map_err(|e| format!("{}: {e}", mount.video.display()))?;
        }
        // gst-rtsp-server only says whether it could listen; the OS says why not.
        TcpListener::bind((address, port))
            .map_err(|e| format!("cannot listen on {}: {e}", host_port(address, port)))?;
        main_loop();
        let server = rtsp::RTSPServer::new();
        server.set_address(&address.to_string());
        server.set_service(&port.to_string());
        let points = server.mount_points().ok_or("the RTSP server has no mount points")?;
        for mount in mounts {
            points.add_factory(&mount.path, factory(mount, codec));
        }
        let source = server
            .attach(None)
            .map_err(|_| format!("cannot listen on {}", host_port(address, port)))?;
        let port = u16::try_from(server.bound_port()).map_err(|_| "the RTSP server has no port")?;
        Ok(Server { address, port, _server: server, source: Some(source) })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL a mount is served at.
    pub fn url(&self, path: &str) -> String {
        format!("rtsp://{}{path}", host_port(self.address, self.port))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Removing the source closes the listening socket.
        if let Some(source) = self.source.take() {
            source.remove();
        }
    }
}

fn host_port(address: IpAddr, port: u16) -> String {
    match address {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// The media of one mount: frames from a [`Player`] of the video, pushed into an `appsrc` as
/// the session asks for them, then encoded and payloaded.
fn factory(mount: &Mount, codec: Codec) -> rtsp::RTSPMediaFactory {
    let factory = rtsp::RTSPMediaFactory::new();
    if mount.udp_only {
        factory.set_protocols(rtsp::gst_rtsp::RTSPLowerTrans::UDP);
    }
    factory.set_launch(&format!(
        "( appsrc name=video format=time ! {} name=pay0 pt=96 config-interval=1 )",
        codec.elements()
    ));
    factory.set_shared(true);
    let video = mount.video.clone();
    factory.connect_media_configure(move |_, media| {
        let src = media
            .element()
            .downcast::<gst::Bin>()
            .ok()
            .and_then(|bin| bin.by_name("video"))
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok());
        let Some(src) = src else { return };
        let mut player = match Player::open(&video) {
            Ok(player) => player,
            Err(e) => {
                tracing::error!(video = %video.display(), "cannot play: {e}");
                let _ = src.end_of_stream();
                return;
            }
        };
        let video = video.clone();
        // The player lives as long as the session's appsrc, which drops its callbacks.
        src.set_callbacks(
            gst_app::AppSrcCallbacks::builder()
                .need_data(move |src, _| match player.next() {
                    Ok((buffer, caps)) => {
                        if src.caps().as_ref() != Some(&caps) {
                            src.set_caps(Some(&caps));
                        }
                        // A session being torn down refuses buffers; nothing to do about it.
                        let _ = src.push_buffer(buffer);
                    }
                    Err(e) => {
                        tracing::error!(video = %video.display(), "stream ended: {e}");
                        let _ = src.end_of_stream();
                    }
                })
                .build(),
        );
    });
    factory
}

/// A video file decoded to raw frames, from the start again after its end, with timestamps that
/// run on from loop to loop.
struct Player {
    video: PathBuf,
    decoder: Decoder,
    /// Added to this loop's timestamps: where the previous loops ended.
    offset: gst::ClockTime,
    /// The first timestamp of this loop.
    loop_start: Option<gst::ClockTime>,
    /// The end of the latest frame, in output time.
    end: gst::ClockTime,
}

impl Player {
    fn open(video: &Path) -> Result<Player, String> {
        if !video.is_file() {
            return Err("video file not found".into());
        }
        Ok(Player {
            video: video.to_path_buf(),
            decoder: Decoder::start(video)?,
            offset: gst::ClockTime::ZERO,
            loop_start: None,
            end: gst::ClockTime::ZERO,
        })
    }

    /// The next frame and its caps, stamped in output time.
    fn next(&mut self) -> Result<(gst::Buffer, gst::Caps), String> {
        let mut restarted = false;
        loop {
            let timeout = gst::ClockTime::from_nseconds(FRAME_TIMEOUT.as_nanos() as u64);
            let Some(sample) = self.decoder.sink.try_pull_sample(timeout) else {
                if !self.decoder.sink.is_eos() {
                    return Err(self.decoder.failure());
                }
                if restarted {
                    return Err("the video has no frames".into());
                }
                // A new decoder plays the file from the start: simpler and surer than seeking,
                // which not every container allows.
                restarted = true;
                self.decoder = Decoder::start(&self.video)?;
                (self.offset, self.loop_start) = (self.end, None);
                continue;
            };
            let (Some(mut buffer), Some(caps)) = (sample.buffer_owned(), sample.caps_owned())
            else {
                continue;
            };
            let pts = buffer.pts().unwrap_or(gst::ClockTime::ZERO);
            let first = *self.loop_start.get_or_insert(pts);
            let at = self.offset + pts.saturating_sub(first);
            // Raw frames carry their duration; 25 frames/s when one does not.
            let duration = buffer.duration().unwrap_or(gst::ClockTime::from_mseconds(40));
            self.end = at + duration;
            let writable = buffer.make_mut();
            writable.set_pts(at);
            writable.set_dts(gst::ClockTime::NONE);
            return Ok((buffer, caps));
        }
    }
}

/// A GStreamer pipeline decoding a video file to raw frames, at most two ahead of their reader.
struct Decoder {
    pipeline: gst::Pipeline,
    sink: gst_app::AppSink,
}

impl Decoder {
    fn start(video: &Path) -> Result<Decoder, String> {
        ingest::init_gstreamer().map_err(|e| e.to_string())?;
        let pipeline = gst::parse::launch(
            "filesrc name=file ! decodebin ! videoconvert ! video/x-raw,format=I420 \
             ! appsink name=frames sync=false max-buffers=2",
        )
        .map_err(|e| format!("cannot build a decoder: {e}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "the decoder is not a pipeline".to_string())?;
        let file = pipeline.by_name("file").ok_or("the decoder has no filesrc")?;
        file.set_property("location", video.to_string_lossy().as_ref());
        let sink = pipeline
            .by_name("frames")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or("the decoder has no appsink")?;
        let decoder = Decoder { pipeline, sink };
        decoder.pipeline.set_state(gst::State::Playing).map_err(|_| decoder.failure())?;
        Ok(decoder)
    }

    /// Why it stopped, from its bus.
    fn failure(&self) -> String {
        let bus = self.pipeline.bus();
        let message = bus.and_then(|bus| bus.pop_filtered(&[gst::MessageType::Error]));
        match message.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Error(e)) => format!("cannot decode: {}", e.error()),
            _ => format!("no frame within {} s", FRAME_TIMEOUT.as_secs()),
        }
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// One glib main loop, on the default context, for every server of the process.
fn main_loop() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        let main_loop = glib::MainLoop::new(None, false);
        std::thread::Builder::new()
            .name("rtsp-server".into())
            .spawn(move || main_loop.run())
            .expect("a thread for the RTSP server's main loop");
    });
}

/// One camera of a config as `cityeye simulate` serves it.
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    pub camera: String,
    pub address: IpAddr,
    pub port: u16,
    pub mount: Mount,
}

/// Which camera gets which video, from `--video CAMERA=FILE` (`videos`) and `--default-video`
/// (for every other `rtsp://` camera). Every mistake is reported, each naming its camera.
pub fn plan<'a>(
    cameras: impl IntoIterator<Item = (&'a str, &'a Source)>,
    videos: &[(String, PathBuf)],
    default: Option<&Path>,
) -> Result<Vec<Served>, Vec<String>> {
    let cameras: Vec<(&str, &Source)> = cameras.into_iter().collect();
    let mut errors = Vec::new();
    for (i, (camera, _)) in videos.iter().enumerate() {
        if videos[..i].iter().any(|(earlier, _)| earlier == camera) {
            errors.push(format!("--video {camera}=…: camera {camera} is given a video twice"));
        }
        if !cameras.iter().any(|(id, _)| id == camera) {
            let known: Vec<&str> = cameras.iter().map(|(id, _)| *id).collect();
            errors.push(format!(
                "--video {camera}=…: no camera `{camera}`; cameras: {}",
                known.join(", ")
            ));
        }
    }
    for video in videos.iter().map(|(_, v)| v.as_path()).chain(default) {
        if !video.is_file() {
            errors.push(format!("{}: video file not found", video.display()));
        }
    }
    let mut served = Vec::new();
    for (camera, source) in &cameras {
        let named = videos.iter().find(|(id, _)| id == camera).map(|(_, v)| v.as_path());
        let (url, video) = match (source, named, default) {
            (Source::Rtsp { url, .. }, Some(video), _)
            | (Source::Rtsp { url, .. }, None, Some(video)) => (url, video),
            (_, Some(_), _) => {
                errors.push(format!(
                    "camera {camera} reads {}, not an rtsp:// URL: there is nothing to serve",
                    source.masked()
                ));
                continue;
            }
            _ => continue,
        };
        match serve_at(url) {
            Ok((address, port, path)) => served.push(Served {
                camera: camera.to_string(),
                address,
                port,
                mount: Mount { path, video: video.to_path_buf(), udp_only: false },
            }),
            Err(e) => errors.push(format!("camera {camera}: {} {e}", source.masked())),
        }
    }
    // Cameras may share a stream, but one stream cannot show two videos.
    let mut streams: BTreeMap<(IpAddr, u16, &str), &Served> = BTreeMap::new();
    for s in &served {
        match streams.get(&(s.address, s.port, s.mount.path.as_str())) {
            Some(other) if other.mount.video != s.mount.video => errors.push(format!(
                "cameras {} and {} read the same stream but are given different videos",
                other.camera, s.camera
            )),
            _ => {
                streams.insert((s.address, s.port, &s.mount.path), s);
            }
        }
    }
    if served.is_empty() && errors.is_empty() {
        errors.push("no camera to serve: none has an rtsp:// URL".into());
    }
    if errors.is_empty() { Ok(served) } else { Err(errors) }
}

/// Where a camera's URL points: the loopback address, port and path to serve it at.
fn serve_at(url: &url::Url) -> Result<(IpAddr, u16, String), String> {
    if url.scheme() != "rtsp" {
        return Err("is not served: simulate serves plain rtsp://, without TLS".into());
    }
    // A host of an URL that is not http(s) stays text, an IPv4 address too.
    let address = match url.host() {
        Some(Host::Domain(name)) if name.eq_ignore_ascii_case("localhost") => {
            Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
        }
        Some(Host::Domain(name)) => name.parse::<IpAddr>().ok(),
        Some(Host::Ipv4(a)) => Some(IpAddr::V4(a)),
        Some(Host::Ipv6(a)) => Some(IpAddr::V6(a)),
        None => None,
    };
    let Some(address) = address.filter(IpAddr::is_loopback) else {
        return Err("is not on this machine: simulate serves only 127.0.0.1, ::1 and localhost, \
                    and will not impersonate a real camera"
            .into());
    };
    let path = if url.path().is_empty() { "/".to_string() } else { url.path().to_string() };
    Ok((address, url.port().unwrap_or(RTSP_PORT), path))
}

/// The served cameras by server: one per address and port, each stream mounted once.
pub fn servers(served: &[Served]) -> BTreeMap<(IpAddr, u16), Vec<Mount>> {
    let mut servers: BTreeMap<(IpAddr, u16), Vec<Mount>> = BTreeMap::new();
    for s in served {
        let mounts = servers.entry((s.address, s.port)).or_default();
        if !mounts.iter().any(|m| m.path == s.mount.path) {
            mounts.push(s.mount.clone());
        }
    }
    servers
}

/// `cityeye simulate`: serves the videos as the config's RTSP cameras until SIGINT or SIGTERM.
pub fn simulate(
    path: &std::path::Path,
    videos: &[(String, PathBuf)],
    default_video: Option<&std::path::Path>,
    codec: Codec,
) -> ExitCode {
    let config = match load_config(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let cameras = config.cameras.iter().map(|c| (c.id.as_str(), &c.url));
    let served = match plan(cameras, videos, default_video) {
        Ok(served) => served,
        Err(errors) => {
            errors.iter().for_each(|e| eprintln!("error: {e}"));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let mut running = Vec::new();
    for ((address, port), mounts) in servers(&served) {
        match Server::start(address, port, &mounts, codec) {
            Ok(server) => running.push(server),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let rows: Vec<[String; 3]> = served
        .iter()
        .map(|s| {
            let server = running.iter().find(|v| v.port() == s.port);
            let url = server.map_or_else(String::new, |v| v.url(&s.mount.path));
            [s.camera.clone(), url, s.mount.video.display().to_string()]
        })
        .collect();
    let width = |i: usize| rows.iter().map(|r| r[i].len()).max().unwrap_or(0).max(6);
    let (w0, w1) = (width(0), width(1));
    println!("{:<w0$}  {:<w1$}  video", "camera", "url");
    for [camera, url, video] in &rows {
        println!("{camera:<w0$}  {url:<w1$}  {video}");
    }
    let codec = match codec {
        Codec::H264 => "H.264",
        Codec::H265 => "H.265",
    };
    let cameras =
        if rows.len() == 1 { "1 camera".into() } else { format!("{} cameras", rows.len()) };
    println!("serving {cameras} as {codec}, each video looped, until Ctrl-C");
    let _ = std::io::stdout().flush();
    match wait_for_signal() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Waits for SIGINT (Ctrl-C) or SIGTERM.
fn wait_for_signal() -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
        let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtsp(url: &str) -> Source {
        Source::Rtsp { url: url::Url::parse(url).unwrap(), user: None, password: None }
    }

    /// A file that exists, standing in for a video (plan only checks that it is there).
    fn video() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")
    }

    #[test]
    fn loopback_cameras_get_the_default_video_at_their_port_and_path() {
        let (a, b) = (rtsp("rtsp://127.0.0.1:8554/kerb"), rtsp("rtsp://localhost/gate"));
        let file = Source::File { path: "x.mp4".into() };
        let plan = plan([("kerb", &a), ("gate", &b), ("lab", &file)], &[], Some(&video())).unwrap();
        let at: Vec<(&str, String, u16, &str)> = plan
            .iter()
            .map(|s| (s.camera.as_str(), s.address.to_string(), s.port, s.mount.path.as_str()))
            .collect();
        assert_eq!(
            at,
            [
                ("kerb", "127.0.0.1".into(), 8554, "/kerb"),
                ("gate", "127.0.0.1".into(), 554, "/gate")
            ]
        );
        assert_eq!(servers(&plan).len(), 2);
    }

    #[test]
    fn other_hosts_are_refused_by_camera() {
        let real = rtsp("rtsp://192.0.2.10:554/stream1");
        let tls = rtsp("rtsps://127.0.0.1/s");
        let errors = plan([("kerb", &real), ("vault", &tls)], &[], Some(&video())).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].contains("camera kerb: rtsp://192.0.2.10:554/stream1 is not on this machine")
        );
        assert!(errors[1].contains("camera vault") && errors[1].contains("plain rtsp://"));
    }

    #[test]
    fn named_videos_must_name_cameras_and_files_and_not_clash() {
        let (a, b) = (rtsp("rtsp://127.0.0.1:8554/s"), rtsp("rtsp://127.0.0.1:8554/s"));
        let other = video().with_file_name("README.md");
        let videos = [("kerb".to_string(), video()), ("gate".to_string(), other)];
        let errors = plan([("kerb", &a), ("gate", &b)], &videos, None).unwrap_err();
        assert!(errors[0].contains("cameras kerb and gate read the same stream"), "{errors:?}");

        let videos = [("door".to_string(), PathBuf::from("/nope.mp4"))];
        let errors = plan([("kerb", &a)], &videos, None).unwrap_err();
        assert!(errors[0].contains("no camera `door`; cameras: kerb"), "{errors:?}");
        assert!(errors[1].contains("/nope.mp4: video file not found"), "{errors:?}");

        let errors = plan([("kerb", &a)], &[], None).unwrap_err();
        assert!(errors[0].contains("no camera to serve"), "{errors:?}");

        let videos = [("kerb".to_string(), video()), ("kerb".to_string(), video())];
        let errors = plan([("kerb", &a)], &videos, None).unwrap_err();
        assert!(errors[0].contains("camera kerb is given a video twice"), "{errors:?}");
    }

    #[test]
    fn servers_mount_a_shared_stream_once() {
        let (a, b) = (rtsp("rtsp://127.0.0.1:8554/s"), rtsp("rtsp://localhost:8554/s"));
        let plan = plan([("kerb", &a), ("gate", &b)], &[], Some(&video())).unwrap();
        let servers = servers(&plan);
        assert_eq!(servers.len(), 1);
        assert_eq!(servers.values().next().unwrap().len(), 1);
    }

    #[test]
    fn a_server_refuses_other_addresses() {
        let e = Server::start("192.0.2.1".parse().unwrap(), 0, &[], Codec::H264).err().unwrap();
        assert!(e.contains("not a loopback address"), "{e}");
    }
}

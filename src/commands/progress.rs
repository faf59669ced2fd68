//! The progress bar of `cityeye replay`, on stderr: frames decoded of the video's total (a
//! spinner when the total is unknown), analysed frames a second and incidents so far.
//!
//! A thread of its own reads the replay's counters, which the camera thread keeps anyway, a few
//! times a second: the camera thread never waits for the terminal. The bar is for a person at a
//! terminal only: hidden when stderr is not one and with JSON logs, so scripts and log
//! collectors read clean lines. Log lines written while it shows go through [`LogWriter`],
//! which lifts the bar for them.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer_pbutils as gst_pbutils;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::ingest;
use crate::stats::CameraStats;

/// How often the bar reads the counters and redraws.
const TICK: Duration = Duration::from_millis(200);
/// Longest the discoverer may take to read a video's length.
const DISCOVER_TIMEOUT_S: u64 = 10;

/// The bar showing now, for [`LogWriter`].
static SHOWN: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Whether to show a bar: only to a person at a terminal, who reads logs as text.
pub fn wanted(stderr_is_terminal: bool, json_logs: bool) -> bool {
    stderr_is_terminal && !json_logs
}

/// Frames in a video file: its duration times its frame rate, as GStreamer's discoverer reads
/// them; `None` when either is unknown.
pub fn frames_in(video: &Path) -> Option<u64> {
    ingest::init_gstreamer().ok()?;
    let path = std::fs::canonicalize(video).ok()?;
    let uri = gst::glib::filename_to_uri(&path, None).ok()?;
    let discoverer =
        gst_pbutils::Discoverer::new(gst::ClockTime::from_seconds(DISCOVER_TIMEOUT_S)).ok()?;
    let info = discoverer.discover_uri(&uri).ok()?;
    let duration = info.duration()?;
    let fps = info.video_streams().first()?.framerate();
    total_frames(duration.nseconds() as f64 / 1e9, fps.numer(), fps.denom())
}

/// `seconds` of video at `numer`/`denom` frames a second, rounded; `None` for a rate or length
/// that says nothing (variable rate is 0/1).
fn total_frames(seconds: f64, numer: i32, denom: i32) -> Option<u64> {
    (numer > 0 && denom > 0 && seconds > 0.0)
        .then(|| (seconds * f64::from(numer) / f64::from(denom)).round() as u64)
}

/// What the bar says beside the count.
fn status(analysed: u64, seconds: f64, incidents: u64) -> String {
    let rate = if seconds > 0.0 { analysed as f64 / seconds } else { 0.0 };
    let plural = if incidents == 1 { "" } else { "s" };
    format!("{rate:.1} analysed frames/s, {incidents} incident{plural}")
}

fn style(total_known: bool) -> ProgressStyle {
    let template = if total_known {
        "{spinner} [{bar:30}] {pos}/{len} frames, {msg}, {eta} left"
    } else {
        "{spinner} {pos} frames, {msg}"
    };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .progress_chars("=> ")
}

/// A bar on stderr following a replay's counters until dropped.
pub struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Shows the bar for a video of `total` frames (a spinner when unknown).
    pub fn start(total: Option<u64>, stats: Arc<CameraStats>) -> Progress {
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr())
            .with_style(style(total.is_some()))
            .with_message(status(0, 0.0, 0));
        *SHOWN.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let started = Instant::now();
        let thread = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    bar.set_position(stats.frames_in.load(Ordering::Relaxed));
                    bar.set_message(status(
                        stats.frames_analysed.load(Ordering::Relaxed),
                        started.elapsed().as_secs_f64(),
                        stats.incidents_started(),
                    ));
                    std::thread::sleep(TICK);
                }
                bar.finish_and_clear();
            })
            .ok();
        Progress { stop, thread }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        *SHOWN.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Where the logs go: stderr, lifting the progress bar while a line is written.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        LogWriter
    }
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let write = || std::io::stderr().write_all(buf).map(|()| buf.len());
        match &*SHOWN.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_is_for_a_terminal_with_text_logs_only() {
        assert!(wanted(true, false));
        assert!(!wanted(false, false), "stderr piped or in a file");
        assert!(!wanted(true, true), "JSON logs are for machines");
    }

    #[test]
    fn status_says_the_analysed_rate_and_the_incidents() {
        assert_eq!(status(123, 10.0, 2), "12.3 analysed frames/s, 2 incidents");
        assert_eq!(status(0, 0.0, 1), "0.0 analysed frames/s, 1 incident");
    }

    #[test]
    fn the_total_is_the_duration_times_the_frame_rate() {
        assert_eq!(total_frames(79.5, 10, 1), Some(795));
        assert_eq!(total_frames(10.01, 30000, 1001), Some(300));
        assert_eq!(total_frames(10.0, 0, 1), None, "variable frame rate");
        assert_eq!(total_frames(0.0, 25, 1), None);
    }

    #[test]
    fn logs_pass_while_a_bar_shows_and_it_is_gone_when_dropped() {
        let progress = Progress::start(Some(10), Arc::default());
        assert!(SHOWN.lock().unwrap().is_some());
        assert_eq!(LogWriter.write(b"a log line\n").unwrap(), 11);
        drop(progress);
        assert!(SHOWN.lock().unwrap().is_none());
    }
}

//! Execution providers on real parts: OpenVINO's plugin (installed by
//! `CITYEYE_EP=openvino scripts/setup`, which scripts/test runs) on this machine's x86 CPU
//! against ONNX Runtime's CPU provider, on real frames (on an Intel CPU; elsewhere the plugin
//! must refuse, saying why); what `check` reports about where a model runs; and a provider
//! asked for but absent (CUDA, with the CPU-only ONNX Runtime) as a clear error.

mod common;

use std::time::SystemTime;

use cityeye::config::Config;
use cityeye::geometry::Detection;
use cityeye::infer::{Detector, Scratch};

use common::*;

/// The kerb config with `device_keys` added to its model.
fn config_with(device_keys: &str) -> String {
    let url = format!("file://{}", shared("testdata/vtest.avi").display());
    kerb_config(1883, false, &url, 5.0)
        .replace("format = \"yolox\"\n", &format!("format = \"yolox\"\n{device_keys}\n"))
}

/// Frames 0, 150 and 300 of vtest.avi through the model of `config`, and where it ran.
fn detect(config: &str) -> (Vec<Vec<Detection>>, Vec<(String, usize)>) {
    let (_dir, path) = write_config(config);
    let config = Config::load(&path).unwrap();
    let detector =
        Detector::load(&config.models[0]).unwrap_or_else(|e| panic!("models[0].{}: {e}", e.key()));
    let mut camera = config.cameras[0].clone();
    camera.analysis_fps = 10.0;
    let (mut found, mut index) = (Vec::new(), 0);
    replay_frames(&camera, SystemTime::now(), &mut |frame| {
        if index % 150 == 0 && index <= 300 {
            found.push(detector.detect(&frame, &mut Scratch::default()).unwrap());
        }
        index += 1;
    });
    (found, detector.summary.placement.clone())
}

/// OpenVINO's plugin serves Intel hardware only, so on another maker's CPU (these shared
/// machines are sometimes AMD) it has no device to offer.
fn intel_cpu() -> bool {
    std::fs::read_to_string("/proc/cpuinfo").unwrap().contains("GenuineIntel")
}

/// What `device = "openvino"` must say where its plugin serves nothing: why, and what is here.
fn assert_refused_as_not_intel(error: &str) {
    assert!(
        error.contains("models[0].device")
            && error.contains("serves Intel hardware only")
            && error.contains("this machine has a CPU by "),
        "{error}"
    );
    eprintln!("not an Intel CPU: OpenVINO was refused as it must be, so not compared here");
}

#[test]
fn openvino_on_the_cpu_finds_what_the_cpu_provider_finds() {
    if !intel_cpu() {
        let (_dir, path) = write_config(&config_with("device = \"openvino\""));
        let config = Config::load(&path).unwrap();
        let Err(e) = Detector::load(&config.models[0]) else {
            panic!("OpenVINO's plugin ran on a CPU it does not serve")
        };
        return assert_refused_as_not_intel(&format!("models[0].{}: {e}", e.key()));
    }
    let (cpu, cpu_placement) = detect(&config_with(""));
    let (openvino, openvino_placement) = detect(&config_with("device = \"openvino\""));
    assert_eq!(cpu_placement[0].0, "CPUExecutionProvider", "{cpu_placement:?}");
    // With fallback = "refuse" (the default) nothing is left to the CPU provider.
    assert_eq!(
        openvino_placement.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
        ["OpenVINOExecutionProvider"],
        "{openvino_placement:?}"
    );
    for (frame, (cpu, openvino)) in cpu.iter().zip(&openvino).enumerate() {
        assert_eq!(cpu.len(), openvino.len(), "frame {frame}: {cpu:?}\n{openvino:?}");
        for (c, o) in cpu.iter().zip(openvino) {
            let close = (c.bbox.x - o.bbox.x).abs() < 0.01
                && (c.bbox.y - o.bbox.y).abs() < 0.01
                && (c.bbox.w - o.bbox.w).abs() < 0.01
                && (c.bbox.h - o.bbox.h).abs() < 0.01
                && (c.confidence - o.confidence).abs() < 0.02;
            assert!(c.class == o.class && close, "frame {frame}: {c:?} vs {o:?}");
        }
    }
}

#[test]
fn a_provider_missing_from_onnx_runtime_is_a_clear_error_naming_it() {
    for (device, provider) in
        [("cuda", "CUDAExecutionProvider"), ("tensorrt", "TensorrtExecutionProvider")]
    {
        let (_dir, path) = write_config(&config_with(&format!("device = \"{device}\"")));
        let config = Config::load(&path).unwrap();
        let Err(e) = Detector::load(&config.models[0]) else {
            panic!("{device} loaded with the CPU-only ONNX Runtime")
        };
        let text = e.to_string();
        assert_eq!(e.key(), "device", "{text}");
        assert!(text.contains(provider) && text.contains("onnxruntime-gpu"), "{text}");
    }
}

#[test]
fn check_reports_the_device_and_the_provider_running_the_model() {
    let (_dir, path) = write_config(&config_with("device = \"openvino\""));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cityeye"))
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if intel_cpu() {
        assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("  device  openvino CPU FP32, fallback refuse"), "{stdout}");
        assert!(stdout.contains("  runs on OpenVINOExecutionProvider 1 node\n"), "{stdout}");
    } else {
        assert!(!out.status.success(), "{stdout}");
        assert_refused_as_not_intel(&String::from_utf8_lossy(&out.stderr));
    }

    let (_dir, path) = write_config(&config_with("device = \"cuda\""));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cityeye"))
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("models[0].device") && stderr.contains("CUDAExecutionProvider"),
        "{stderr}"
    );
}

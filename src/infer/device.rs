//! Execution providers: where ONNX Runtime runs a model (its `device`: the CPU, OpenVINO, CUDA
//! or TensorRT), and where it actually put the model's nodes: a provider that cannot take a node
//! leaves it to the CPU without a word, so the placement is read back from a profiled first run.
//!
//! OpenVINO comes as ONNX Runtime 1.31's plugin execution provider (the PyPI wheel
//! `onnxruntime-ep-openvino`, with the OpenVINO runtime beside it), registered with the
//! environment at run time; CUDA and TensorRT are built into the `onnxruntime-gpu` library.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use ort::environment::Environment;
use ort::ep::{self, ExecutionProvider};
use ort::memory::DeviceType;
use ort::session::Session;
use ort::session::builder::SessionBuilder;

use crate::config::{Device, Fallback, ModelConfig, OpenvinoDevice, Precision};

/// Where OpenVINO's plugin is looked for: the package's place first, then `scripts/setup`'s.
const OPENVINO_PLUGIN_PLACES: [&str; 2] = [
    "/usr/lib/cityeye/openvino/libonnxruntime_providers_openvino_plugin.so",
    "/usr/local/lib/cityeye/openvino/libonnxruntime_providers_openvino_plugin.so",
];

/// The execution provider name OpenVINO's plugin gives its devices.
const OPENVINO: &str = "OpenVINOExecutionProvider";

/// Why a model cannot run on its configured device. Clone, because OpenVINO's plugin is
/// registered once and its outcome stands for every model.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DeviceError {
    #[error(
        "device openvino needs OpenVINO's execution provider plugin, which is not installed \
         (looked for {}); run CITYEYE_EP=openvino scripts/setup",
        OPENVINO_PLUGIN_PLACES.join(" and ")
    )]
    OpenvinoNotInstalled,
    #[error("cannot load OpenVINO's execution provider plugin {}: {source}", path.display())]
    OpenvinoPlugin { path: PathBuf, source: Arc<ort::Error> },
    /// OpenVINO's plugin offers only Intel hardware (it skips every device whose vendor is not
    /// Intel's), so on an AMD CPU it offers nothing at all.
    #[error(
        "OpenVINO offers no {wanted} device on this machine (it offers: {found}); its ONNX \
         Runtime plugin serves Intel hardware only, and this machine has {hardware}"
    )]
    OpenvinoNoDevice { wanted: &'static str, found: String, hardware: String },
    /// CUDA or TensorRT asked of the CPU-only ONNX Runtime.
    #[error(
        "device {device} needs ONNX Runtime's {provider}, which this ONNX Runtime library does \
         not have: install the onnxruntime-gpu build (CITYEYE_EP=cuda scripts/setup)"
    )]
    NotInBuild { device: &'static str, provider: &'static str },
    /// The provider is there but would not start (no GPU, CUDA or cuDNN libraries missing...).
    #[error("{provider} cannot start: {source}")]
    Setup { provider: &'static str, source: Arc<ort::Error> },
    #[error("cannot create TensorRT's engine cache {}: {source}", path.display())]
    EngineCache { path: PathBuf, source: Arc<std::io::Error> },
}

/// Has `builder` run the model on `config.device`. With `fallback = "refuse"`, ONNX Runtime is
/// told not to hand nodes the device cannot take to the CPU, so such a model fails to load
/// instead of running slowly on the CPU.
pub(super) fn configure(
    builder: SessionBuilder,
    environment: &Environment,
    config: &ModelConfig,
) -> Result<SessionBuilder, DeviceError> {
    let setup = |provider| {
        move |e: ort::Error<SessionBuilder>| DeviceError::Setup {
            provider,
            source: Arc::new(e.into()),
        }
    };
    let builder = match (config.device, config.fallback) {
        (Device::Cpu, _) | (_, Fallback::Cpu) => builder,
        (_, Fallback::Refuse) => builder
            .with_config_entry("session.disable_cpu_ep_fallback", "1")
            .map_err(setup("ONNX Runtime"))?,
    };
    match config.device {
        Device::Cpu => Ok(builder),
        Device::Openvino => {
            register_openvino(environment)?;
            let wanted = match config.openvino_device {
                OpenvinoDevice::Cpu => ("CPU", DeviceType::CPU),
                OpenvinoDevice::Gpu => ("GPU", DeviceType::GPU),
                OpenvinoDevice::Npu => ("NPU", DeviceType::NPU),
            };
            let openvino =
                || environment.devices().filter(|d| d.ep().is_ok_and(|ep| ep == OPENVINO));
            let chosen: Vec<_> =
                openvino().filter(|d| d.hardware_device().ty() == wanted.1).take(1).collect();
            if chosen.is_empty() {
                let found: Vec<String> =
                    openvino().map(|d| format!("{:?}", d.hardware_device().ty())).collect();
                let found = if found.is_empty() { "none".to_string() } else { found.join(", ") };
                let hardware = hardware(environment);
                return Err(DeviceError::OpenvinoNoDevice { wanted: wanted.0, found, hardware });
            }
            let precision = match config.precision {
                Precision::Fp32 => "FP32",
                Precision::Fp16 => "FP16",
            };
            let options = [
                (format!("{OPENVINO}.precision"), precision.to_string()),
                (format!("{OPENVINO}.num_of_threads"), config.threads.to_string()),
            ];
            builder.with_devices(chosen, Some(&options)).map_err(setup(OPENVINO))
        }
        Device::Cuda => {
            let provider = ep::CUDA::default().with_device_id(config.device_id as i32);
            register(builder, provider, Device::Cuda)
        }
        Device::Tensorrt => {
            let cache = &config.engine_cache;
            std::fs::create_dir_all(cache).map_err(|e| DeviceError::EngineCache {
                path: cache.clone(),
                source: Arc::new(e),
            })?;
            let cache = cache.display().to_string();
            let provider = ep::TensorRT::default()
                .with_device_id(config.device_id as i32)
                .with_fp16(config.precision == Precision::Fp16)
                .with_engine_cache(true)
                .with_engine_cache_path(&cache)
                .with_timing_cache(true)
                .with_timing_cache_path(&cache);
            register(builder, provider, Device::Tensorrt)
        }
    }
}

/// Appends a provider built into ONNX Runtime, after checking that this build has it.
fn register<E: ExecutionProvider + 'static>(
    builder: SessionBuilder,
    provider: E,
    device: Device,
) -> Result<SessionBuilder, DeviceError>
where
    ep::ExecutionProviderDispatch: From<E>,
{
    let setup =
        |source: ort::Error| DeviceError::Setup { provider: E::NAME, source: Arc::new(source) };
    if !E::is_available().map_err(setup)? {
        return Err(DeviceError::NotInBuild { device: device.name(), provider: E::NAME });
    }
    let dispatch = ep::ExecutionProviderDispatch::from(provider).error_on_failure();
    builder.with_execution_providers([dispatch]).map_err(|e| setup(e.into()))
}

/// The machine's devices as ONNX Runtime sees them, with their makers: "a CPU by AMD".
fn hardware(environment: &Environment) -> String {
    let mut seen: Vec<String> = Vec::new();
    for device in environment.devices() {
        let hardware = device.hardware_device();
        let vendor = hardware.vendor().unwrap_or("an unknown maker");
        let named = format!("a {:?} by {vendor}", hardware.ty());
        if !seen.contains(&named) {
            seen.push(named);
        }
    }
    seen.join(", ")
}

/// Registers OpenVINO's plugin with the environment, once for the process.
fn register_openvino(environment: &Environment) -> Result<(), DeviceError> {
    static REGISTERED: OnceLock<Result<(), DeviceError>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let path = OPENVINO_PLUGIN_PLACES
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
                .ok_or(DeviceError::OpenvinoNotInstalled)?;
            environment
                .register_ep_library("openvino", &path)
                .map_err(|e| DeviceError::OpenvinoPlugin { path, source: Arc::new(e) })
        })
        .clone()
}

/// Where a session's first runs are profiled, so [`placement`] can read where its nodes ran:
/// one file prefix per session, in the temporary folder.
pub(super) fn profile_prefix() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("cityeye-placement-{}-{n}", std::process::id()))
}

/// The execution providers that ran a profiled session's nodes, with how many each ran, the
/// busiest first; a subgraph an accelerator compiled counts as one. Ends the profiling (the
/// session runs unprofiled from then on) and removes its file. Empty when the profile cannot
/// be read.
pub(super) fn placement(session: &mut Session) -> Vec<(String, usize)> {
    let Ok(path) = session.end_profiling() else { return Vec::new() };
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let _ = std::fs::remove_file(&path);
    providers_in_profile(&text)
}

/// Counts the distinct nodes each provider ran in an ONNX Runtime profile (a JSON array of
/// trace events; a node's kernel run is a `Node` event named `<node>_kernel_time` whose `args`
/// name its `provider`).
fn providers_in_profile(text: &str) -> Vec<(String, usize)> {
    let events: Vec<serde_json::Value> = serde_json::from_str(text).unwrap_or_default();
    let mut nodes = std::collections::BTreeMap::<&str, std::collections::BTreeSet<&str>>::new();
    for event in &events {
        let name = event["name"].as_str().unwrap_or_default();
        if event["cat"] == "Node"
            && let (Some(node), Some(provider)) =
                (name.strip_suffix("_kernel_time"), event["args"]["provider"].as_str())
        {
            nodes.entry(provider).or_default().insert(node);
        }
    }
    let mut counts: Vec<(String, usize)> =
        nodes.into_iter().map(|(provider, nodes)| (provider.to_string(), nodes.len())).collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_says_which_provider_ran_each_node() {
        let profile = r#"[
            {"cat": "Session", "name": "model_run", "args": {}},
            {"cat": "Node", "name": "conv1_kernel_time", "args": {"provider": "CPUExecutionProvider"}},
            {"cat": "Node", "name": "conv1_fence_before", "args": {"provider": "CPUExecutionProvider"}},
            {"cat": "Node", "name": "ov_subgraph_0_kernel_time", "args": {"provider": "OpenVINOExecutionProvider"}},
            {"cat": "Node", "name": "ov_subgraph_1_kernel_time", "args": {"provider": "OpenVINOExecutionProvider"}},
            {"cat": "Node", "name": "ov_subgraph_1_kernel_time", "args": {"provider": "OpenVINOExecutionProvider"}}
        ]"#;
        assert_eq!(
            providers_in_profile(profile),
            [("OpenVINOExecutionProvider".to_string(), 2), ("CPUExecutionProvider".to_string(), 1)]
        );
        assert!(providers_in_profile("not json").is_empty());
    }

    #[test]
    fn errors_name_what_is_missing() {
        let missing = DeviceError::NotInBuild { device: "cuda", provider: "CUDAExecutionProvider" };
        assert!(missing.to_string().contains("onnxruntime-gpu"), "{missing}");
        let plugin = DeviceError::OpenvinoNotInstalled.to_string();
        assert!(plugin.contains("CITYEYE_EP=openvino scripts/setup"), "{plugin}");
    }
}

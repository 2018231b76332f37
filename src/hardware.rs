//! Compute devices and their memory: every GPU llama.cpp's backends see, host RAM, the
//! default thread count, and how fast each reads memory (`speed`). Read by `gguf-serve devices`
//! and turned into a `plan::Budget`.

pub mod cpu_rates;
pub mod rpc;
pub mod speed;

use crate::plan::{Budget, HostSpeed, Margin};
use serde::Serialize;
use std::collections::HashSet;

/// A device one of llama.cpp's backends sees.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Device {
    /// Index for `LlamaModelParams::with_devices`.
    pub index: usize,
    /// Backend device name (`CUDA0`, `Vulkan0`, `CPU`).
    pub name: String,
    pub description: String,
    pub backend: String,
    /// `gpu`, `igpu`, `accel`, `cpu` or `unknown`.
    pub kind: String,
    pub memory_total: u64,
    pub memory_free: u64,
    /// Memory bandwidth, bytes/s, from `quant-profiles/gpu-bandwidth.toml` (GPUs it knows).
    pub bandwidth: Option<f64>,
}

/// Every device llama.cpp's backends see, the CPU included.
pub fn devices() -> Vec<Device> {
    use llama_cpp_2::LlamaBackendDeviceType as T;
    llama_cpp_2::list_llama_ggml_backend_devices()
        .into_iter()
        .map(|d| Device {
            index: d.index,
            name: d.name,
            backend: d.backend,
            kind: match d.device_type {
                T::Gpu => "gpu",
                T::IntegratedGpu => "igpu",
                T::Accelerator => "accel",
                T::Cpu => "cpu",
                T::Unknown => "unknown",
            }
            .to_owned(),
            memory_total: d.memory_total as u64,
            memory_free: d.memory_free as u64,
            bandwidth: (!matches!(d.device_type, T::Cpu))
                .then(|| speed::gpu_bandwidth(&d.description))
                .flatten(),
            description: d.description,
        })
        .collect()
}

/// The GPUs llama.cpp offloads to by default, in its order (see [`default_gpu_order`]).
pub fn gpu_devices() -> Vec<Device> {
    default_gpu_order(devices())
}

/// The devices `llama_model_load` takes when it is given none, in its order: RPC workers' devices
/// first (to keep network transfers few), then the discrete GPUs, then integrated GPUs only if
/// there is no discrete one (RPC devices do not count). `-ts` and the planner's placement are
/// per device in this order, which is not the order the backends registered them in (`--rpc`
/// adds its devices last).
pub fn default_gpu_order(all: Vec<Device>) -> Vec<Device> {
    let (rpc, local): (Vec<_>, Vec<_>) = all.into_iter().partition(Device::is_rpc);
    let gpus: Vec<_> = local.iter().filter(|d| d.kind == "gpu").cloned().collect();
    let local = if gpus.is_empty() {
        local.into_iter().filter(|d| d.kind == "igpu").collect()
    } else {
        gpus
    };
    rpc.into_iter().chain(local).collect()
}

impl Device {
    /// A device of another machine, reached through llama.cpp's RPC backend (`--rpc`).
    pub fn is_rpc(&self) -> bool {
        self.backend == "RPC"
    }
}

/// This machine's budget for the planner: the free memory and bandwidth of the GPUs llama.cpp
/// offloads to (those named by `devices`, when given; none for an empty list, `--device
/// none`), available host memory, each less its margin (`margin`'s rule), and the host's speed.
/// `gpu_bandwidth` (bytes/s) replaces every GPU's table value.
pub fn budget(
    margin: Margin,
    devices: Option<&[String]>,
    host: HostSpeed,
    gpu_bandwidth: Option<f64>,
) -> Budget {
    // llama.cpp takes `--device`'s devices in the order given.
    let mut found = gpu_devices();
    if let Some(names) = devices {
        found.retain(|d| names.contains(&d.name));
        found.sort_by_key(|d| names.iter().position(|n| *n == d.name));
    }
    let remote: Vec<bool> = found.iter().map(Device::is_rpc).collect();
    let gpus = found
        .into_iter()
        .map(|d| {
            let (bandwidth, source) =
                speed::gpu_bandwidth_or_default(&d.description, gpu_bandwidth);
            (d.name, d.memory_free, bandwidth, source)
        })
        .collect();
    let mut budget = Budget::new(gpus, host_memory().available, margin, host);
    for (gpu, remote) in budget.gpus.iter_mut().zip(remote) {
        gpu.remote = remote;
    }
    budget
}

/// Host memory, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HostMemory {
    pub total: u64,
    /// Free plus reclaimable (page cache): what a new allocation can get.
    pub available: u64,
}

pub fn host_memory() -> HostMemory {
    let mut sys = sysinfo::System::new();
    sys.refresh_memory();
    HostMemory {
        total: sys.total_memory(),
        available: sys.available_memory(),
    }
}

/// Threads llama.cpp's `common_cpu_get_num_math` would use, the default `-t`: the number of
/// physical cores (distinct `thread_siblings` sets on Linux); elsewhere, or if sysfs is
/// unreadable, llama.cpp's fallback of all logical CPUs up to 4, else half of them. Hybrid
/// Intel CPUs, where llama.cpp counts only performance cores, are counted as all cores.
pub fn math_threads() -> i32 {
    physical_cores().unwrap_or_else(|| {
        let n = std::thread::available_parallelism().map_or(4, |n| n.get() as i32);
        if n <= 4 { n } else { n / 2 }
    })
}

fn physical_cores() -> Option<i32> {
    let mut siblings = HashSet::new();
    for cpu in 0.. {
        let path = format!("/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings");
        match std::fs::read_to_string(path) {
            Ok(s) => siblings.insert(s.trim().to_owned()),
            Err(_) => break,
        };
    }
    (!siblings.is_empty()).then_some(siblings.len() as i32)
}

#[cfg(test)]
mod tests {
    use super::Device;

    fn device(name: &str, backend: &str, kind: &str) -> Device {
        Device {
            index: 0,
            name: name.into(),
            description: String::new(),
            backend: backend.into(),
            kind: kind.into(),
            memory_total: 0,
            memory_free: 0,
            bandwidth: None,
        }
    }

    fn names(devices: Vec<Device>) -> Vec<String> {
        devices.into_iter().map(|d| d.name).collect()
    }

    #[test]
    fn gpus_in_llama_cpps_default_order() {
        let cpu = device("CPU", "CPU", "cpu");
        let cuda0 = device("CUDA0", "CUDA", "gpu");
        let cuda1 = device("CUDA1", "CUDA", "gpu");
        let igpu = device("Vulkan1", "Vulkan", "igpu");
        // --rpc registers its devices last; llama.cpp loads them first.
        let rpc0 = device("RPC0", "RPC", "gpu");
        let all = vec![cpu, cuda0, igpu.clone(), cuda1, rpc0.clone()];
        assert_eq!(
            names(super::default_gpu_order(all)),
            ["RPC0", "CUDA0", "CUDA1"]
        );
        // An integrated GPU only without a discrete one; an RPC device is not one.
        assert_eq!(
            names(super::default_gpu_order(vec![igpu, rpc0])),
            ["RPC0", "Vulkan1"]
        );
    }

    #[test]
    fn sees_a_cpu_and_some_threads() {
        assert!(super::math_threads() >= 1);
        assert!(super::devices().iter().any(|d| d.kind == "cpu"));
        let host = super::host_memory();
        assert!(host.total > 0 && host.available <= host.total);
    }
}

/// Loads llama.cpp's backends from `dir`, or from `backends/` beside the binary, in a build with
/// the `dynamic-backends` feature (as llama.cpp's and Ollama's releases ship them: the CPU
/// variants and GPU backends as shared libraries, the best the machine supports chosen at run
/// time). Without `dir` and without that folder, llama.cpp searches its own places when the
/// backend starts. In a static build the backends are linked in and `dir` is an error.
pub fn load_backends(dir: Option<&std::path::Path>) -> Result<(), BackendsError> {
    #[cfg(feature = "dynamic-backends")]
    {
        let beside_binary = || {
            let exe = std::env::current_exe().ok()?;
            let dir = exe.parent()?.join("backends");
            dir.is_dir().then_some(dir)
        };
        let Some(dir) = dir.map(std::path::Path::to_path_buf).or_else(beside_binary) else {
            return Ok(());
        };
        if !dir.is_dir() {
            return Err(BackendsError::NotADirectory(dir));
        }
        llama_cpp_2::llama_backend::load_backends_from_path(&dir);
        if backend_registries().is_empty() {
            return Err(BackendsError::NoneLoaded(dir));
        }
        Ok(())
    }
    #[cfg(not(feature = "dynamic-backends"))]
    match dir {
        Some(dir) => Err(BackendsError::Static(dir.to_path_buf())),
        None => Ok(()),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackendsError {
    #[error("--backends-dir {0}: not a directory")]
    NotADirectory(std::path::PathBuf),
    #[error(
        "--backends-dir {0}: no llama.cpp backend could be loaded from it (libggml-cpu-*.so, libggml-cuda.so …)"
    )]
    NoneLoaded(std::path::PathBuf),
    #[error(
        "--backends-dir {0}: this gguf-serve has its backends built in; only a build with the \
         `dynamic-backends` feature loads them at run time"
    )]
    Static(std::path::PathBuf),
}

/// The names of llama.cpp's registered backends (`CPU`, `CUDA`, `Vulkan` …).
pub fn backend_registries() -> Vec<String> {
    // SAFETY: the registry functions only read ggml's global backend list; the names are
    // static NUL-terminated strings owned by the backends, which are never unloaded.
    unsafe {
        (0..llama_cpp_sys_2::ggml_backend_reg_count())
            .map(|i| {
                let reg = llama_cpp_sys_2::ggml_backend_reg_get(i);
                let name = llama_cpp_sys_2::ggml_backend_reg_name(reg);
                std::ffi::CStr::from_ptr(name)
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    }
}

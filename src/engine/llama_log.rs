//! llama.cpp's log: routed to tracing, and read for the memory it reports allocating.
//!
//! llama.cpp says what it allocates only in its log (`load_tensors: CUDA0 model buffer size =
//! … MiB`, the KV cache, output and compute buffers likewise); the data behind those lines is
//! C++-only API. So our callback keeps every such line, per device and kind, and the engine
//! reports them after load next to what the planner predicted. Warnings and errors always reach
//! tracing; the rest only with `--verbose`.

use std::collections::BTreeMap;
use std::ffi::{CStr, c_char, c_void};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use llama_cpp_sys_2::{
    GGML_LOG_LEVEL_CONT, GGML_LOG_LEVEL_DEBUG, GGML_LOG_LEVEL_ERROR, GGML_LOG_LEVEL_WARN,
    ggml_log_level,
};
use serde::Serialize;

/// What a buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BufferKind {
    Weights,
    Kv,
    Output,
    Compute,
}

/// Bytes llama.cpp allocated on one device (a GPU, or the host), by kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DeviceMemory {
    /// llama.cpp's device name (`CUDA0`, `Metal`), or `host` for every host buffer type
    /// (`CPU`, `CPU_Mapped`, `CUDA_Host`, `CPU_REPACK`, …).
    pub device: String,
    pub weights: u64,
    pub kv: u64,
    pub output: u64,
    pub compute: u64,
}

impl DeviceMemory {
    pub fn total(&self) -> u64 {
        self.weights + self.kv + self.output + self.compute
    }
}

/// One `… buffer size = X MiB` line: the buffer type's name, its kind and its size.
#[derive(Debug, Clone, PartialEq)]
struct BufferLine {
    buffer_type: String,
    kind: BufferKind,
    bytes: u64,
}

static VERBOSE: AtomicBool = AtomicBool::new(false);
/// Bytes per buffer type and kind: weights and KV summed over their buffers, output and
/// compute buffers as last reserved (llama.cpp re-reserves the compute buffers, and logs them
/// again, whenever the set of sampler chains changes).
static BUFFERS: Mutex<BTreeMap<(String, BufferKind), u64>> = Mutex::new(BTreeMap::new());
/// The layers llama.cpp assigned to each device (its `load_tensors: layer N assigned to device
/// D` debug lines; layer `n_layer` is the output layer).
static LAYERS: Mutex<BTreeMap<String, Vec<u32>>> = Mutex::new(BTreeMap::new());
/// How often llama.cpp re-reserved its graph, and the microseconds it took.
static RESERVES: AtomicU64 = AtomicU64::new(0);
static RESERVE_US: AtomicU64 = AtomicU64::new(0);

/// Routes llama.cpp's and ggml's log here. Call before loading anything.
pub fn install(verbose: bool) {
    VERBOSE.store(verbose, Ordering::Relaxed);
    BUFFERS.lock().unwrap_or_else(|e| e.into_inner()).clear();
    LAYERS.lock().unwrap_or_else(|e| e.into_inner()).clear();
    RESERVES.store(0, Ordering::Relaxed);
    RESERVE_US.store(0, Ordering::Relaxed);
    // SAFETY: `callback` is a plain function that lives for the whole program and ignores the
    // null user data; llama.cpp and ggml only store the pointers.
    unsafe {
        llama_cpp_sys_2::llama_log_set(Some(callback), std::ptr::null_mut());
        llama_cpp_sys_2::ggml_log_set(Some(callback), std::ptr::null_mut());
    }
}

/// What llama.cpp reported allocating since `install`, per device: weights and KV cache summed
/// over their buffers, output and compute buffers as last reserved. The host, if present, comes
/// last.
pub fn allocated() -> Vec<DeviceMemory> {
    let sizes = BUFFERS.lock().unwrap_or_else(|e| e.into_inner());
    let mut devices: BTreeMap<String, DeviceMemory> = BTreeMap::new();
    for (&(ref buffer_type, kind), &bytes) in sizes.iter() {
        let device = device_of(buffer_type);
        let entry = devices
            .entry(device.clone())
            .or_insert_with(|| DeviceMemory {
                device,
                ..DeviceMemory::default()
            });
        *field(entry, kind) += bytes;
    }
    drop(sizes);
    let (mut gpus, host): (Vec<_>, Vec<_>) = devices.into_values().partition(|d| d.device != HOST);
    gpus.extend(host);
    gpus
}

const HOST: &str = "host";

/// The layers on one device, as llama.cpp placed them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceLayers {
    /// llama.cpp's device name (`CPU`, `CUDA0`, `RPC0`).
    pub device: String,
    /// Its description (an RPC worker's is its `host:port`).
    pub description: String,
    /// Layer indices, ascending; `n_layer` is the output layer.
    pub layers: Vec<u32>,
}

/// Where llama.cpp placed each layer at the last load, per device, in layer order.
pub fn layers() -> Vec<DeviceLayers> {
    let layers = LAYERS.lock().unwrap_or_else(|e| e.into_inner());
    let mut devices: Vec<DeviceLayers> = layers
        .iter()
        .map(|(device, layers)| DeviceLayers {
            device: device.clone(),
            description: description(device),
            layers: layers.clone(),
        })
        .collect();
    devices.sort_by_key(|d| d.layers.first().copied());
    devices
}

/// A device's description, by name (empty for a name ggml does not know).
fn description(name: &str) -> String {
    let Ok(c) = std::ffi::CString::new(name) else {
        return String::new();
    };
    // SAFETY: `c` is NUL-terminated; the registry returns a device it owns (or null), whose
    // description is a NUL-terminated string that lives as long as the device.
    unsafe {
        let dev = llama_cpp_sys_2::ggml_backend_dev_by_name(c.as_ptr());
        if dev.is_null() {
            return String::new();
        }
        let text = llama_cpp_sys_2::ggml_backend_dev_description(dev);
        if text.is_null() {
            return String::new();
        }
        CStr::from_ptr(text).to_string_lossy().into_owned()
    }
}

/// Parses `load_tensors: layer <N> assigned to device <D>, is_swa = <0|1>`.
fn parse_layer(text: &str) -> Option<(u32, String)> {
    let (_, tail) = text.split_once("load_tensors: layer ")?;
    let (layer, tail) = tail.split_once(" assigned to device ")?;
    let (device, _) = tail.split_once(", is_swa")?;
    Some((layer.trim().parse().ok()?, device.to_owned()))
}

fn field(memory: &mut DeviceMemory, kind: BufferKind) -> &mut u64 {
    match kind {
        BufferKind::Weights => &mut memory.weights,
        BufferKind::Kv => &mut memory.kv,
        BufferKind::Output => &mut memory.output,
        BufferKind::Compute => &mut memory.compute,
    }
}

/// The device a buffer type lives on: host memory for the CPU's types and pinned host buffers.
fn device_of(buffer_type: &str) -> String {
    let host =
        buffer_type.starts_with("CPU") || buffer_type.ends_with("_Host") || buffer_type == "AMX";
    if host {
        HOST.into()
    } else {
        buffer_type.into()
    }
}

/// How many times llama.cpp has re-reserved its graph since `install` (at load, and after each
/// change of the sampler chains attached to the context), and the time that took in total.
pub fn reserves() -> (u64, std::time::Duration) {
    (
        RESERVES.load(Ordering::Relaxed),
        std::time::Duration::from_micros(RESERVE_US.load(Ordering::Relaxed)),
    )
}

/// Parses `sched_reserve: reserve took <X> ms, …` into milliseconds.
fn parse_reserve(text: &str) -> Option<f64> {
    let (_, tail) = text.split_once("reserve took ")?;
    tail.split_once(" ms")?.0.trim().parse().ok()
}

/// Parses `<func>: <buffer type> <kind> buffer size = <X> MiB`, as llama.cpp logs its model,
/// KV (and recurrent state), output and compute buffers.
fn parse(text: &str) -> Option<BufferLine> {
    let (head, tail) = text.split_once(" buffer size = ")?;
    let mib: f64 = tail.trim().strip_suffix("MiB")?.trim().parse().ok()?;
    let (_, head) = head.split_once(':')?;
    let mut words = head.split_whitespace();
    let buffer_type = words.next()?.to_string();
    let kind = match words.next()? {
        "model" => BufferKind::Weights,
        "KV" | "RS" => BufferKind::Kv,
        "output" => BufferKind::Output,
        "compute" => BufferKind::Compute,
        _ => return None,
    };
    let bytes = (mib * (1u64 << 20) as f64).round() as u64;
    Some(BufferLine {
        buffer_type,
        kind,
        bytes,
    })
}

unsafe extern "C" fn callback(level: ggml_log_level, text: *const c_char, _: *mut c_void) {
    if text.is_null() {
        return;
    }
    // SAFETY: llama.cpp passes a NUL-terminated string valid for the duration of the call.
    let text = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    if let Some(line) = parse(&text) {
        let mut sizes = BUFFERS.lock().unwrap_or_else(|e| e.into_inner());
        let size = sizes.entry((line.buffer_type, line.kind)).or_default();
        match line.kind {
            BufferKind::Weights | BufferKind::Kv => *size += line.bytes,
            BufferKind::Output | BufferKind::Compute => *size = line.bytes,
        }
    } else if let Some((layer, device)) = parse_layer(&text) {
        let mut layers = LAYERS.lock().unwrap_or_else(|e| e.into_inner());
        layers.entry(device).or_default().push(layer);
    } else if let Some(ms) = parse_reserve(&text) {
        RESERVES.fetch_add(1, Ordering::Relaxed);
        RESERVE_US.fetch_add((ms * 1000.0) as u64, Ordering::Relaxed);
    }
    let text = text.trim_end();
    if text.is_empty() {
        return;
    }
    match level {
        GGML_LOG_LEVEL_ERROR => tracing::error!(target: "llama.cpp", "{text}"),
        GGML_LOG_LEVEL_WARN => tracing::warn!(target: "llama.cpp", "{text}"),
        GGML_LOG_LEVEL_DEBUG | GGML_LOG_LEVEL_CONT if VERBOSE.load(Ordering::Relaxed) => {
            tracing::trace!(target: "llama.cpp", "{text}")
        }
        _ if VERBOSE.load(Ordering::Relaxed) => tracing::debug!(target: "llama.cpp", "{text}"),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_buffer_lines_llama_cpp_logs() {
        let cases = [
            (
                "load_tensors:        CUDA0 model buffer size = 11536.29 MiB\n",
                "CUDA0",
                BufferKind::Weights,
                11536.29,
            ),
            (
                "load_tensors:   CPU_Mapped model buffer size =   586.82 MiB\n",
                "CPU_Mapped",
                BufferKind::Weights,
                586.82,
            ),
            (
                "llama_kv_cache:      CUDA0 KV buffer size =   144.00 MiB\n",
                "CUDA0",
                BufferKind::Kv,
                144.0,
            ),
            (
                "llama_context:  CUDA_Host  output buffer size =     0.77 MiB\n",
                "CUDA_Host",
                BufferKind::Output,
                0.77,
            ),
            (
                "sched_reserve:      CUDA0 compute buffer size =   398.38 MiB\n",
                "CUDA0",
                BufferKind::Compute,
                398.38,
            ),
        ];
        for (text, buffer_type, kind, mib) in cases {
            let line = parse(text).unwrap();
            assert_eq!(line.buffer_type, buffer_type, "{text}");
            assert_eq!(line.kind, kind, "{text}");
            assert_eq!(line.bytes, (mib * 1048576.0_f64).round() as u64, "{text}");
        }
        for other in [
            "llama_context: n_ctx = 4096\n",
            "load_tensors: offloaded 25/25 layers to GPU\n",
            "print_info: file size = 12.83 GiB (5.27 BPW)\n",
        ] {
            assert_eq!(parse(other), None, "{other}");
        }
    }

    #[test]
    fn parses_the_layer_lines_llama_cpp_logs() {
        assert_eq!(
            parse_layer("load_tensors: layer   7 assigned to device RPC0, is_swa = 1\n"),
            Some((7, "RPC0".into()))
        );
        assert_eq!(
            parse_layer("load_tensors: layer  18 assigned to device CPU, is_swa = 0\n"),
            Some((18, "CPU".into()))
        );
        assert_eq!(
            parse_layer("load_tensors: offloaded 18/19 layers to GPU\n"),
            None
        );
    }

    #[test]
    fn parses_the_reserve_time() {
        let line = "sched_reserve: reserve took 45.27 ms, sched copies = 1\n";
        assert_eq!(parse_reserve(line), Some(45.27));
        assert_eq!(parse_reserve("sched_reserve: reserving ...\n"), None);
    }

    #[test]
    fn host_buffer_types_are_one_place() {
        for host in ["CPU", "CPU_Mapped", "CPU_REPACK", "CUDA_Host", "AMX"] {
            assert_eq!(device_of(host), HOST);
        }
        for gpu in ["CUDA0", "CUDA1", "Metal", "Vulkan0", "ROCm0"] {
            assert_eq!(device_of(gpu), gpu);
        }
    }
}

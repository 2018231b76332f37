//! Raw llama.cpp calls for loading: the model with every `llama_model_params` field (llama-cpp-2
//! sets only some: not the tensor split, buffer-type overrides by name, repacking, the host
//! buffer, lazy loading or direct I/O), the CPU thread pools llama-server attaches to its context
//! (CPU masks, priorities, polling), and NUMA.
//!
//! Architecture invariant: one of the engine's modules with `unsafe` (listed in `engine/mod.rs`);
//! each block says why it is sound.

use std::ffi::{CStr, CString, c_char};
use std::path::Path;
use std::ptr::NonNull;

use llama_cpp_2::model::LlamaModel;
use llama_cpp_sys_2 as sys;

use super::config::{CpuParams, KvValue, LazyMode, LoadMode, ModelParams, SplitMode};

// `LlamaModel` is `#[repr(transparent)]` over one `NonNull<llama_model>` (llama-cpp-2
// 0.1.160, model.rs and ptr.rs; `llama.rs` reads it the same way). Checked so that a release
// changing the layout fails to build rather than misbehaves.
const _: () = assert!(
    size_of::<LlamaModel>() == size_of::<NonNull<sys::llama_model>>()
        && align_of::<LlamaModel>() == align_of::<NonNull<sys::llama_model>>()
);

/// Why the model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("--device {0}: no such device (see gguf-serve devices)")]
    Device(String),
    #[error("--override-tensor {pattern}={name}: unknown buffer type (known: {known})")]
    BufferType {
        pattern: String,
        name: String,
        known: String,
    },
    #[error("llama.cpp could not load the model (see the log above)")]
    Failed,
}

/// Loads the model with these parameters.
pub fn load_model(path: &Path, p: &ModelParams) -> Result<LlamaModel, LoadError> {
    // Everything llama.cpp reads through pointers during the load lives in these locals.
    let mut devices: Vec<sys::ggml_backend_dev_t> = match &p.devices {
        None => Vec::new(),
        Some(names) => names
            .iter()
            .map(|n| device_by_name(n).ok_or_else(|| LoadError::Device(n.clone())))
            .collect::<Result<_, _>>()?,
    };
    devices.push(std::ptr::null_mut());
    let overrides = p.all_tensor_overrides();
    let patterns: Vec<CString> = overrides
        .iter()
        .map(|o| CString::new(o.pattern.as_str()).unwrap_or_default())
        .collect();
    let mut bufts = Vec::with_capacity(overrides.len() + 1);
    for (o, pattern) in overrides.iter().zip(&patterns) {
        let buft = buffer_type(&o.buffer_type).ok_or_else(|| LoadError::BufferType {
            pattern: o.pattern.clone(),
            name: o.buffer_type.clone(),
            known: buffer_types()
                .into_iter()
                .map(|(n, _)| n)
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        bufts.push(sys::llama_model_tensor_buft_override {
            pattern: pattern.as_ptr(),
            buft,
        });
    }
    bufts.push(sys::llama_model_tensor_buft_override {
        pattern: std::ptr::null(),
        buft: std::ptr::null_mut(),
    });
    let mut kv: Vec<sys::llama_model_kv_override> =
        p.kv_overrides.iter().map(kv_override).collect();
    // SAFETY: a zeroed override (key[0] == 0) is llama.cpp's end marker; all fields are plain data.
    kv.push(unsafe { std::mem::zeroed() });
    let mut split = p.tensor_split.clone();
    split.resize(split.len().max(1), 0.0);

    // SAFETY: returns a plain struct by value.
    let mut params = unsafe { sys::llama_model_default_params() };
    params.n_gpu_layers = i32::try_from(p.n_gpu_layers).unwrap_or(i32::MAX);
    params.split_mode = match p.split_mode {
        SplitMode::None => sys::LLAMA_SPLIT_MODE_NONE,
        SplitMode::Layer => sys::LLAMA_SPLIT_MODE_LAYER,
        SplitMode::Row => sys::LLAMA_SPLIT_MODE_ROW,
        SplitMode::Tensor => sys::LLAMA_SPLIT_MODE_TENSOR,
    };
    params.main_gpu = p.main_gpu;
    params.load_mode = match p.load_mode {
        LoadMode::Auto => sys::LLAMA_LOAD_MODE_AUTO,
        LoadMode::None => sys::LLAMA_LOAD_MODE_NONE,
        LoadMode::Mmap => sys::LLAMA_LOAD_MODE_MMAP,
        LoadMode::Mlock => sys::LLAMA_LOAD_MODE_MLOCK,
        LoadMode::MmapMlock => sys::LLAMA_LOAD_MODE_MMAP_MLOCK,
        LoadMode::DirectIo => sys::LLAMA_LOAD_MODE_DIRECT_IO,
    };
    params.lazy_mode = match p.lazy_mode {
        LazyMode::Off => sys::LLAMA_LAZY_MODE_OFF,
        LazyMode::Auto => sys::LLAMA_LAZY_MODE_AUTO,
        LazyMode::On => sys::LLAMA_LAZY_MODE_ON,
    };
    params.check_tensors = p.check_tensors;
    params.use_extra_bufts = p.use_extra_bufts;
    params.no_host = p.no_host;
    if p.devices.is_some() {
        params.devices = devices.as_mut_ptr();
    }
    if !p.tensor_split.is_empty() {
        params.tensor_split = split.as_ptr();
    }
    if overrides.is_empty() {
        params.tensor_buft_overrides = std::ptr::null();
    } else {
        params.tensor_buft_overrides = bufts.as_ptr();
    }
    if !p.kv_overrides.is_empty() {
        params.kv_overrides = kv.as_ptr();
    }
    let path = CString::new(path.to_string_lossy().as_bytes()).map_err(|_| LoadError::Failed)?;
    // SAFETY: `path` is a C string; every pointer in `params` points into the locals above
    // (device list null-terminated, overrides and kv overrides ending in their end markers,
    // the split holding at least one float), all alive until after the call returns.
    let model = unsafe { sys::llama_model_load_from_file(path.as_ptr(), params) };
    let model = NonNull::new(model).ok_or(LoadError::Failed)?;
    // SAFETY: `LlamaModel` is a transparent wrapper of one `NonNull<llama_model>` (asserted
    // above); it takes ownership and frees the model once, when dropped.
    Ok(unsafe { std::mem::transmute::<NonNull<sys::llama_model>, LlamaModel>(model) })
}

fn kv_override(o: &super::config::KvOverride) -> sys::llama_model_kv_override {
    // SAFETY: all-zero is a valid value of this plain-data struct (and of each union member).
    let mut raw: sys::llama_model_kv_override = unsafe { std::mem::zeroed() };
    copy_c_string(&mut raw.key, &o.key);
    match &o.value {
        KvValue::Int(v) => {
            raw.tag = sys::LLAMA_KV_OVERRIDE_TYPE_INT;
            raw.__bindgen_anon_1.val_i64 = *v;
        }
        KvValue::Float(v) => {
            raw.tag = sys::LLAMA_KV_OVERRIDE_TYPE_FLOAT;
            raw.__bindgen_anon_1.val_f64 = *v;
        }
        KvValue::Bool(v) => {
            raw.tag = sys::LLAMA_KV_OVERRIDE_TYPE_BOOL;
            raw.__bindgen_anon_1.val_bool = *v;
        }
        KvValue::Str(v) => {
            raw.tag = sys::LLAMA_KV_OVERRIDE_TYPE_STR;
            let mut buf = [0 as c_char; 128];
            copy_c_string(&mut buf, v);
            raw.__bindgen_anon_1.val_str = buf;
        }
    }
    raw
}

/// Copies `text` into a fixed C buffer, always leaving a terminating NUL (the parser bounds
/// keys and strings to 127 bytes).
fn copy_c_string(buf: &mut [c_char; 128], text: &str) {
    for (dst, &b) in buf.iter_mut().zip(text.as_bytes().iter().take(127)) {
        *dst = b as c_char;
    }
}

fn device_by_name(name: &str) -> Option<sys::ggml_backend_dev_t> {
    let name = CString::new(name).ok()?;
    // SAFETY: `name` is a C string; the registry returns a device handle or null.
    let dev = unsafe { sys::ggml_backend_dev_by_name(name.as_ptr()) };
    (!dev.is_null()).then_some(dev)
}

/// Every device's default buffer type, by name (`CPU`, `CUDA0`, …), as llama-server's `-ot`
/// parser collects them.
fn buffer_types() -> Vec<(String, sys::ggml_backend_buffer_type_t)> {
    // SAFETY: device handles and buffer types are owned by the backend registry, alive for the
    // process; the name is a static C string of the buffer type.
    unsafe {
        (0..sys::ggml_backend_dev_count())
            .filter_map(|i| {
                let buft = sys::ggml_backend_dev_buffer_type(sys::ggml_backend_dev_get(i));
                if buft.is_null() {
                    return None;
                }
                let name = CStr::from_ptr(sys::ggml_backend_buft_name(buft));
                Some((name.to_string_lossy().into_owned(), buft))
            })
            .collect()
    }
}

fn buffer_type(name: &str) -> Option<sys::ggml_backend_buffer_type_t> {
    buffer_types()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, b)| b)
}

/// The CPU thread pools of a context, as llama-server makes them: one for generation and, if
/// its settings differ, one for prompt processing (the generation pool then starts paused).
pub struct Threadpools {
    pool: NonNull<sys::ggml_threadpool>,
    batch: Option<NonNull<sys::ggml_threadpool>>,
    free: unsafe extern "C" fn(*mut sys::ggml_threadpool),
}

type NewFn = unsafe extern "C" fn(*mut sys::ggml_threadpool_params) -> *mut sys::ggml_threadpool;
type FreeFn = unsafe extern "C" fn(*mut sys::ggml_threadpool);

impl Threadpools {
    /// Creates the pools; `None` if the CPU backend offers none (llama.cpp then runs its own).
    pub fn new(cpu: &CpuParams, cpu_batch: &CpuParams) -> Option<Self> {
        let (new, free) = threadpool_fns()?;
        let mut tpp = threadpool_params(cpu);
        let mut tpp_batch = threadpool_params(cpu_batch);
        // SAFETY: both point at initialized params on this stack frame.
        let same =
            unsafe { sys::ggml_threadpool_params_match(&raw const tpp, &raw const tpp_batch) };
        let batch = if same {
            None
        } else {
            // SAFETY: `new` is ggml-cpu's `ggml_threadpool_new`; it copies the params.
            let batch = NonNull::new(unsafe { new(&raw mut tpp_batch) })?;
            tpp.paused = true;
            Some(batch)
        };
        // SAFETY: as above.
        let Some(pool) = NonNull::new(unsafe { new(&raw mut tpp) }) else {
            if let Some(b) = batch {
                // SAFETY: made above by `new`, attached to nothing, freed once.
                unsafe { free(b.as_ptr()) };
            }
            return None;
        };
        Some(Self { pool, batch, free })
    }

    /// Makes the context run on these pools. The pools must outlive the context's use of them:
    /// the engine keeps both for the life of its worker.
    pub fn attach(&self, ctx: NonNull<sys::llama_context>) {
        let batch = self.batch.map_or(std::ptr::null_mut(), NonNull::as_ptr);
        // SAFETY: `ctx` is a live context; both pools are alive (owned by `self`).
        unsafe { sys::llama_attach_threadpool(ctx.as_ptr(), self.pool.as_ptr(), batch) };
    }
}

impl Drop for Threadpools {
    fn drop(&mut self) {
        // SAFETY: made by `ggml_threadpool_new`, each freed once; the context that used them is
        // dropped first (the worker declares the pools before the context).
        unsafe {
            (self.free)(self.pool.as_ptr());
            if let Some(b) = self.batch {
                (self.free)(b.as_ptr());
            }
        }
    }
}

/// ggml-cpu's pool functions, looked up through the CPU backend's registry (as llama.cpp's
/// common code does) so that they are found in builds that load the CPU backend at run time.
fn threadpool_fns() -> Option<(NewFn, FreeFn)> {
    // SAFETY: the registry and the functions it returns live as long as the loaded backend,
    // i.e. the process; the names are C strings; each returned pointer is the named function
    // with ggml-cpu.h's signature, or null.
    unsafe {
        let reg = sys::ggml_backend_reg_by_name(c"CPU".as_ptr());
        if reg.is_null() {
            return None;
        }
        let new = sys::ggml_backend_reg_get_proc_address(reg, c"ggml_threadpool_new".as_ptr());
        let free = sys::ggml_backend_reg_get_proc_address(reg, c"ggml_threadpool_free".as_ptr());
        if new.is_null() || free.is_null() {
            return None;
        }
        Some((
            std::mem::transmute::<*mut std::ffi::c_void, NewFn>(new),
            std::mem::transmute::<*mut std::ffi::c_void, FreeFn>(free),
        ))
    }
}

fn threadpool_params(cpu: &CpuParams) -> sys::ggml_threadpool_params {
    // SAFETY: all-zero is valid plain data; `ggml_threadpool_params_init` fills the defaults.
    let mut tpp: sys::ggml_threadpool_params = unsafe { std::mem::zeroed() };
    // SAFETY: `tpp` is a valid, writable params struct.
    unsafe { sys::ggml_threadpool_params_init(&raw mut tpp, cpu.n_threads) };
    if let Some(mask) = &cpu.cpumask {
        for (dst, &on) in tpp.cpumask.iter_mut().zip(mask) {
            *dst = on;
        }
    }
    tpp.prio = cpu.priority;
    tpp.poll = cpu.poll;
    tpp.strict_cpu = cpu.strict;
    tpp
}

/// `--numa`: llama.cpp's NUMA strategy, set once before the model loads.
pub fn numa_init(strategy: super::config::Numa) {
    use super::config::Numa;
    let raw = match strategy {
        Numa::Disabled => return,
        Numa::Distribute => sys::GGML_NUMA_STRATEGY_DISTRIBUTE,
        Numa::Isolate => sys::GGML_NUMA_STRATEGY_ISOLATE,
        Numa::Numactl => sys::GGML_NUMA_STRATEGY_NUMACTL,
    };
    // SAFETY: a plain call with an enum value, made once on the engine thread before loading.
    unsafe { sys::llama_numa_init(raw) };
}

/// llama-server's process priority (`--prio`): a nice value per level; normal leaves it.
pub fn set_process_priority(priority: i32) {
    let nice = match priority {
        -1 => 5,
        1 => -5,
        2 => -10,
        3 => -20,
        _ => return,
    };
    #[cfg(unix)]
    {
        // SAFETY: a plain libc call on this process.
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
        if rc != 0 {
            tracing::warn!(
                "--prio {priority}: cannot set the process priority: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

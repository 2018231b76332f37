//! The flags that say how the model is loaded and placed and how its context computes: devices
//! and tensor overrides (the split over several GPUs is in `memory.rs`, since the planner
//! places it), file loading, RoPE and YaRN, warm-up. Each maps onto a field of
//! llama.cpp's model or context parameters ([`crate::engine::ModelParams`],
//! [`crate::engine::ContextConfig`]); names and defaults are llama-server's.

use anyhow::bail;
use clap::Args;

use crate::engine::{
    KvOverride, LazyMode, LoadMode, Numa, RopeParams, RopeScaling, TensorOverride,
    parse_kv_overrides, parse_tensor_overrides,
};

#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// How the model file is read: auto (mmap unless a device cannot), none, mmap, mlock,
    /// mmap+mlock or dio (direct I/O).
    #[arg(long = "load-mode", default_value = "auto", value_name = "MODE")]
    pub load_mode: String,

    /// Older llama-servers' `--mmap`/`--no-mmap`: memory-map the file (with --mlock, locked).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, hide = true,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub mmap: Option<bool>,

    /// Older llama-servers' `--mlock`: keep the model in RAM.
    #[arg(long, hide = true)]
    pub mlock: bool,

    /// Read the rows of large per-layer tensors from disk on demand: on, auto (only tensors
    /// over 4 GiB) or off.
    #[arg(long = "lazy-mode", default_value = "auto", value_name = "MODE")]
    pub lazy_mode: String,

    /// NUMA optimizations: distribute, isolate or numactl.
    #[arg(long, value_name = "TYPE")]
    pub numa: Option<String>,

    /// Devices to offload to, comma-separated (`none`: none); see `gguf-serve devices`.
    #[arg(long, value_name = "DEV,…")]
    pub device: Option<String>,

    /// Print the devices llama.cpp sees and exit.
    #[arg(long = "list-devices")]
    pub list_devices: bool,

    #[command(flatten)]
    pub rpc: super::RpcArgs,

    /// Put tensors whose name matches a regular expression in a buffer type:
    /// `PATTERN=TYPE,…` (types such as CPU, CUDA0; see the error for the list).
    #[arg(long = "override-tensor", value_name = "PATTERN=TYPE,…")]
    pub override_tensor: Vec<String>,

    /// Keep the dense FFN weights of the first N layers in host memory.
    #[arg(long = "n-cpu-ffn", default_value_t = 0, value_name = "N")]
    pub n_cpu_ffn: u32,

    /// Choose the offload that fits free device memory (on); off takes -ngl as given (auto
    /// then offloads every layer).
    #[arg(long, default_value = "on", value_name = "on|off")]
    pub fit: String,

    /// Check the model's tensor data for invalid values while loading.
    #[arg(long = "check-tensors")]
    pub check_tensors: bool,

    /// Override model metadata: `KEY=TYPE:VALUE,…` (int, float, bool, str).
    #[arg(long = "override-kv", value_name = "KEY=TYPE:VALUE,…")]
    pub override_kv: Vec<String>,

    /// Repack weights into faster layouts where the CPU supports them (default on).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value_t = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub repack: bool,

    /// Bypass the host buffer, so that extra buffer types may be used.
    #[arg(long = "no-host")]
    pub no_host: bool,

    /// Offload host tensor operations to the device (default on).
    #[arg(long = "op-offload", value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value_t = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub op_offload: bool,

    /// llama.cpp's internal performance timings.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value_t = false, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub perf: bool,

    /// Run the model once on start, so that the first request does not pay for it.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value_t = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub warmup: bool,

    /// RoPE frequency scaling method: none, linear or yarn; default: the model's.
    #[arg(long = "rope-scaling", value_name = "none|linear|yarn")]
    pub rope_scaling: Option<String>,

    /// RoPE context scaling factor: expands the context by a factor of N.
    #[arg(long = "rope-scale", value_name = "N")]
    pub rope_scale: Option<f32>,

    /// RoPE base frequency; default: the model's.
    #[arg(long = "rope-freq-base", value_name = "N")]
    pub rope_freq_base: Option<f32>,

    /// RoPE frequency scaling factor (expands the context by 1/N); default: the model's.
    #[arg(long = "rope-freq-scale", value_name = "N")]
    pub rope_freq_scale: Option<f32>,

    /// YaRN: the model's original context size (0: its training context).
    #[arg(long = "yarn-orig-ctx", default_value_t = 0, value_name = "N")]
    pub yarn_orig_ctx: u32,

    /// YaRN: extrapolation mix factor (-1: the model's).
    #[arg(long = "yarn-ext-factor", default_value_t = -1.0, value_name = "N", allow_negative_numbers = true)]
    pub yarn_ext_factor: f32,

    /// YaRN: attention magnitude scale (-1: the model's).
    #[arg(long = "yarn-attn-factor", default_value_t = -1.0, value_name = "N", allow_negative_numbers = true)]
    pub yarn_attn_factor: f32,

    /// YaRN: high correction dimension (-1: the model's).
    #[arg(long = "yarn-beta-slow", default_value_t = -1.0, value_name = "N", allow_negative_numbers = true)]
    pub yarn_beta_slow: f32,

    /// YaRN: low correction dimension (-1: the model's).
    #[arg(long = "yarn-beta-fast", default_value_t = -1.0, value_name = "N", allow_negative_numbers = true)]
    pub yarn_beta_fast: f32,
}

impl LoadArgs {
    pub fn load_mode(&self) -> anyhow::Result<LoadMode> {
        // Older spellings, unless --load-mode says otherwise.
        if self.load_mode == "auto" {
            match (self.mmap, self.mlock) {
                (Some(false), true) => return Ok(LoadMode::Mlock),
                (Some(false), false) => return Ok(LoadMode::None),
                (_, true) => return Ok(LoadMode::MmapMlock),
                (Some(true), false) => return Ok(LoadMode::Mmap),
                (None, false) => {}
            }
        }
        Ok(match self.load_mode.as_str() {
            "auto" => LoadMode::Auto,
            "none" => LoadMode::None,
            "mmap" => LoadMode::Mmap,
            "mlock" => LoadMode::Mlock,
            "mmap+mlock" => LoadMode::MmapMlock,
            "dio" => LoadMode::DirectIo,
            other => {
                bail!("--load-mode {other}: expected auto, none, mmap, mlock, mmap+mlock or dio")
            }
        })
    }

    pub fn lazy_mode(&self) -> anyhow::Result<LazyMode> {
        Ok(match self.lazy_mode.as_str() {
            "on" => LazyMode::On,
            "auto" => LazyMode::Auto,
            "off" => LazyMode::Off,
            other => bail!("--lazy-mode {other}: expected on, auto or off"),
        })
    }

    pub fn numa(&self) -> anyhow::Result<Numa> {
        Ok(match self.numa.as_deref() {
            None => Numa::Disabled,
            Some("distribute") => Numa::Distribute,
            Some("isolate") => Numa::Isolate,
            Some("numactl") => Numa::Numactl,
            Some(other) => bail!("--numa {other}: expected distribute, isolate or numactl"),
        })
    }

    /// `--device`: `None` for llama.cpp's default, an empty list for `none`.
    pub fn devices(&self) -> Option<Vec<String>> {
        let list = self.device.as_deref()?;
        if list == "none" {
            return Some(Vec::new());
        }
        Some(
            list.split(',')
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(str::to_string)
                .collect(),
        )
    }

    /// `--fit`: whether the planner chooses the offload.
    pub fn fit(&self) -> anyhow::Result<bool> {
        match self.fit.as_str() {
            "on" | "enabled" | "true" | "1" => Ok(true),
            "off" | "disabled" | "false" | "0" => Ok(false),
            other => bail!("--fit {other}: expected on or off"),
        }
    }

    pub fn tensor_overrides(&self) -> anyhow::Result<Vec<TensorOverride>> {
        let mut all = Vec::new();
        for text in &self.override_tensor {
            all.extend(
                parse_tensor_overrides(text)
                    .map_err(|e| anyhow::anyhow!("--override-tensor {e}"))?,
            );
        }
        Ok(all)
    }

    pub fn kv_overrides(&self) -> anyhow::Result<Vec<KvOverride>> {
        let mut all = Vec::new();
        for text in &self.override_kv {
            all.extend(parse_kv_overrides(text).map_err(|e| anyhow::anyhow!("--override-kv {e}"))?);
        }
        Ok(all)
    }

    /// RoPE and YaRN as llama-server sets them: `--rope-scale N` is a frequency scale of 1/N.
    pub fn rope(&self) -> anyhow::Result<RopeParams> {
        let scaling = match self.rope_scaling.as_deref() {
            None => None,
            Some("none") => Some(RopeScaling::None),
            Some("linear") => Some(RopeScaling::Linear),
            Some("yarn") => Some(RopeScaling::Yarn),
            Some(other) => bail!("--rope-scaling {other}: expected none, linear or yarn"),
        };
        let freq_scale = match (self.rope_freq_scale, self.rope_scale) {
            (Some(scale), _) => scale,
            (None, Some(n)) if n != 0.0 => 1.0 / n,
            _ => 0.0,
        };
        Ok(RopeParams {
            scaling,
            freq_base: self.rope_freq_base.unwrap_or(0.0),
            freq_scale,
            yarn_orig_ctx: self.yarn_orig_ctx,
            yarn_ext_factor: self.yarn_ext_factor,
            yarn_attn_factor: self.yarn_attn_factor,
            yarn_beta_slow: self.yarn_beta_slow,
            yarn_beta_fast: self.yarn_beta_fast,
        })
    }
}

//! LoRA adapters: llama-server's `--lora`, `--lora-scaled`, `/lora-adapters` and a request's
//! `lora`.
//!
//! Adapters are loaded once, after the model, and freed with it. Each has a global scale (its
//! starting scale, then what `POST /lora-adapters` sets); a request that names adapters runs
//! with exactly those scales (the others at 0, llama-server's `construct_lora_list`), any other
//! request with the global scales of the moment it gets its slot. llama.cpp applies adapters to
//! the whole context, so one decode serves only slots with equal scales: [`Loras::pick_batch`]
//! chooses whose turn it is (taking turns, so that no setting starves), the worker leaves the
//! other slots for a later step, and [`Loras::apply`] sets the context's adapters before the
//! decode (llama.cpp keeps them when they are unchanged). A slot whose scales change drops its
//! cache: those tokens were computed under other weights. Without adapters none of this runs.
//!
//! Architecture invariant: this module's raw calls (loading, metadata) are the only ones on
//! adapters; the context setter is [`Context::set_adapters_lora`].

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::path::PathBuf;
use std::ptr::NonNull;

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_sys_2 as sys;

use super::EngineError;
use super::llama::{Context, model_ptr};

/// One LoRA adapter file and the scale it starts at.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraAdapterConfig {
    pub path: PathBuf,
    pub scale: f32,
}

/// A request's `lora` (or the body of `POST /lora-adapters`): adapter id → scale. Ids that name
/// no adapter are ignored; an empty request means the global scales.
pub type LoraRequest = BTreeMap<i64, f32>;

/// A loaded adapter as `GET /lora-adapters` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraAdapter {
    pub path: PathBuf,
    /// Its global scale now.
    pub scale: f32,
    /// `adapter.lora.task_name` and `adapter.lora.prompt_prefix` from its metadata ("" if
    /// absent).
    pub task_name: String,
    pub prompt_prefix: String,
    /// An activated LoRA's invocation tokens (`adapter.alora.invocation_tokens`); empty for a
    /// plain LoRA.
    pub alora_invocation_tokens: Vec<LlamaToken>,
}

/// The scale of every loaded adapter, by id.
type Scales = Vec<f32>;

/// The loaded adapters, their global scales, and the scales each slot runs with.
#[derive(Debug, Default)]
pub struct Loras {
    /// Owned by the model: llama.cpp frees them with it, after the context.
    ptrs: Vec<NonNull<sys::llama_adapter_lora>>,
    adapters: Vec<LoraAdapter>,
    /// By slot id: the scales of its task (and of its cached tokens).
    slots: Vec<Scales>,
    /// The slot whose scales the current batch uses.
    leader: usize,
}

impl Loras {
    /// Loads every adapter for `n_slots` slots; a file llama.cpp cannot load fails the start,
    /// named.
    pub fn load(
        model: &LlamaModel,
        configs: &[LoraAdapterConfig],
        n_slots: usize,
    ) -> Result<Self, EngineError> {
        let mut loras = Self::default();
        for config in configs {
            let ptr = init(model, config)?;
            let scale = config.scale;
            let adapter = LoraAdapter {
                path: config.path.clone(),
                scale,
                task_name: meta(ptr, c"adapter.lora.task_name"),
                prompt_prefix: meta(ptr, c"adapter.lora.prompt_prefix"),
                alora_invocation_tokens: alora_tokens(ptr),
            };
            if !adapter.alora_invocation_tokens.is_empty() {
                tracing::warn!(
                    path = %config.path.display(),
                    "an activated LoRA (aLoRA): gguf-serve applies it to the whole prompt"
                );
            }
            tracing::info!(path = %config.path.display(), scale, "LoRA adapter loaded");
            loras.ptrs.push(ptr);
            loras.adapters.push(adapter);
        }
        let global = loras.global();
        loras.slots = vec![global; n_slots];
        Ok(loras)
    }

    pub fn is_empty(&self) -> bool {
        self.ptrs.is_empty()
    }

    /// Every adapter with its global scale, in id order.
    pub fn list(&self) -> Vec<LoraAdapter> {
        self.adapters.clone()
    }

    /// `POST /lora-adapters`: the named adapters take these global scales, the others 0.
    pub fn set_global(&mut self, request: &LoraRequest) {
        let scales = self.construct(request);
        for (adapter, scale) in self.adapters.iter_mut().zip(scales) {
            adapter.scale = scale;
        }
    }

    /// Gives slot `slot` the scales of a request starting on it; true when they differ from
    /// the scales its cached tokens were computed with (the cache cannot be reused).
    pub fn assign(&mut self, slot: usize, request: &LoraRequest) -> bool {
        if self.is_empty() {
            return false;
        }
        let scales = self.scales_for(request);
        let changed = self.slots[slot] != scales;
        self.slots[slot] = scales;
        changed
    }

    /// The scales a request runs with (empty without adapters).
    pub fn scales_for(&self, request: &LoraRequest) -> Vec<f32> {
        if self.is_empty() {
            Vec::new()
        } else if request.is_empty() {
            self.global()
        } else {
            self.construct(request)
        }
    }

    /// The scales slot `slot`'s cached tokens were computed with (empty without adapters).
    pub fn slot_scales(&self, slot: usize) -> &[f32] {
        self.slots.get(slot).map_or(&[], Vec::as_slice)
    }

    /// Slot `slot` now holds tokens computed with `scales` (restored from the prompt cache).
    pub fn restored(&mut self, slot: usize, scales: Vec<f32>) {
        if let Some(s) = self.slots.get_mut(slot) {
            *s = scales;
        }
    }

    /// Chooses the scales of the next decode among the active slots (ids in order): the first
    /// active slot after the previous leader, so that slots of different settings take turns.
    pub fn pick_batch(&mut self, active: impl Iterator<Item = usize>) {
        if self.is_empty() {
            return;
        }
        let (mut first, mut next) = (None, None);
        for id in active {
            first.get_or_insert(id);
            if id > self.leader && next.is_none() {
                next = Some(id);
            }
        }
        if let Some(leader) = next.or(first) {
            self.leader = leader;
        }
    }

    /// Whether slot `slot` can be in the batch [`Self::pick_batch`] chose.
    pub fn batchable(&self, slot: usize) -> bool {
        self.is_empty() || self.slots[slot] == self.slots[self.leader]
    }

    /// Sets the context's adapters to the batch's scales (llama-server's
    /// `common_set_adapter_lora` before each decode).
    pub fn apply(&self, ctx: &mut Context<'_>) {
        if self.is_empty() {
            return;
        }
        let mut ptrs: Vec<_> = self.ptrs.iter().map(|p| p.as_ptr()).collect();
        let mut scales = self.slots[self.leader].clone();
        ctx.set_adapters_lora(&mut ptrs, &mut scales);
    }

    /// The global scales.
    fn global(&self) -> Scales {
        self.adapters.iter().map(|a| a.scale).collect()
    }

    /// llama-server's `construct_lora_list`: the scale each adapter gets from a list that
    /// names some of them.
    fn construct(&self, request: &LoraRequest) -> Scales {
        (0..self.adapters.len() as i64)
            .map(|id| request.get(&id).copied().unwrap_or(0.0))
            .collect()
    }
}

/// Loads one adapter file.
fn init(
    model: &LlamaModel,
    config: &LoraAdapterConfig,
) -> Result<NonNull<sys::llama_adapter_lora>, EngineError> {
    let failed = |reason: &str| EngineError::Lora {
        path: config.path.clone(),
        reason: reason.into(),
    };
    let path = config
        .path
        .to_str()
        .and_then(|p| CString::new(p).ok())
        .ok_or_else(|| failed("the path is not valid UTF-8 text"))?;
    // SAFETY: the model pointer is valid while `model` is borrowed, and the path is a
    // NUL-terminated string that outlives the call. llama.cpp returns null on failure (its log
    // says why); a returned adapter belongs to the model, which frees it.
    let ptr = unsafe { sys::llama_adapter_lora_init(model_ptr(model), path.as_ptr()) };
    NonNull::new(ptr).ok_or_else(|| {
        failed(
            "llama.cpp could not load this LoRA adapter (see the log above: not a GGUF adapter, \
             or made for another base model)",
        )
    })
}

/// A metadata string of an adapter ("" if absent).
fn meta(ptr: NonNull<sys::llama_adapter_lora>, key: &CStr) -> String {
    let mut buf = vec![0u8; 1024];
    // SAFETY: the adapter is alive (owned by the model); llama.cpp writes at most `buf.len()`
    // bytes, NUL-terminated, and returns -1 when the key is absent.
    let n = unsafe {
        sys::llama_adapter_meta_val_str(
            ptr.as_ptr(),
            key.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return String::new();
    }
    let text = CStr::from_bytes_until_nul(&buf).map_or(&[][..], CStr::to_bytes);
    String::from_utf8_lossy(text).into_owned()
}

/// An activated LoRA's invocation tokens.
fn alora_tokens(ptr: NonNull<sys::llama_adapter_lora>) -> Vec<LlamaToken> {
    // SAFETY: the adapter is alive; llama.cpp returns the length of an array it owns (null when
    // empty), valid while the adapter is.
    unsafe {
        let n = sys::llama_adapter_get_alora_n_invocation_tokens(ptr.as_ptr()) as usize;
        let tokens = sys::llama_adapter_get_alora_invocation_tokens(ptr.as_ptr());
        if n == 0 || tokens.is_null() {
            return Vec::new();
        }
        std::slice::from_raw_parts(tokens, n)
            .iter()
            .map(|&t| LlamaToken(t))
            .collect()
    }
}

/// `--lora FNAME,...`: comma-separated adapter files at scale 1.
pub fn parse_lora(text: &str) -> Vec<LoraAdapterConfig> {
    parse_csv_row(text)
        .into_iter()
        .map(|path| LoraAdapterConfig {
            path: PathBuf::from(path),
            scale: 1.0,
        })
        .collect()
}

/// `--lora-scaled FNAME:SCALE,...`: comma-separated adapters, each a file and its scale after
/// the one colon (llama-server's syntax: a path with a colon of its own is refused, as there).
pub fn parse_lora_scaled(text: &str) -> Result<Vec<LoraAdapterConfig>, String> {
    Ok(parse_scaled_files(text, "lora-scaled")?
        .into_iter()
        .map(|(path, scale)| LoraAdapterConfig { path, scale })
        .collect())
}

/// `FNAME:SCALE,...` (`--lora-scaled`, `--control-vector-scaled`, whose name `flag` is): the
/// files and their scales, in order.
pub(super) fn parse_scaled_files(text: &str, flag: &str) -> Result<Vec<(PathBuf, f32)>, String> {
    parse_csv_row(text)
        .iter()
        .map(|item| {
            let parts: Vec<&str> = item.split(':').collect();
            let [path, scale] = parts[..] else {
                return Err(format!("{item:?}: {flag} format: FNAME:SCALE"));
            };
            let scale = scale
                .trim()
                .parse::<f32>()
                .map_err(|_| format!("{item:?}: the scale {scale:?} is not a number"))?;
            Ok((PathBuf::from(path), scale))
        })
        .collect()
}

/// llama.cpp's `parse_csv_row` (common/arg.cpp), by hand rather than with the csv crate, whose
/// quoting rules differ: commas split fields; a field that starts with `"` is quoted up to the
/// next lone `"` (`""` inside is one quote); a `"` later in a field is kept as it is.
pub(super) fn parse_csv_row(text: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '"' if in_quotes && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' if in_quotes => in_quotes = false,
            '"' if field.is_empty() => in_quotes = true,
            ',' if !in_quotes => fields.push(std::mem::take(&mut field)),
            other => field.push(other),
        }
    }
    fields.push(field);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scaled(list: &[(&str, f32)]) -> Vec<LoraAdapterConfig> {
        list.iter()
            .map(|&(p, scale)| LoraAdapterConfig {
                path: PathBuf::from(p),
                scale,
            })
            .collect()
    }

    #[test]
    fn lora_flags_read_as_llama_server_reads_them() {
        assert_eq!(parse_lora("a.gguf"), scaled(&[("a.gguf", 1.0)]));
        assert_eq!(
            parse_lora("a.gguf,\"b,c.gguf\""),
            scaled(&[("a.gguf", 1.0), ("b,c.gguf", 1.0)])
        );
        assert_eq!(
            parse_lora_scaled("a.gguf:0.5,b.gguf:2").unwrap(),
            scaled(&[("a.gguf", 0.5), ("b.gguf", 2.0)])
        );
        assert_eq!(
            parse_lora_scaled("x/a.gguf:-1").unwrap(),
            scaled(&[("x/a.gguf", -1.0)])
        );
        for bad in ["a.gguf", "c:/a.gguf:1", "a.gguf:big", "a.gguf:1,b.gguf"] {
            assert!(parse_lora_scaled(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn csv_rows_as_llama_cpp_splits_them() {
        let cases: &[(&str, &[&str])] = &[
            ("", &[""]),
            ("a,b", &["a", "b"]),
            ("\"a,b\",c", &["a,b", "c"]),
            ("\"a\"\"b\"", &["a\"b"]),
            ("a\"b", &["a\"b"]),
            ("a,", &["a", ""]),
        ];
        for &(text, want) in cases {
            assert_eq!(parse_csv_row(text), want, "{text}");
        }
    }

    fn loras(scales: &[f32], n_slots: usize) -> Loras {
        Loras {
            ptrs: vec![NonNull::dangling(); scales.len()],
            adapters: scales
                .iter()
                .map(|&scale| LoraAdapter {
                    path: PathBuf::new(),
                    scale,
                    task_name: String::new(),
                    prompt_prefix: String::new(),
                    alora_invocation_tokens: Vec::new(),
                })
                .collect(),
            slots: vec![scales.to_vec(); n_slots],
            leader: 0,
        }
    }

    #[test]
    fn a_request_list_names_its_adapters_and_zeroes_the_rest() {
        let mut l = loras(&[1.0, 0.5], 2);
        assert!(
            !l.assign(0, &LoraRequest::new()),
            "global scales: cache kept"
        );
        assert!(l.assign(0, &LoraRequest::from([(1, 2.0), (7, 3.0), (-1, 1.0)])));
        assert_eq!(l.slots[0], [0.0, 2.0]);
        assert!(!l.assign(0, &LoraRequest::from([(1, 2.0)])));
        l.set_global(&LoraRequest::from([(0, 0.25)]));
        assert_eq!(
            l.list().iter().map(|a| a.scale).collect::<Vec<_>>(),
            [0.25, 0.0]
        );
        assert!(l.assign(1, &LoraRequest::new()));
        assert_eq!(l.slots[1], [0.25, 0.0]);
    }

    #[test]
    fn slots_of_different_scales_take_turns() {
        let mut l = loras(&[1.0], 3);
        l.assign(1, &LoraRequest::from([(0, 0.0)]));
        let mut leaders = Vec::new();
        for _ in 0..4 {
            l.pick_batch([0, 1, 2].into_iter());
            leaders.push(l.leader);
            assert!(l.batchable(l.leader));
        }
        assert_eq!(leaders, [1, 2, 0, 1]);
        l.pick_batch([0, 2].into_iter());
        assert!(l.batchable(0) && l.batchable(2) && !l.batchable(1));
        assert!(loras(&[], 1).batchable(0), "no adapters: every slot");
    }
}

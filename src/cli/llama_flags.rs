//! llama-server's command line, flag by flag: what gguf-serve does with each of its flags.
//!
//! The rows are llama-server's own: `llama-server-flags.tsv`, extracted from the pinned
//! llama.cpp's `tools/server/README.md` by `scripts/llama-server-flags.py` (every spelling, the
//! negative spellings of on/off pairs, the environment variable, how many values the flag
//! takes). [`DECISIONS`] gives each row one [`Support`]: implemented by one of gguf-serve's
//! own (clap) flags, accepted because gguf-serve already behaves so, or refused with the
//! reason. From the two, [`translate`] turns a llama-server command line and its `LLAMA_ARG_*`
//! environment into gguf-serve's flags, or refuses a flag by name; `--help` and `gguf-serve
//! flags` (the README's table) are generated from the same rows.
//!
//! llama-server's rules, kept: every spelling works (`-ngl`, `--gpu-layers`, `--n-gpu-layers`);
//! the command line wins over the environment; an on/off pair's variable takes
//! `true|1|on|enabled` or `false|0|off|disabled` (anything else is an error) and its
//! `LLAMA_ARG_NO_*` twin forces it off; a plain switch's variable turns it on only when truthy.
//! Beyond llama-server: `--flag=value` is accepted too.

use std::collections::HashMap;
use std::ffi::OsString;
use std::sync::OnceLock;

/// What gguf-serve does with one of llama-server's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Implemented by gguf-serve's flag `--NAME`, with llama-server's meaning; a pair's
    /// negative spellings give it `=false`.
    Ours(&'static str),
    /// Accepted without effect: gguf-serve already behaves this way (the reason).
    Same(&'static str),
    /// Refused with this reason: not supported (yet).
    Refused(&'static str),
}

use Support::{Ours, Refused, Same};

/// One flag of llama-server's table.
#[derive(Debug)]
pub struct LlamaFlag {
    /// `common`, `sampling` or `server-specific`, as the README groups them.
    pub section: &'static str,
    pub spellings: Vec<&'static str>,
    /// The spellings that turn an on/off pair off (`-nkvo`, `--no-kv-offload`).
    pub negatives: Vec<&'static str>,
    pub env: Option<&'static str>,
    /// How many values follow the flag (0, 1 or 2).
    pub arity: usize,
    pub placeholder: &'static str,
    pub help: &'static str,
    /// What gguf-serve does with the flag, and with its negative spellings.
    pub support: Support,
    pub negative: Support,
}

impl LlamaFlag {
    /// The name the decision table knows the row by: its first long spelling.
    pub fn key(&self) -> &'static str {
        self.spellings
            .iter()
            .find(|s| s.starts_with("--"))
            .unwrap_or(&self.spellings[0])
    }

    /// Whether this is an on/off pair (its environment variable takes a boolean).
    pub fn is_pair(&self) -> bool {
        !self.negatives.is_empty()
    }

    /// The class of the flag, counting a pair by its positive half.
    pub fn class(&self) -> Class {
        match self.support {
            Ours(_) => Class::Implemented,
            Same(_) => Class::Accepted,
            Refused(_) => Class::Refused,
        }
    }
}

/// The three outcomes of the flag table, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Implemented,
    Accepted,
    Refused,
}

const TABLE: &str = include_str!("llama-server-flags.tsv");

const SPECULATIVE: &str = "speculative decoding is not supported yet";
const MULTIMODAL: &str = "multimodal models (images, audio, video) are not supported yet";
const DOWNLOADS: &str = "downloading a model from a URL or a Docker registry is not supported: use -hf ORG/REPO[:QUANT] or a local file";
const PRESETS: &str = "llama-server's model presets are not built in: name the repo with -hf \
    (llama-server's help lists each preset's) and its settings as flags";
const CONTROL_VECTORS: &str = "control vectors are not supported yet";
const LORA_INIT: &str = "the pinned llama-server still starts adapters at their --lora scales \
    with it (its README says 0): the scales are set per decode from the global ones";
const ROUTER: &str = "serving several models from one server is not supported yet";
const WEB_UI: &str = "gguf-serve has no web UI yet";
const AGENT: &str = "llama-server's built-in agent tools and MCP proxy are not supported";
const PROMPT_CACHE: &str = "the host-memory prompt cache is not implemented yet";
const NOT_YET: &str = "not implemented yet";

/// Every row's decision, by its first long spelling; a second entry is the decision for the
/// pair's negative spellings when it differs from the first's (for `Ours`, the negative
/// spellings set the flag to false).
#[rustfmt::skip]
pub const DECISIONS: &[(&str, Support, Option<Support>)] = &[
    // Common
    ("--help", Ours("help"), None),
    ("--version", Ours("version"), None),
    ("--cache-list", Ours("cache-list"), None),
    ("--completion-bash", Refused("shell completion scripts are not generated"), None),
    ("--threads", Ours("threads"), None),
    ("--threads-batch", Ours("threads-batch"), None),
    ("--cpu-mask", Ours("cpu-mask"), None),
    ("--cpu-range", Ours("cpu-range"), None),
    ("--cpu-strict", Ours("cpu-strict"), None),
    ("--prio", Ours("prio"), None),
    ("--poll", Ours("poll"), None),
    ("--cpu-mask-batch", Ours("cpu-mask-batch"), None),
    ("--cpu-range-batch", Ours("cpu-range-batch"), None),
    ("--cpu-strict-batch", Ours("cpu-strict-batch"), None),
    ("--prio-batch", Ours("prio-batch"), None),
    ("--poll-batch", Ours("poll-batch"), None),
    ("--lookup-cache-static", Refused(SPECULATIVE), None),
    ("--lookup-cache-dynamic", Refused(SPECULATIVE), None),
    ("--ctx-size", Ours("ctx-size"), None),
    ("--kv-unified-per-slot", Ours("kv-unified-per-slot"), None),
    ("--predict", Ours("n-predict"), None),
    ("--batch-size", Ours("batch-size"), None),
    ("--ubatch-size", Ours("ubatch-size"), None),
    ("--keep", Ours("keep"), None),
    ("--swa-full", Ours("swa-full"), None),
    ("--ctx-checkpoints", Refused("context checkpoints (prompt reuse on sliding-window and recurrent models) are not implemented"), None),
    ("--checkpoint-min-step", Refused("context checkpoints (prompt reuse on sliding-window and recurrent models) are not implemented"), None),
    ("--cache-ram", Refused(PROMPT_CACHE), None),
    ("--kv-unified", Ours("kv-unified"), None),
    ("--cache-idle-slots", Refused(PROMPT_CACHE), Some(Same("idle slots stay in the KV cache"))),
    ("--context-shift", Ours("context-shift"), None),
    ("--flash-attn", Ours("flash-attn"), None),
    ("--perf", Ours("perf"), None),
    ("--escape", Ours("escape"), None),
    ("--reverse-prompt", Ours("reverse-prompt"), None),
    ("--special", Ours("special"), None),
    ("--warmup", Ours("warmup"), None),
    ("--spm-infill", Ours("spm-infill"), None),
    ("--samplers", Ours("samplers"), None),
    ("--seed", Ours("seed"), None),
    ("--sampler-seq", Ours("sampling-seq"), None),
    ("--ignore-eos", Ours("ignore-eos"), None),
    ("--temp", Ours("temp"), None),
    ("--top-k", Ours("top-k"), None),
    ("--top-p", Ours("top-p"), None),
    ("--min-p", Ours("min-p"), None),
    ("--top-nsigma", Ours("top-nsigma"), None),
    ("--xtc-probability", Ours("xtc-probability"), None),
    ("--xtc-threshold", Ours("xtc-threshold"), None),
    ("--typical", Ours("typical"), None),
    ("--repeat-last-n", Ours("repeat-last-n"), None),
    ("--repeat-penalty", Ours("repeat-penalty"), None),
    ("--presence-penalty", Ours("presence-penalty"), None),
    ("--frequency-penalty", Ours("frequency-penalty"), None),
    ("--dry-multiplier", Ours("dry-multiplier"), None),
    ("--dry-base", Ours("dry-base"), None),
    ("--dry-allowed-length", Ours("dry-allowed-length"), None),
    ("--dry-penalty-last-n", Ours("dry-penalty-last-n"), None),
    ("--dry-sequence-breaker", Ours("dry-sequence-breaker"), None),
    ("--adaptive-target", Refused("the adaptive-p sampler is not supported yet"), None),
    ("--adaptive-decay", Refused("the adaptive-p sampler is not supported yet"), None),
    ("--dynatemp-range", Ours("dynatemp-range"), None),
    ("--dynatemp-exp", Ours("dynatemp-exp"), None),
    ("--mirostat", Ours("mirostat"), None),
    ("--mirostat-lr", Ours("mirostat-lr"), None),
    ("--mirostat-ent", Ours("mirostat-ent"), None),
    ("--logit-bias", Ours("logit-bias"), None),
    ("--grammar", Ours("grammar"), None),
    ("--grammar-file", Ours("grammar-file"), None),
    ("--json-schema", Ours("json-schema"), None),
    ("--json-schema-file", Ours("json-schema-file"), None),
    ("--backend-sampling", Ours("backend-sampling"), None),
    ("--pooling", Ours("pooling"), None),
    ("--rope-scaling", Ours("rope-scaling"), None),
    ("--rope-scale", Ours("rope-scale"), None),
    ("--rope-freq-base", Ours("rope-freq-base"), None),
    ("--rope-freq-scale", Ours("rope-freq-scale"), None),
    ("--yarn-orig-ctx", Ours("yarn-orig-ctx"), None),
    ("--yarn-ext-factor", Ours("yarn-ext-factor"), None),
    ("--yarn-attn-factor", Ours("yarn-attn-factor"), None),
    ("--yarn-beta-slow", Ours("yarn-beta-slow"), None),
    ("--yarn-beta-fast", Ours("yarn-beta-fast"), None),
    ("--kv-offload", Ours("kv-offload"), None),
    ("--repack", Ours("repack"), None),
    ("--no-host", Ours("no-host"), None),
    ("--cache-type-k", Ours("cache-type-k"), None),
    ("--cache-type-v", Ours("cache-type-v"), None),
    ("--defrag-thold", Same("deprecated in llama.cpp, where it has no effect either"), None),
    ("--parallel", Ours("parallel"), None),
    ("--cont-batching", Same("requests are always batched continuously"),
        Some(Refused("gguf-serve always batches requests continuously"))),
    ("--mmproj", Refused(MULTIMODAL), None),
    ("--mmproj-url", Refused(MULTIMODAL), None),
    ("--mmproj-auto", Same("no multimodal projector is ever loaded"), None),
    ("--mmproj-offload", Same("no multimodal projector is ever loaded"), None),
    ("--mmproj-device", Refused(MULTIMODAL), None),
    ("--image-min-tokens", Refused(MULTIMODAL), None),
    ("--image-max-tokens", Refused(MULTIMODAL), None),
    ("--mtmd-batch-max-tokens", Refused(MULTIMODAL), None),
    ("--video-fps", Refused(MULTIMODAL), None),
    ("--video-timestamp-interval", Refused(MULTIMODAL), None),
    ("--video-ffmpeg-dir", Refused(MULTIMODAL), None),
    ("--rpc", Refused("llama.cpp's RPC workers are not supported yet"), None),
    ("--load-mode", Ours("load-mode"), None),
    ("--lazy-mode", Ours("lazy-mode"), None),
    ("--numa", Ours("numa"), None),
    ("--device", Ours("device"), None),
    ("--list-devices", Ours("list-devices"), None),
    ("--override-tensor", Ours("override-tensor"), None),
    ("--cpu-moe", Ours("cpu-moe"), None),
    ("--n-cpu-moe", Ours("n-cpu-moe"), None),
    ("--n-cpu-ffn", Ours("n-cpu-ffn"), None),
    ("--gpu-layers", Ours("n-gpu-layers"), None),
    ("--split-mode", Ours("split-mode"), None),
    ("--tensor-split", Ours("tensor-split"), None),
    ("--main-gpu", Ours("main-gpu"), None),
    ("--fit", Ours("fit"), None),
    ("--fit-target", Ours("fit-target"), None),
    ("--fit-ctx", Same("the context is never shrunk below what was asked, so never below this floor"), None),
    ("--check-tensors", Ours("check-tensors"), None),
    ("--override-kv", Ours("override-kv"), None),
    ("--op-offload", Ours("op-offload"), None),
    ("--lora", Ours("lora"), None),
    ("--lora-scaled", Ours("lora-scaled"), None),
    ("--control-vector", Refused(CONTROL_VECTORS), None),
    ("--control-vector-scaled", Refused(CONTROL_VECTORS), None),
    ("--control-vector-layer-range", Refused(CONTROL_VECTORS), None),
    ("--model", Ours("model"), None),
    ("--model-url", Refused(DOWNLOADS), None),
    ("--docker-repo", Refused(DOWNLOADS), None),
    ("--hf-repo", Ours("hf-repo"), None),
    ("--hf-file", Ours("hf-file"), None),
    ("--hf-token", Ours("hf-token"), None),
    ("--log-disable", Ours("log-disable"), None),
    ("--log-file", Ours("log-file"), None),
    ("--log-jsonl", Ours("log-jsonl"), None),
    ("--log-colors", Ours("log-colors"), None),
    ("--verbose", Ours("verbose"), None),
    ("--offline", Ours("offline"), None),
    ("--verbosity", Ours("verbosity"), None),
    ("--log-prefix", Ours("log-prefix"), None),
    ("--log-timestamps", Ours("log-timestamps"), None),
    ("--spec-draft-type-k", Refused(SPECULATIVE), None),
    ("--spec-draft-type-v", Refused(SPECULATIVE), None),
    // Server-specific
    ("--alias", Ours("alias"), None),
    ("--tags", Ours("tags"), None),
    ("--embd-normalize", Ours("embd-normalize"), None),
    ("--host", Ours("host"), None),
    ("--port", Ours("port"), None),
    ("--reuse-port", Ours("reuse-port"), None),
    ("--path", Ours("path"), None),
    ("--cors-origins", Ours("cors-origins"), None),
    ("--cors-methods", Ours("cors-methods"), None),
    ("--cors-headers", Ours("cors-headers"), None),
    ("--cors-credentials", Ours("cors-credentials"), None),
    ("--api-prefix", Ours("api-prefix"), None),
    ("--ui-config", Refused(WEB_UI), None),
    ("--ui-config-file", Refused(WEB_UI), None),
    ("--ui-mcp-proxy", Refused(AGENT), Some(Same("there is no MCP proxy"))),
    ("--tools", Refused(AGENT), None),
    ("--tools-runtime", Refused(AGENT), None),
    ("--mcp-servers-config", Refused(AGENT), None),
    ("--mcp-servers-json", Refused(AGENT), None),
    ("--agent", Refused(AGENT), Some(Same("the agent tools are off"))),
    ("--ui", Refused(WEB_UI), Some(Same("no web UI is served"))),
    ("--embedding", Ours("embedding"), None),
    ("--rerank", Ours("reranking"), None),
    ("--api-key", Ours("api-key"), None),
    ("--api-key-file", Ours("api-key-file"), None),
    ("--ssl-key-file", Ours("ssl-key-file"), None),
    ("--ssl-cert-file", Ours("ssl-cert-file"), None),
    ("--chat-template-kwargs", Ours("chat-template-kwargs"), None),
    ("--timeout", Ours("timeout"), None),
    ("--sse-ping-interval", Ours("sse-ping-interval"), None),
    ("--threads-http", Ours("threads-http"), None),
    ("--cache-prompt", Ours("cache-prompt"), None),
    ("--cache-reuse", Refused("reusing cached chunks by shifting the KV cache is not implemented yet"), None),
    ("--metrics", Ours("metrics"), None),
    ("--props", Ours("props"), None),
    ("--slots", Ours("slots"), None),
    ("--slot-save-path", Ours("slot-save-path"), None),
    ("--media-path", Refused(MULTIMODAL), None),
    ("--models-dir", Refused(ROUTER), None),
    ("--models-preset", Refused(ROUTER), None),
    ("--models-max", Refused(ROUTER), None),
    ("--models-autoload", Refused(ROUTER), None),
    ("--jinja", Ours("jinja"), None),
    ("--reasoning-format", Ours("reasoning-format"), None),
    ("--reasoning", Ours("reasoning"), None),
    ("--reasoning-effort", Ours("reasoning-effort"), None),
    ("--reasoning-budget", Ours("reasoning-budget"), None),
    ("--reasoning-budget-message", Refused("a reasoning budget (other than -1) is not supported yet"), None),
    ("--reasoning-preserve", Ours("reasoning-preserve"), None),
    ("--chat-template", Ours("chat-template"), None),
    ("--chat-template-file", Ours("chat-template-file"), None),
    ("--skip-chat-parsing", Ours("skip-chat-parsing"), None),
    ("--prefill-assistant", Ours("prefill-assistant"), None),
    ("--slot-prompt-similarity", Ours("slot-prompt-similarity"), None),
    ("--lora-init-without-apply", Same(LORA_INIT), None),
    ("--sleep-idle-seconds", Refused("unloading the model when idle is not supported"), None),
    ("--log-prompts-dir", Refused("logging prompts to files is not supported"), None),
    ("--spec-draft-hf", Refused(SPECULATIVE), None),
    ("--spec-draft-threads", Refused(SPECULATIVE), None),
    ("--spec-draft-threads-batch", Refused(SPECULATIVE), None),
    ("--spec-draft-cpu-mask", Refused(SPECULATIVE), None),
    ("--spec-draft-cpu-range", Refused(SPECULATIVE), None),
    ("--spec-draft-cpu-strict", Refused(SPECULATIVE), None),
    ("--spec-draft-prio", Refused(SPECULATIVE), None),
    ("--spec-draft-poll", Refused(SPECULATIVE), None),
    ("--spec-draft-cpu-mask-batch", Refused(SPECULATIVE), None),
    ("--spec-draft-cpu-strict-batch", Refused(SPECULATIVE), None),
    ("--spec-draft-prio-batch", Refused(SPECULATIVE), None),
    ("--spec-draft-poll-batch", Refused(SPECULATIVE), None),
    ("--spec-draft-override-tensor", Refused(SPECULATIVE), None),
    ("--spec-draft-cpu-moe", Refused(SPECULATIVE), None),
    ("--spec-draft-n-cpu-moe", Refused(SPECULATIVE), None),
    ("--spec-draft-n-max", Refused(SPECULATIVE), None),
    ("--spec-draft-n-min", Refused(SPECULATIVE), None),
    ("--spec-synth-len", Refused(SPECULATIVE), None),
    ("--spec-synth-rates", Refused(SPECULATIVE), None),
    ("--spec-draft-p-split", Refused(SPECULATIVE), None),
    ("--spec-draft-p-min", Refused(SPECULATIVE), None),
    ("--spec-draft-backend-sampling", Refused(SPECULATIVE), None),
    ("--spec-draft-device", Refused(SPECULATIVE), None),
    ("--spec-draft-ngl", Refused(SPECULATIVE), None),
    ("--spec-draft-model", Refused(SPECULATIVE), None),
    ("--spec-type", Refused(SPECULATIVE), None),
    ("--spec-ngram-mod-n-min", Refused(SPECULATIVE), None),
    ("--spec-ngram-mod-n-max", Refused(SPECULATIVE), None),
    ("--spec-ngram-mod-n-match", Refused(SPECULATIVE), None),
    ("--spec-ngram-simple-size-n", Refused(SPECULATIVE), None),
    ("--spec-ngram-simple-size-m", Refused(SPECULATIVE), None),
    ("--spec-ngram-simple-min-hits", Refused(SPECULATIVE), None),
    ("--spec-ngram-map-k-size-n", Refused(SPECULATIVE), None),
    ("--spec-ngram-map-k-size-m", Refused(SPECULATIVE), None),
    ("--spec-ngram-map-k-min-hits", Refused(SPECULATIVE), None),
    ("--spec-ngram-map-k4v-size-n", Refused(SPECULATIVE), None),
    ("--spec-ngram-map-k4v-size-m", Refused(SPECULATIVE), None),
    ("--spec-ngram-map-k4v-min-hits", Refused(SPECULATIVE), None),
    ("--draft", Refused("the argument has been removed. use --spec-draft-n-max or --spec-ngram-mod-n-max"), None),
    ("--draft-min", Refused("the argument has been removed. use --spec-draft-n-min or --spec-ngram-mod-n-min"), None),
    ("--spec-ngram-size-n", Refused("the argument has been removed. use the respective --spec-ngram-*-size-n or --spec-ngram-mod-n-match"), None),
    ("--spec-ngram-size-m", Refused("the argument has been removed. use the respective --spec-ngram-*-size-m"), None),
    ("--spec-ngram-min-hits", Refused("the argument has been removed. use the respective --spec-ngram-*-min-hits"), None),
    ("--embd-gemma-default", Refused(PRESETS), None),
    ("--fim-qwen-1.5b-default", Refused(PRESETS), None),
    ("--fim-qwen-3b-default", Refused(PRESETS), None),
    ("--fim-qwen-7b-default", Refused(PRESETS), None),
    ("--fim-qwen-7b-spec", Refused(SPECULATIVE), None),
    ("--fim-qwen-14b-spec", Refused(SPECULATIVE), None),
    ("--fim-qwen-30b-default", Refused(PRESETS), None),
    ("--gpt-oss-20b-default", Refused(PRESETS), None),
    ("--gpt-oss-120b-default", Refused(PRESETS), None),
    ("--vision-gemma-4b-default", Refused(PRESETS), None),
    ("--vision-gemma-12b-default", Refused(PRESETS), None),
    ("--spec-default", Refused(SPECULATIVE), None),
];

/// Flags llama-server's table does not list, decided the same way: the pinned binary's
/// `--spec-draft-sampling` (missing from its README), and spellings of older llama-servers
/// that scripts still carry.
#[rustfmt::skip]
const EXTRA_ROWS: &[(&str, &str, &str, usize, Support)] = &[
    // (spellings, negatives, env, arity, support)
    ("--spec-draft-sampling", "", "LLAMA_ARG_SPEC_DRAFT_SAMPLING", 1, Refused(SPECULATIVE)),
    // Before `-lm/--load-mode` (2026), llama-server read the file with these.
    ("--mmap", "--no-mmap", "LLAMA_ARG_MMAP", 0, Ours("mmap")),
    ("--mlock", "", "LLAMA_ARG_MLOCK", 0, Ours("mlock")),
];

/// llama-server's flags with gguf-serve's decision for each, in the README's order.
pub fn table() -> &'static [LlamaFlag] {
    static TABLE_ROWS: OnceLock<Vec<LlamaFlag>> = OnceLock::new();
    TABLE_ROWS.get_or_init(|| {
        let decisions: HashMap<&str, (Support, Option<Support>)> =
            DECISIONS.iter().map(|&(k, s, n)| (k, (s, n))).collect();
        let mut rows: Vec<LlamaFlag> = TABLE
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with("section\t"))
            .map(|line| {
                let cols: Vec<&'static str> = line.split('\t').collect();
                let [section, spellings, negatives, env, arity, placeholder, help] = cols[..]
                else {
                    panic!("llama-server-flags.tsv: malformed row {line:?}");
                };
                row(
                    section,
                    spellings,
                    negatives,
                    env,
                    arity.parse().unwrap_or(0),
                    placeholder,
                    help,
                )
            })
            .collect();
        rows.extend(
            EXTRA_ROWS
                .iter()
                .map(|&(spellings, negatives, env, arity, support)| LlamaFlag {
                    support,
                    negative: support,
                    ..row("extra", spellings, negatives, env, arity, "", "")
                }),
        );
        for flag in &mut rows {
            if flag.section == "extra" {
                continue;
            }
            let (support, negative) = decisions
                .get(flag.key())
                .copied()
                .unwrap_or_else(|| panic!("no decision for llama-server's {}", flag.key()));
            flag.support = support;
            flag.negative = negative.unwrap_or(support);
        }
        rows
    })
}

fn row(
    section: &'static str,
    spellings: &'static str,
    negatives: &'static str,
    env: &'static str,
    arity: usize,
    placeholder: &'static str,
    help: &'static str,
) -> LlamaFlag {
    let split = |s: &'static str| s.split('|').filter(|s| !s.is_empty()).collect::<Vec<_>>();
    LlamaFlag {
        section,
        spellings: split(spellings),
        negatives: split(negatives),
        env: (!env.is_empty()).then_some(env),
        arity,
        placeholder,
        help,
        support: Refused(NOT_YET),
        negative: Refused(NOT_YET),
    }
}

/// A flag llama-server's table knows, and which half of it a spelling names.
fn lookup(spelling: &str) -> Option<(&'static LlamaFlag, bool)> {
    static INDEX: OnceLock<HashMap<&'static str, (usize, bool)>> = OnceLock::new();
    let index = INDEX.get_or_init(|| {
        let mut index = HashMap::new();
        for (i, flag) in table().iter().enumerate() {
            for &s in &flag.spellings {
                index.insert(s, (i, false));
            }
            for &s in &flag.negatives {
                index.insert(s, (i, true));
            }
        }
        index
    });
    index.get(spelling).map(|&(i, neg)| (&table()[i], neg))
}

/// Why a command line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    #[error("{flag}: not supported: {reason}")]
    Refused { flag: String, reason: &'static str },
    #[error("{var} (for {flag}): not supported: {reason}")]
    RefusedEnv {
        var: String,
        flag: String,
        reason: &'static str,
    },
    #[error("{flag}: expects {arity} value(s) ({placeholder})")]
    MissingValue {
        flag: String,
        arity: usize,
        placeholder: &'static str,
    },
    #[error("{flag}: takes no value")]
    UnexpectedValue { flag: String },
    #[error(
        "{var}: invalid boolean value {value:?} (true, 1, on, enabled, false, 0, off, disabled)"
    )]
    Boolean { var: String, value: String },
    #[error(
        "{flag}: unknown flag (neither llama-server's nor gguf-serve's; see gguf-serve --help)"
    )]
    Unknown { flag: String },
}

/// llama.cpp's truthy and falsey strings.
fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "true" | "1" | "on" | "enabled" => Some(true),
        "false" | "0" | "off" | "disabled" => Some(false),
        _ => None,
    }
}

/// gguf-serve's own spellings for `Ours` flags, once decided: `--name` with the value or
/// values llama-server's spelling carried.
fn ours(name: &str, flag: &LlamaFlag, negative: bool, values: Vec<OsString>) -> Vec<OsString> {
    let long = format!("--{name}");
    if flag.is_pair() {
        let value = match values.first() {
            Some(v) => v.to_string_lossy().into_owned(),
            None => (!negative).to_string(),
        };
        return vec![format!("{long}={value}").into()];
    }
    let mut out: Vec<OsString> = vec![long.into()];
    out.extend(values);
    out
}

/// Rewrites a serve command line (program name first) and its environment into gguf-serve's
/// own flags: every llama-server spelling becomes gguf-serve's flag, flags gguf-serve already
/// honours vanish, refused flags stop the parse by name, and `LLAMA_ARG_*` variables fill in
/// flags the command line does not give. `known` tells whether a spelling is one of
/// gguf-serve's own flags (those pass through unchanged).
pub fn translate(
    args: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<String>,
    known: &dyn Fn(&str) -> Option<bool>,
) -> Result<Vec<OsString>, FlagError> {
    let mut args = args.into_iter();
    let mut out: Vec<OsString> = args.next().into_iter().collect();
    let mut seen: Vec<*const LlamaFlag> = Vec::new();
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy().into_owned();
        if !text.starts_with('-') || text == "-" || text == "--" {
            out.push(arg);
            continue;
        }
        let (spelling, inline) = match text.split_once('=') {
            Some((s, v)) if s.starts_with('-') => (s.to_string(), Some(v.to_string())),
            _ => (text.clone(), None),
        };
        let Some((flag, negative)) = lookup(&spelling) else {
            let Some(takes_value) = known(&spelling) else {
                return Err(FlagError::Unknown { flag: spelling });
            };
            out.push(arg);
            // One of our own flags: its value goes to clap as it is, even if it starts with `-`.
            if takes_value && inline.is_none() {
                out.extend(args.next());
            }
            continue;
        };
        seen.push(flag);
        let support = if negative {
            flag.negative
        } else {
            flag.support
        };
        let mut values: Vec<OsString> = Vec::new();
        if let Some(v) = inline {
            if flag.arity == 0 && !(flag.is_pair() && matches!(support, Ours(_))) {
                return Err(FlagError::UnexpectedValue { flag: spelling });
            }
            values.push(v.into());
        } else {
            for _ in 0..flag.arity {
                match args.next() {
                    Some(v) => values.push(v),
                    None => {
                        return Err(FlagError::MissingValue {
                            flag: spelling,
                            arity: flag.arity,
                            placeholder: flag.placeholder,
                        });
                    }
                }
            }
        }
        match support {
            Ours(name) => out.extend(ours(name, flag, negative, values)),
            Same(_) => {}
            Refused(reason) => {
                return Err(FlagError::Refused {
                    flag: spelling,
                    reason,
                });
            }
        }
    }
    for flag in table() {
        if seen.contains(&std::ptr::from_ref(flag)) {
            continue;
        }
        out.extend(from_env(flag, env)?);
    }
    Ok(out)
}

/// The flags an unset-on-the-command-line row takes from its environment variable.
fn from_env(
    flag: &LlamaFlag,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<OsString>, FlagError> {
    let Some(var) = flag.env else {
        return Ok(Vec::new());
    };
    // `LLAMA_ARG_NO_X`, set to anything, turns a pair off.
    let no_var = var.replacen("LLAMA_ARG_", "LLAMA_ARG_NO_", 1);
    let (value, var) = match (flag.is_pair() && no_var != var)
        .then(|| env(&no_var))
        .flatten()
    {
        Some(_) => ("false".to_string(), no_var),
        None => match env(var) {
            Some(v) => (v, var.to_string()),
            None => return Ok(Vec::new()),
        },
    };
    let on = if flag.is_pair() {
        Some(parse_bool(&value).ok_or_else(|| FlagError::Boolean {
            var: var.clone(),
            value: value.clone(),
        })?)
    } else if flag.arity == 0 {
        // A plain switch turns on for a truthy value and ignores anything else.
        if parse_bool(&value) != Some(true) {
            return Ok(Vec::new());
        }
        Some(true)
    } else {
        None
    };
    let negative = on == Some(false);
    let support = if negative {
        flag.negative
    } else {
        flag.support
    };
    match support {
        Ours(name) => {
            let values = match on {
                Some(on) if flag.is_pair() => vec![on.to_string().into()],
                Some(_) => Vec::new(),
                None => vec![value.into()],
            };
            Ok(ours(name, flag, negative, values))
        }
        Same(_) => Ok(Vec::new()),
        // Variables other tools share (`HF_TOKEN`) do not stop gguf-serve; llama.cpp's own do.
        Refused(_) if !var.starts_with("LLAMA_") => Ok(Vec::new()),
        Refused(reason) => Err(FlagError::RefusedEnv {
            var,
            flag: flag.key().to_string(),
            reason,
        }),
    }
}

/// Rewrites llama-server's spellings of implemented flags to gguf-serve's (`-ngl` to
/// `--n-gpu-layers`) and leaves everything else alone: for the subcommands that share some of
/// `serve`'s flags (`plan`).
pub fn rewrite_spellings(args: Vec<OsString>) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len());
    for arg in args {
        let text = arg.to_string_lossy().into_owned();
        let (spelling, inline) = match text.split_once('=') {
            Some((s, v)) => (s, Some(v)),
            None => (text.as_str(), None),
        };
        match lookup(spelling) {
            Some((flag, negative)) if text.starts_with('-') => {
                let support = if negative {
                    flag.negative
                } else {
                    flag.support
                };
                match support {
                    Ours(name) => {
                        let values = inline.map(|v| vec![OsString::from(v)]).unwrap_or_default();
                        out.extend(ours(name, flag, negative, values));
                    }
                    _ => out.push(arg),
                }
            }
            _ => out.push(arg),
        }
    }
    out
}

/// The help suffix for one of gguf-serve's flags: the llama-server spellings it answers to and
/// their environment variable.
pub fn help_suffix(name: &str) -> Option<String> {
    let rows: Vec<&LlamaFlag> = table()
        .iter()
        .filter(|f| {
            [f.support, f.negative]
                .iter()
                .any(|s| matches!(s, Ours(n) if *n == name))
        })
        .collect();
    if rows.is_empty() {
        return None;
    }
    let spellings: Vec<&str> = rows
        .iter()
        .flat_map(|f| f.spellings.iter().chain(&f.negatives))
        .copied()
        .collect();
    let mut text = format!("[llama-server: {}", spellings.join(", "));
    if let Some(env) = rows.iter().find_map(|f| f.env) {
        text += &format!("; env: {env}");
    }
    Some(text + "]")
}

/// How many of llama-server's flags fall in each class.
pub fn counts() -> [(Class, usize); 3] {
    let n = |c: Class| table().iter().filter(|f| f.class() == c).count();
    [
        (Class::Implemented, n(Class::Implemented)),
        (Class::Accepted, n(Class::Accepted)),
        (Class::Refused, n(Class::Refused)),
    ]
}

#[cfg(test)]
mod tests;

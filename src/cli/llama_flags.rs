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
use std::sync::OnceLock;

mod decisions;
mod rewrite;

pub use decisions::DECISIONS;
use decisions::EXTRA_ROWS;
pub use rewrite::{FlagError, rewrite_spellings, translate};

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

    /// What gguf-serve does with the flag as spelled: its negative spellings' decision when
    /// `negative`.
    pub fn support_for(&self, negative: bool) -> Support {
        if negative {
            self.negative
        } else {
            self.support
        }
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

const NOT_YET: &str = "not implemented yet";

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

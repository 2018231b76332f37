//! Reading a command line and its environment through the flag table: `translate` turns
//! llama-server's spellings and `LLAMA_ARG_*` variables into gguf-serve's own flags (or refuses
//! a flag by name) before clap parses them, and `rewrite_spellings` does the same for the
//! subcommands that share some of `serve`'s flags.

use std::ffi::OsString;

use super::Support::{Ours, Refused, Same};
use super::{LlamaFlag, lookup, table};

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
        let support = flag.support_for(negative);
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
    let support = flag.support_for(negative);
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
/// `serve`'s flags (`plan`). A spelling the subcommand defines itself (`own`, as in
/// [`translate`]) is its own: `bench --temperature` is bench's flag, not llama-server's `--temp`.
pub fn rewrite_spellings(args: Vec<OsString>, own: &dyn Fn(&str) -> Option<bool>) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len());
    for arg in args {
        let text = arg.to_string_lossy().into_owned();
        let (spelling, inline) = match text.split_once('=') {
            Some((s, v)) => (s, Some(v)),
            None => (text.as_str(), None),
        };
        if own(spelling).is_some() {
            out.push(arg);
            continue;
        }
        match lookup(spelling) {
            Some((flag, negative)) if text.starts_with('-') => {
                let support = flag.support_for(negative);
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

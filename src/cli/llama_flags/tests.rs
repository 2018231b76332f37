//! The flag table against llama-server's: every spelling of every flag is accepted or refused
//! by name, never misparsed; the environment follows llama-server's rules.

use std::collections::HashMap;
use std::ffi::OsString;

use super::*;
use crate::cli::{Cli, ParseError};

/// A value llama-server would take for a flag, from its placeholder (and, where the
/// placeholder says too little, from the flag).
fn sample(flag: &LlamaFlag) -> Vec<&'static str> {
    let by_flag: &[(&str, &str)] = &[
        ("--reasoning-format", "deepseek"),
        ("--cache-type-k", "q8_0"),
        ("--cache-type-v", "q8_0"),
        ("--gpu-layers", "99"),
        ("--fit-target", "1024"),
        ("--slot-prompt-similarity", "0.5"),
    ];
    if let Some(&(_, v)) = by_flag.iter().find(|(k, _)| *k == flag.key()) {
        return vec![v];
    }
    match flag.arity {
        0 => Vec::new(),
        2 => vec!["1", "2"],
        _ => vec![match flag.placeholder {
            p if p.contains("on|off") || p.contains("on\\|off") => "on",
            p if p.starts_with('{') => p.trim_matches(['{', '}']).split(',').next().unwrap(),
            "N" | "SEED" | "PORT" | "INDEX" | "SECONDS" | "<0|1>" | "<0...100>" => "1",
            _ => "x",
        }],
    }
}

fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Cli, ParseError> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let argv = ["gguf-serve", "-m", "model.gguf"].iter().chain(args);
    Cli::parse_with_env(argv.map(OsString::from), &|k| env.get(k).cloned())
}

#[test]
fn every_spelling_of_every_flag_is_accepted_or_refused_by_name() {
    let mut seen = 0;
    for flag in table() {
        let halves = [
            (&flag.spellings, flag.support),
            (&flag.negatives, flag.negative),
        ];
        for (spellings, support) in halves {
            for &spelling in spellings {
                seen += 1;
                let mut args = vec![spelling];
                args.extend(sample(flag));
                let got = parse(&args, &[]);
                match (support, got) {
                    (Refused(reason), Err(ParseError::Flag(e))) => assert_eq!(
                        e,
                        FlagError::Refused {
                            flag: spelling.into(),
                            reason
                        },
                        "{args:?}"
                    ),
                    (Refused(_), other) => panic!("{args:?}: not refused: {other:?}"),
                    (_, Ok(_)) => {}
                    (Ours("help" | "version"), Err(ParseError::Clap(e)))
                        if matches!(
                            e.kind(),
                            clap::error::ErrorKind::DisplayHelp
                                | clap::error::ErrorKind::DisplayVersion
                        ) => {}
                    (_, Err(e)) => panic!("{args:?}: misparsed: {e:?}"),
                }
            }
        }
    }
    assert!(seen > 400, "only {seen} spellings walked");
    let [(_, implemented), (_, accepted), (_, refused)] = counts();
    println!(
        "{} rows: {implemented} implemented, {accepted} accepted, {refused} refused",
        table().len()
    );
}

#[test]
fn the_table_has_llama_servers_rows_and_a_decision_for_each() {
    // 255 rows in the pinned README, then the binary's --spec-draft-sampling and the older
    // --mmap/--no-mmap and --mlock.
    assert_eq!(table().iter().filter(|f| f.section != "extra").count(), 255);
    assert_eq!(table().len(), 258);
    let keys: Vec<&str> = table().iter().map(LlamaFlag::key).collect();
    for (key, ..) in DECISIONS {
        assert_eq!(
            keys.iter().filter(|k| *k == key).count(),
            1,
            "{key} decides no row, or several"
        );
    }
    let kv = table().iter().find(|f| f.key() == "--kv-offload").unwrap();
    assert_eq!(kv.negatives, ["-nkvo", "--no-kv-offload"]);
    assert_eq!(kv.env, Some("LLAMA_ARG_KV_OFFLOAD"));
    let range = table()
        .iter()
        .find(|f| f.key() == "--control-vector-layer-range")
        .unwrap();
    assert_eq!(range.arity, 2);
}

#[test]
fn llama_server_spellings_reach_our_flags() {
    let cli = parse(
        &[
            "-c", "2048", "-ngl", "7", "-np", "3", "-fa", "on", "-ctk", "q8_0", "-n", "5",
        ],
        &[],
    )
    .unwrap();
    let memory = &cli.serve.memory;
    assert_eq!(memory.ctx_size, 2048);
    assert_eq!(memory.parallel, 3);
    assert_eq!(memory.cache_type_k, "q8_0");
    assert_eq!(cli.serve.sampling_defaults.n_predict, 5);
    assert_eq!(memory.n_gpu_layers, crate::cli::memory::GpuLayers::Count(7));
    // The same through the `serve` subcommand, and `--flag=value`.
    let argv = [
        "gguf-serve",
        "serve",
        "-m",
        "m.gguf",
        "--ctx-size=1024",
        "-np",
        "2",
    ];
    let cli = Cli::parse_with_env(argv.map(OsString::from), &|_| None).unwrap();
    let Some(crate::cli::Command::Serve(serve)) = cli.command else {
        panic!("not serve")
    };
    assert_eq!((serve.memory.ctx_size, serve.memory.parallel), (1024, 2));
}

#[test]
fn a_subcommands_own_spelling_is_not_rewritten() {
    // llama-server spells --temp also --temperature; bench's --temperature is its own flag.
    let argv = [
        "gguf-serve",
        "bench",
        "--synthetic",
        "1",
        "--temperature",
        "0.8",
    ];
    let cli = Cli::parse_with_env(argv.map(OsString::from), &|_| None).unwrap();
    let Some(crate::cli::Command::Bench(bench)) = cli.command else {
        panic!("not bench")
    };
    assert_eq!(bench.temperature, 0.8);
    // plan still takes llama-server's spellings of the flags it shares.
    let argv = ["gguf-serve", "plan", "-m", "m.gguf", "-ngl", "7"];
    assert!(Cli::parse_with_env(argv.map(OsString::from), &|_| None).is_ok());
}

#[test]
fn refusals_and_unknown_flags_name_the_flag() {
    let err = |args: &[&str]| match parse(args, &[]) {
        Err(ParseError::Flag(e)) => e.to_string(),
        other => panic!("{args:?}: {other:?}"),
    };
    assert!(err(&["--mmproj", "x.gguf"]).starts_with("--mmproj: not supported: "));
    assert!(err(&["-nocb"]).starts_with("-nocb: not supported: "));
    assert!(err(&["-xyz"]).starts_with("-xyz: unknown flag"));
    assert!(err(&["--no-such-flag"]).starts_with("--no-such-flag: unknown flag"));
    assert_eq!(err(&["-c"]), "-c: expects 1 value(s) (N)");
    // Flags gguf-serve already honours are accepted and change nothing.
    assert!(
        parse(
            &["-cb", "--cont-batching", "--no-mmproj", "-dt", "0.1"],
            &[]
        )
        .is_ok()
    );
}

#[test]
fn the_environment_fills_in_what_the_command_line_does_not_give() {
    let cli = parse(
        &[],
        &[
            ("LLAMA_ARG_CTX_SIZE", "3072"),
            ("LLAMA_ARG_N_PARALLEL", "2"),
        ],
    )
    .unwrap();
    assert_eq!(
        (cli.serve.memory.ctx_size, cli.serve.memory.parallel),
        (3072, 2)
    );
    // The command line wins.
    let cli = parse(&["-c", "1024"], &[("LLAMA_ARG_CTX_SIZE", "3072")]).unwrap();
    assert_eq!(cli.serve.memory.ctx_size, 1024);
    // An API key from LLAMA_API_KEY.
    let cli = parse(&[], &[("LLAMA_API_KEY", "secret")]).unwrap();
    assert_eq!(cli.serve.http.api_key, ["secret"]);
}

#[test]
fn boolean_variables_follow_llama_servers_rules() {
    // A plain switch turns on only for a truthy value.
    let on = |value: &str| {
        parse(&[], &[("LLAMA_ARG_BACKEND_SAMPLING", value)])
            .unwrap()
            .serve
            .backend_sampling
    };
    assert!(on("1") && on("true") && on("enabled") && on("on"));
    assert!(!on("0") && !on("false") && !on("nonsense"));
    // A pair takes a strict boolean, and its NO_ twin forces it off.
    let jinja = |env: &[(&str, &str)]| parse(&[], env).map(|c| c.serve.chat.jinja);
    assert!(jinja(&[("LLAMA_ARG_JINJA", "true")]).unwrap());
    match jinja(&[("LLAMA_ARG_JINJA", "maybe")]) {
        Err(ParseError::Flag(FlagError::Boolean { var, value })) => {
            assert_eq!((var.as_str(), value.as_str()), ("LLAMA_ARG_JINJA", "maybe"));
        }
        other => panic!("{other:?}"),
    }
    // Refused flags are refused from llama.cpp's variables too, naming the variable, but not
    // from variables other tools share.
    match parse(&[], &[("LLAMA_ARG_MMPROJ", "x.gguf")]) {
        Err(ParseError::Flag(e)) => {
            assert!(
                e.to_string()
                    .starts_with("LLAMA_ARG_MMPROJ (for --mmproj): not supported")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(parse(&[], &[("HF_TOKEN", "hf_x")]).is_ok());
}

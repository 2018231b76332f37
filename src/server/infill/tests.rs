//! Table tests of the infill layout against llama-server's `format_prompt_infill`, over a
//! tokenizer that makes one token of each character (so a case reads as text).

use super::*;

const PRE: i32 = 1;
const SUF: i32 = 2;
const MID: i32 = 3;
const REP: i32 = 4;
const SEP: i32 = 5;
const BOS: i32 = 6;

fn chars(text: &str) -> Vec<LlamaToken> {
    text.chars().map(|c| LlamaToken(1000 + c as i32)).collect()
}

/// Tokens back to text, the FIM tokens written as `<pre>`, `<suf>`, ….
fn show(tokens: &[LlamaToken]) -> String {
    tokens
        .iter()
        .map(|t| match t.0 {
            PRE => "<pre>".to_string(),
            SUF => "<suf>".to_string(),
            MID => "<mid>".to_string(),
            REP => "<rep>".to_string(),
            SEP => "<sep>".to_string(),
            BOS => "<bos>".to_string(),
            id => char::from_u32((id - 1000) as u32).unwrap().to_string(),
        })
        .collect()
}

fn fim(repo_level: bool, bos: bool) -> FimTokens {
    FimTokens {
        pre: LlamaToken(PRE),
        suf: LlamaToken(SUF),
        mid: LlamaToken(MID),
        rep: repo_level.then_some(LlamaToken(REP)),
        sep: repo_level.then_some(LlamaToken(SEP)),
        bos: bos.then_some(LlamaToken(BOS)),
    }
}

fn input(prefix: &str, suffix: &str, prompt: &str, extra: &[(&str, &str)]) -> InfillInput {
    InfillInput {
        prefix: chars(prefix),
        suffix: chars(suffix),
        prompt: chars(prompt),
        extra: extra
            .iter()
            .map(|(filename, text)| ExtraChunk {
                filename: filename.to_string(),
                text: text.to_string(),
            })
            .collect(),
    }
}

const ROOMY: Room = Room {
    n_batch: 2048,
    n_predict: -1,
    n_ctx: 4096,
};

#[test]
fn lays_out_as_llama_server() {
    let cases: &[(&str, FimTokens, InfillInput, Room, bool, &str)] = &[
        (
            "prefix, suffix, middle",
            fim(false, false),
            input("def f(", "):", "", &[]),
            ROOMY,
            false,
            "<pre>def f(<suf>):<mid>",
        ),
        (
            "the prompt follows the prefix; BOS opens the first part",
            fim(false, true),
            input("ab", "cd", "x", &[]),
            ROOMY,
            false,
            "<bos><pre>abx<suf>cd<mid>",
        ),
        (
            "--spm-infill: suffix first",
            fim(false, true),
            input("ab", "cd", "x", &[]),
            ROOMY,
            true,
            "<bos><suf>cd<pre>abx<mid>",
        ),
        (
            "repo level: the project, each file, then the current file",
            fim(true, true),
            input("p", "s", "", &[("a.py", "A"), ("b.py", "B")]),
            ROOMY,
            false,
            "<rep>myproject\n<sep>a.py\nA<sep>b.py\nB<sep>filename\n<bos><pre>p<suf>s<mid>",
        ),
        (
            "repo level without extra files still names the project and the file",
            fim(true, false),
            input("p", "s", "", &[]),
            ROOMY,
            false,
            "<rep>myproject\n<sep>filename\n<pre>p<suf>s<mid>",
        ),
        (
            "no separator token: snippets",
            fim(false, false),
            input("p", "s", "", &[("a.py", "A")]),
            ROOMY,
            false,
            "\n\n--- snippet ---\n\nA<pre>p<suf>s<mid>",
        ),
        (
            "the prefix keeps its last 3/4 batch, the suffix its first 1/4 less 2 and the prompt",
            fim(false, false),
            input("0123456789ABCDEFGHIJ", "abcdefghij", "x", &[]),
            Room {
                n_batch: 16,
                n_predict: -1,
                n_ctx: 4096,
            },
            false,
            "<pre>89ABCDEFGHIJx<suf>a<mid>",
        ),
        (
            "a prompt longer than the suffix's room leaves no suffix",
            fim(false, false),
            input("ab", "cd", "xyz", &[]),
            Room {
                n_batch: 16,
                n_predict: -1,
                n_ctx: 4096,
            },
            false,
            "<pre>abxyz<suf><mid>",
        ),
        (
            "the extra context keeps its end: n_ctx - n_batch - 2 n_predict tokens",
            fim(true, false),
            input("p", "s", "", &[("f", "ABCDEFGH")]),
            Room {
                n_batch: 16,
                n_predict: 2,
                n_ctx: 32,
            },
            false,
            "GH<sep>filename\n<pre>p<suf>s<mid>",
        ),
        (
            "no room for extra context at all",
            fim(true, false),
            input("p", "s", "", &[("f", "A")]),
            Room {
                n_batch: 2048,
                n_predict: 1,
                n_ctx: 2048,
            },
            false,
            "<pre>p<suf>s<mid>",
        ),
        (
            "-n -1 counts as -2 tokens of room, as in llama-server",
            fim(true, false),
            input("p", "s", "", &[("f", "A")]),
            Room {
                n_batch: 2048,
                n_predict: -1,
                n_ctx: 2048,
            },
            false,
            "e\n<pre>p<suf>s<mid>",
        ),
    ];
    for (what, fim, input, room, spm, want) in cases {
        let got = layout(fim, input, room, *spm, chars);
        assert_eq!(show(&got), *want, "{what}");
    }
}

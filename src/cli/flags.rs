//! `gguf-serve flags`: llama-server's flags, each with what gguf-serve does with it, as a
//! terminal listing or as the README's Markdown table (`--markdown`).

use clap::Args;

use super::llama_flags::{LlamaFlag, Support, counts, table};

#[derive(Debug, Args)]
pub struct FlagsArgs {
    /// Print the Markdown table the README carries.
    #[arg(long)]
    pub markdown: bool,
}

pub fn run(args: FlagsArgs) -> anyhow::Result<()> {
    if args.markdown {
        print!("{}", markdown());
        return Ok(());
    }
    for flag in table() {
        println!("{:<48} {}", spellings(flag), outcome(flag));
    }
    println!("\n{}", summary());
    Ok(())
}

/// One line: how many flags fall in each class.
pub fn summary() -> String {
    let [(_, implemented), (_, accepted), (_, refused)] = counts();
    format!(
        "{} llama-server flags: {implemented} implemented, {accepted} accepted as gguf-serve's \
         behaviour already, {refused} refused by name",
        table().len()
    )
}

/// The README's table of llama-server's flags.
pub fn markdown() -> String {
    let mut out = format!("{}.\n\n", summary());
    out += "| llama-server flag | env | gguf-serve |\n| --- | --- | --- |\n";
    for flag in table() {
        out += &format!(
            "| `{}` | {} | {} |\n",
            spellings(flag),
            flag.env.map(|e| format!("`{e}`")).unwrap_or_default(),
            outcome(flag).replace('|', "\\|"),
        );
    }
    out
}

fn spellings(flag: &LlamaFlag) -> String {
    let mut names = flag.spellings.join(", ");
    if !flag.negatives.is_empty() {
        names += &format!(", {}", flag.negatives.join(", "));
    }
    if !flag.placeholder.is_empty() {
        names += &format!(" {}", flag.placeholder);
    }
    names
}

fn outcome(flag: &LlamaFlag) -> String {
    let describe = |s: Support| match s {
        Support::Ours(name) => format!("implemented (`--{name}`)"),
        Support::Same(why) => format!("accepted: {why}"),
        Support::Refused(why) => format!("refused: {why}"),
    };
    let mut text = describe(flag.support);
    if flag.negative != flag.support {
        text += &format!(
            "; {}: {}",
            flag.negatives.join(", "),
            describe(flag.negative)
        );
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_readme_carries_the_current_table() {
        let readme = include_str!("../../README.md");
        assert!(
            readme.contains(&super::markdown()),
            "README.md's flag table is stale: paste `gguf-serve flags --markdown` over it"
        );
    }
}

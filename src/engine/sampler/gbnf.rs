//! What llama.cpp's GBNF parser must never see. It parses a grammar on the engine thread (the
//! sampler is built there), and a repetition `S{m,n}` with `m > n` makes it generate
//! `n - m` rules in unsigned arithmetic: about 2^64 of them, growing memory without bound while
//! every slot waits. Its other bounds (more than 2000 repetitions) it checks itself. This scan
//! finds the repetitions outside literals, character classes and comments, and refuses a bad
//! one before llama.cpp is called.

/// Checks the repetitions of a GBNF grammar; the error says which and where.
pub fn check(gbnf: &str) -> Result<(), String> {
    let bytes = gbnf.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            quote @ (b'"' | b'[') => {
                let close = if quote == b'"' { b'"' } else { b']' };
                i += 1;
                while i < bytes.len() && bytes[i] != close {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' => {
                let end = gbnf[i..].find('}').map_or(bytes.len(), |e| i + e);
                let inner = &gbnf[i + 1..end];
                if let Some((min, max)) = inner.split_once(',') {
                    let (min, max) = (min.trim(), max.trim());
                    if let (Ok(lo), Ok(hi)) = (min.parse::<u64>(), max.parse::<u64>())
                        && lo > hi
                    {
                        return Err(format!(
                            "the repetition {{{min},{max}}} at byte {i} asks for at least {lo} but at most {hi}"
                        ));
                    }
                }
                i = end;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn bad_repetitions_are_found_outside_literals() {
        let bad = [
            r#"root ::= "a"{2,1}"#,
            r#"root ::= [a-z]{ 10 , 3 } "x""#,
            "root ::= x\nx ::= (\"a\" | \"b\"){5,4}",
        ];
        for g in bad {
            assert!(super::check(g).is_err(), "{g}");
        }
        let good = [
            r#"root ::= "a"{1,2}"#,
            r#"root ::= "a"{3} "b"{2,} "c"*"#,
            r#"root ::= "{5,1}" [{}] # {9,1} in a comment"#,
            r#"root ::= "\"{5,1}""#,
            r#"root ::= [\]{5,1}]"#,
        ];
        for g in good {
            assert_eq!(super::check(g), Ok(()), "{g}");
        }
    }
}

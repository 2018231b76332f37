//! What llama.cpp's GBNF parser must never see. It parses a grammar on the engine thread (the
//! sampler is built there), so a grammar that makes it work without bound stalls every slot:
//!
//! - a repetition `S{m,n}` with `m > n` makes it generate `n - m` rules in unsigned
//!   arithmetic: about 2^64 of them, growing memory without bound;
//! - a repetition copies its symbol's elements (one per character of a literal or class) up to
//!   `max(m, n)` times, each of at most 2000 (its own check), so a long literal repeated is
//!   parsed into billions of elements: `"<a million a>"{2000}` is 2·10^9 of them, 16 GB.
//!
//! This scan finds the repetitions outside literals, character classes and comments, refuses a
//! bad one, and bounds the elements the whole grammar expands to, before llama.cpp is called.
//! Its work is linear in the grammar's length.

/// The most elements (characters, references, operators) a grammar may expand to: far above
/// what a JSON schema or a tool-call grammar needs (thousands), and parsed in milliseconds.
const MAX_ELEMENTS: u64 = 1 << 21;

/// Checks the repetitions and the expanded size of a GBNF grammar; the error says which and
/// where.
pub fn check(gbnf: &str) -> Result<(), String> {
    let bytes = gbnf.as_bytes();
    // Elements so far, and those of the last symbol (what a repetition copies).
    let (mut total, mut last) = (0u64, 0u64);
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
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != close {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                // One element per character at most (a range is two, for three bytes or more).
                last = (i - start) as u64;
                total += last;
            }
            b'{' => {
                let end = gbnf[i..].find('}').map_or(bytes.len(), |e| i + e);
                let inner = &gbnf[i + 1..end];
                let (min, max) = inner.split_once(',').unwrap_or((inner, inner));
                let (min, max) = (min.trim(), max.trim());
                let lo = min.parse::<u64>().unwrap_or(0);
                let hi = max.parse::<u64>().ok();
                if let Some(hi) = hi
                    && lo > hi
                {
                    return Err(format!(
                        "the repetition {{{min},{max}}} at byte {i} asks for at least {lo} but at most {hi}"
                    ));
                }
                let copies = lo.max(hi.unwrap_or(0)).max(1);
                total = total.saturating_add(last.saturating_mul(copies));
                if total > MAX_ELEMENTS {
                    return Err(format!(
                        "the repetition {{{inner}}} at byte {i} makes the grammar expand to more \
                         than {MAX_ELEMENTS} elements (repeat a rule, not a long literal)"
                    ));
                }
                i = end;
            }
            b'*' | b'+' | b'?' => total += last + 2,
            // A rule reference, a group's closing parenthesis (the group becomes one reference)
            // or `.`: one element; a repetition after it copies only that.
            c if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b')' | b'.') => {
                last = 1;
                total += 1;
            }
            _ => {}
        }
        if total > MAX_ELEMENTS {
            return Err(format!(
                "the grammar expands to more than {MAX_ELEMENTS} elements (at byte {i})"
            ));
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

    #[test]
    fn the_expanded_size_is_bounded() {
        let literal = "a".repeat(10_000);
        let long = format!(r#"root ::= "{literal}"{{2000}}"#);
        let error = super::check(&long).unwrap_err();
        assert!(error.contains("repetition {2000}"), "{error}");
        assert!(super::check(&format!(r#"root ::= "{literal}"{{1,2000}}"#)).is_err());
        assert!(super::check(&format!(r#"root ::= "{literal}"{{2000,}}"#)).is_err());
        // A group is one reference: repeating it copies one element, however long it is.
        assert_eq!(
            super::check(&format!(r#"root ::= ("{literal}"){{2000}}"#)),
            Ok(())
        );
        assert_eq!(
            super::check(&format!(r#"root ::= x{{2000}}{}x ::= "{literal}""#, "\n")),
            Ok(())
        );
        // The text itself counts.
        let huge = format!(r#"root ::= "{}""#, "b".repeat(3 << 20));
        assert!(super::check(&huge).is_err());
    }
}

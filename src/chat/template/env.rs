//! The minijinja environment chat templates run in, made to behave like llama.cpp's Jinja
//! engine (common/jinja): blocks trimmed as Hugging Face does, Python string and dict methods,
//! `raise_exception`, `strftime_now`, and a `tojson` that prints what Python's `json.dumps` does
//! (`", "` and `": "` separators, key order kept, no ASCII escaping), because templates paste
//! tool schemas into prompts with it and byte-compatibility with llama-server depends on it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State, UndefinedBehavior, Value};

use super::time::strftime;

/// Context variable holding the render time (seconds since the epoch) for `strftime_now`;
/// passing it in keeps rendering a pure function of its inputs.
pub const NOW_VAR: &str = "__gguf_serve_now";

/// The template name used inside the environment.
pub const TEMPLATE_NAME: &str = "chat_template";

/// Builds an environment holding `source` as [`TEMPLATE_NAME`].
pub fn environment(source: String) -> Result<Environment<'static>, Error> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(false);
    // Templates probe optional fields (`message.tool_calls`, `tools`) freely.
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_filter("tojson", tojson);
    env.add_function("raise_exception", raise_exception);
    env.add_function("strftime_now", strftime_now);
    env.add_template_owned(TEMPLATE_NAME, source)?;
    Ok(env)
}

fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

fn strftime_now(state: &State, format: String) -> String {
    let now = state
        .lookup(NOW_VAR)
        .and_then(|v| v.as_i64())
        .map_or_else(SystemTime::now, |secs| {
            UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64)
        });
    strftime(now, &format)
}

/// `value | tojson(indent=None, ensure_ascii=False, separators=None)` as llama.cpp prints it.
fn tojson(value: Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent: Option<i64> = kwargs.get("indent")?;
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    let separators: Option<Vec<String>> = kwargs.get("separators")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;
    if sort_keys == Some(true) {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "tojson sort_keys=true is not supported (nor by llama.cpp)",
        ));
    }
    let indent = indent.unwrap_or(-1);
    let separators = separators.unwrap_or_default();
    let style = JsonStyle {
        indent,
        item_sep: separators
            .first()
            .cloned()
            .unwrap_or_else(|| if indent < 0 { ", " } else { "," }.to_string()),
        key_sep: separators
            .get(1)
            .cloned()
            .unwrap_or_else(|| ": ".to_string()),
    };
    let mut out = String::new();
    write_json(&mut out, &value, 0, &style);
    if ensure_ascii == Some(true) {
        out = escape_non_ascii(&out);
    }
    Ok(Value::from_safe_string(out))
}

struct JsonStyle {
    indent: i64,
    item_sep: String,
    key_sep: String,
}

impl JsonStyle {
    fn newline(&self, out: &mut String) {
        if self.indent >= 0 {
            out.push('\n');
        }
    }

    fn pad(&self, out: &mut String, level: usize) {
        if self.indent > 0 {
            out.push_str(&" ".repeat(level * self.indent as usize));
        }
    }
}

/// Mirrors llama.cpp's `value_to_json_internal`.
fn write_json(out: &mut String, value: &Value, level: usize, style: &JsonStyle) {
    match value.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number => out.push_str(&format_number(value)),
        ValueKind::String => write_string(out, value.as_str().unwrap_or_default()),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = value.try_iter().map(|it| it.collect()).unwrap_or_default();
            write_container(out, '[', ']', items.len(), level, style, |out, i| {
                write_json(out, &items[i], level + 1, style);
            });
        }
        ValueKind::Map => {
            let keys: Vec<Value> = value.try_iter().map(|it| it.collect()).unwrap_or_default();
            write_container(out, '{', '}', keys.len(), level, style, |out, i| {
                let key = &keys[i];
                write_string(out, &key.to_string());
                out.push_str(&style.key_sep);
                let item = value.get_item(key).unwrap_or_default();
                write_json(out, &item, level + 1, style);
            });
        }
        _ => out.push_str("null"),
    }
}

fn write_container(
    out: &mut String,
    open: char,
    close: char,
    len: usize,
    level: usize,
    style: &JsonStyle,
    mut item: impl FnMut(&mut String, usize),
) {
    out.push(open);
    if len > 0 {
        style.newline(out);
        for i in 0..len {
            style.pad(out, level + 1);
            item(out, i);
            if i + 1 < len {
                out.push_str(&style.item_sep);
            }
            style.newline(out);
        }
        style.pad(out, level);
    }
    out.push(close);
}

fn format_number(value: &Value) -> String {
    if value.is_integer() {
        return value.to_string();
    }
    let f = f64::try_from(value.clone()).unwrap_or(f64::NAN);
    // C++ `ostream << double` prints 6 significant digits; our shortest round-trip form agrees
    // for the short literals schemas use (0.5, 1, 1e-05 aside).
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn escape_non_ascii(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(source: &str, ctx: Value) -> String {
        let env = environment(source.to_string()).unwrap();
        env.get_template(TEMPLATE_NAME)
            .unwrap()
            .render(ctx)
            .unwrap()
    }

    #[test]
    fn tojson_matches_llama_cpp() {
        let data = Value::from_serialize(serde_json::json!({
            "b": [1, 2.5, true, null], "a": {"x": "é\n\"<tag>"}, "e": {}, "l": []
        }));
        let cases = [
            (
                "{{ v | tojson }}",
                r#"{"b": [1, 2.5, true, null], "a": {"x": "é\n\"<tag>"}, "e": {}, "l": []}"#,
            ),
            (
                "{{ v.a | tojson(indent=2) }}",
                "{\n  \"x\": \"é\\n\\\"<tag>\"\n}",
            ),
            (
                "{{ v.a | tojson(ensure_ascii=true) }}",
                r#"{"x": "\u00e9\n\"<tag>"}"#,
            ),
            (
                "{{ v.b | tojson(separators=[',', ':']) }}",
                "[1,2.5,true,null]",
            ),
        ];
        for (source, want) in cases {
            let ctx = minijinja::context! { v => data.clone() };
            assert_eq!(render(source, ctx), want, "{source}");
        }
    }

    #[test]
    fn python_methods_and_helpers() {
        let ctx = minijinja::context! { s => "  Hi there  ", __gguf_serve_now => 1_721_952_000 };
        assert_eq!(
            render("{{ s.strip().split(' ')[1] }}", ctx.clone()),
            "there"
        );
        // Booleans print as Python does.
        assert_eq!(
            render("{{ s.strip().startswith('Hi') }}", ctx.clone()),
            "True"
        );
        assert_eq!(
            render("{{ strftime_now('%d %b %Y') }}", ctx.clone()),
            "26 Jul 2024"
        );
        let env = environment("{{ raise_exception('no system role') }}".into()).unwrap();
        let err = env
            .get_template(TEMPLATE_NAME)
            .unwrap()
            .render(ctx)
            .unwrap_err();
        assert!(err.to_string().contains("no system role"), "{err}");
    }
}

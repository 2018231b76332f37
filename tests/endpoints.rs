//! The README's endpoint table is true: every path it says gguf-serve serves is routed (the
//! server answers it with anything but 404/405, even to an empty body), and every path it says
//! gguf-serve does not serve answers 404 with llama-server's error JSON. A route added or
//! removed without its row fails here.

mod common;

use reqwest::Method;
use serde_json::Value;

/// One row's requests: (method, path) for each backticked path in its first cell, and
/// whether the row says gguf-serve serves them.
struct Row {
    requests: Vec<(Method, String)>,
    served: bool,
    line: String,
}

/// The rows of the `## Endpoints` table. A backticked item starting with a method sets it for
/// the paths after it in the cell; `{id}` becomes 0 and a query string is dropped.
fn endpoint_rows() -> Vec<Row> {
    let readme = include_str!("../README.md");
    let section = readme
        .split("\n## Endpoints\n")
        .nth(1)
        .expect("README has an Endpoints section");
    let section = section.split("\n## ").next().unwrap();
    let mut rows = Vec::new();
    for line in section
        .lines()
        .filter(|l| l.starts_with("| `") || l.starts_with("| "))
    {
        let cells: Vec<&str> = line.split(" | ").collect();
        if cells.len() < 2 || cells[0].contains("llama-server endpoint") || line.contains("---") {
            continue;
        }
        let served = cells[1].starts_with("yes");
        assert!(
            served || cells[1].starts_with("no"),
            "row neither yes nor no: {line}"
        );
        let mut method = None;
        let mut requests = Vec::new();
        for item in cells[0].split('`').skip(1).step_by(2) {
            let (m, path) = match item.split_once(' ') {
                Some((m, path)) if m.chars().all(|c| c.is_ascii_uppercase()) => (Some(m), path),
                _ => (None, item),
            };
            if let Some(m) = m {
                method = Some(Method::from_bytes(m.as_bytes()).unwrap());
            }
            if !path.starts_with('/') {
                continue; // not a path (an environment variable)
            }
            let Some(method) = method.clone() else {
                continue;
            };
            let path = path.split('?').next().unwrap().replace("{id}", "0");
            requests.push((method, path));
        }
        rows.push(Row {
            requests,
            served,
            line: line.to_string(),
        });
    }
    rows
}

#[test]
fn the_readme_endpoint_table_is_true() {
    let rows = endpoint_rows();
    let n_paths: usize = rows.iter().map(|r| r.requests.len()).sum();
    assert!(
        rows.len() >= 20 && n_paths >= 40,
        "the table parsed to {} rows, {n_paths} paths",
        rows.len()
    );
    let server = common::Server::start(&[]);
    let mut wrong = Vec::new();
    for row in &rows {
        for (method, path) in &row.requests {
            let mut request = server
                .client()
                .request(method.clone(), format!("{}{path}", server.url));
            if method == Method::POST {
                request = request
                    .header("content-type", "application/json")
                    .body("{}");
            }
            let response = request.send().expect("request failed");
            let status = response.status().as_u16();
            let body: Value = response.json().unwrap_or(Value::Null);
            let routed = status != 404 && status != 405;
            if row.served != routed {
                wrong.push(format!(
                    "{method} {path}: {status} {body} (row: {})",
                    row.line
                ));
            }
            if !row.served && body["error"]["code"] != 404 {
                wrong.push(format!(
                    "{method} {path}: not llama-server's 404 JSON: {body}"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "the table is wrong:\n{}",
        wrong.join("\n")
    );
    // The server kept serving through all of it.
    assert_eq!(server.get("/health").0, 200);
}

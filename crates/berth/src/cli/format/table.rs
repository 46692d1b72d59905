//! Rendering list rows with a docker `--format` string, as a table when it starts with `table`.

use anyhow::{bail, Result};
use serde_json::{Map, Value};

use super::Template;

/// docker's format preprocessing: strip a leading `table`, trim, turn `\t` and `\n` escapes into characters.
/// Returns (is_table, template text).
pub fn prepare(format: &str) -> (bool, String) {
    let t = format.trim_start();
    let (table, rest) = match t.strip_prefix("table") {
        Some(r) if r.is_empty() || r.starts_with(char::is_whitespace) => (true, r),
        _ => (false, t),
    };
    (table, rest.trim_matches(' ').replace("\\t", "\t").replace("\\n", "\n"))
}

/// Render rows with a docker `--format` string; `headers` maps field names to column titles for `table`.
pub fn render(format: &str, rows: &[Value], headers: &[(&str, &str)]) -> Result<String> {
    let (table, text) = prepare(format);
    let tmpl = Template::parse(&text)?;
    // A list row has a fixed set of fields, as docker's row types do: naming another is an error
    // there (docker: "can't evaluate field X"), not `<no value>`. `Label` is a method.
    let known: Vec<&str> = headers.iter().map(|(k, _)| *k).collect();
    let unknown = |f: &String| f != "Label" && !known.contains(&f.as_str()) && !rows.iter().any(|r| r.get(f).is_some());
    if let Some(bad) = tmpl.top_fields().into_iter().find(|f| !rows.is_empty() && unknown(f)) {
        bail!(
            "template: can't evaluate field {bad} in this list's rows (fields: {})",
            known.join(", ")
        );
    }
    let mut out = String::new();
    if table {
        let mut m = Map::new();
        for (k, h) in headers {
            m.insert((*k).to_string(), Value::String((*h).to_string()));
        }
        out.push_str(&tmpl.execute(&Value::Object(m))?);
        out.push('\n');
    }
    for r in rows {
        out.push_str(&tmpl.execute(r)?);
        out.push('\n');
    }
    Ok(if table { tabwrite(&out, 10, 3) } else { out })
}

/// Go `text/tabwriter` as docker configures it (minwidth, padding with spaces): tab-terminated cells
/// are padded to their column's width; the last cell of a line is not.
pub fn tabwrite(text: &str, minwidth: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text.split_terminator('\n').map(|l| l.split('\t').collect()).collect();
    let mut widths: Vec<usize> = Vec::new();
    for cells in &lines {
        for (i, c) in cells.iter().enumerate().take(cells.len().saturating_sub(1)) {
            if widths.len() <= i {
                widths.push(minwidth);
            }
            widths[i] = widths[i].max(c.chars().count() + padding);
        }
    }
    let mut out = String::new();
    for cells in &lines {
        for (i, c) in cells.iter().enumerate() {
            out.push_str(c);
            if i + 1 < cells.len() {
                out.push_str(&" ".repeat(widths[i].saturating_sub(c.chars().count())));
            }
        }
        out.push('\n');
    }
    out
}

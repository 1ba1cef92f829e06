//! The job file's JSON Schema, generated from the model types, and the Markdown reference
//! generated from the schema. Both are committed (`schemas/job.schema.json`,
//! `docs/job-reference.md`) and a test fails when they drift from the types.

use std::fmt::Write;

use serde_json::{Map, Value};

use super::model::JobFile;

/// The JSON Schema (draft 2020-12) of a job file.
pub fn schema() -> Value {
    let schema = schemars::schema_for!(JobFile);
    let mut value = serde_json::to_value(&schema).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("$id".into(), Value::String("https://github.com/cimrun/cimrun/schemas/job.schema.json".into()));
    }
    value
}

/// The job-file reference in Markdown: one section per type, one row per field, from the
/// schema's descriptions.
pub fn reference_markdown() -> String {
    render_reference(&schema())
}

fn render_reference(schema: &Value) -> String {
    let empty = Map::new();
    let defs = schema.get("$defs").and_then(Value::as_object).unwrap_or(&empty);
    let mut out = String::new();
    let _ = writeln!(out, "# Job file reference\n");
    let _ = writeln!(
        out,
        "<!-- Generated from the job file types (src/job/model.rs); do not edit. \
         Regenerate with `UPDATE_SCHEMA=1 cargo test --test job_schema`. -->\n"
    );
    let _ = writeln!(
        out,
        "Job files are YAML. Editors validate and complete them with the JSON Schema \
         `schemas/job.schema.json`: start a job file with\n\n\
         ```yaml\n# yaml-language-server: $schema=../schemas/job.schema.json\n```\n"
    );
    section(&mut out, "JobFile", schema);
    for (name, def) in defs {
        section(&mut out, name, def);
    }
    out.push_str(NOTES);
    out
}

/// What the schema cannot say: overrides, host patterns, `fail_if`, how errors are shown.
const NOTES: &str = r#"## Overrides

`--set KEY=VALUE` changes the job before it is validated. KEY is a dotted path, with list
items by index (`run.throttle=8`, `sessions.0.port=5986`); VALUE is YAML (`8`, `true`, `60s`,
`[a, b]`). Missing mapping keys are created. An error in an override names the override.

## Computer names

`web[01:12].corp` expands to `web01.corp` … `web12.corp`: numeric ranges only, the first
number's width sets the zero padding, several ranges give every combination, at most
1,000,000 names. `computers_from` files hold one name or pattern per line; `#` starts a
comment. Duplicates are removed ignoring case, the first kept. A session with no computers
queries the local machine.

## fail_if

`never`, or conditions joined with `or`: `CATEGORY OP NUMBER` or `CATEGORY OP PERCENT%`,
where OP is one of `>`, `>=`, `<`, `<=`, `==` and CATEGORY is `failed` (any failure) or an
error category of the run report (`unreachable`, `auth_failed`, `access_denied`,
`timed_out`, …). The default is `failed > 0`.

## Errors

`cimrun validate` reports every error it finds, each as `FILE:LINE:COLUMN: error: MESSAGE`
followed by the line and a caret, and exits with code 2.
"#;

fn section(out: &mut String, name: &str, def: &Value) {
    let _ = writeln!(out, "## {name}\n");
    if let Some(d) = description(def) {
        let _ = writeln!(out, "{}\n", one_paragraph(d));
    }
    if let Some(props) = def.get("properties").and_then(Value::as_object) {
        let required: Vec<&str> = def
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let _ = writeln!(out, "| Field | Type | Required | Default | Description |");
        let _ = writeln!(out, "|---|---|---|---|---|");
        for (field, prop) in props {
            let default = prop
                .get("default")
                .filter(|d| !d.is_null() && !d.is_object())
                .map(|d| format!("`{d}`"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "| `{field}` | {} | {} | {default} | {} |",
                type_name(prop),
                if required.contains(&field.as_str()) { "yes" } else { "" },
                cell(description(prop).unwrap_or(""))
            );
        }
        let _ = writeln!(out);
    }
    let variants: Vec<&Value> =
        ["oneOf", "anyOf"].iter().filter_map(|k| def.get(*k).and_then(Value::as_array)).flatten().collect();
    if !variants.is_empty() {
        let _ = writeln!(out, "| Value | Description |");
        let _ = writeln!(out, "|---|---|");
        for v in variants {
            let value = v
                .get("const")
                .map(|c| format!("`{}`", c.as_str().map_or_else(|| c.to_string(), str::to_string)))
                .unwrap_or_else(|| type_name(v));
            let _ = writeln!(out, "| {value} | {} |", cell(description(v).unwrap_or("")));
        }
        let _ = writeln!(out);
    }
    if let Some(values) = def.get("enum").and_then(Value::as_array) {
        let names: Vec<String> = values.iter().map(|v| format!("`{}`", v.as_str().unwrap_or(""))).collect();
        let _ = writeln!(out, "One of: {}.\n", names.join(", "));
    }
}

fn description(v: &Value) -> Option<&str> {
    v.get("description").and_then(Value::as_str)
}

fn one_paragraph(text: &str) -> String {
    text.split('\n').map(str::trim).collect::<Vec<_>>().join(" ")
}

fn cell(text: &str) -> String {
    one_paragraph(text).replace('|', "\\|")
}

/// A short, readable type: `string`, `list of string`, `map of OptionSet`, `[Protocol](#protocol)`.
fn type_name(v: &Value) -> String {
    if let Some(r) = v.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("[{name}](#{})", name.to_lowercase());
    }
    if let Some(any) = v.get("anyOf").or_else(|| v.get("oneOf")).and_then(Value::as_array) {
        let parts: Vec<String> =
            any.iter().filter(|x| x.get("type").and_then(Value::as_str) != Some("null")).map(type_name).collect();
        return parts.join(" or ");
    }
    let types: Vec<&str> = match v.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).filter(|t| *t != "null").collect(),
        _ => Vec::new(),
    };
    match types.first().copied() {
        Some("array") => format!("list of {}", v.get("items").map_or_else(|| "any".into(), type_name)),
        Some("object") => match v.get("additionalProperties") {
            Some(inner) if inner.is_object() => format!("map of {}", type_name(inner)),
            _ => "mapping".into(),
        },
        Some(t) => t.to_string(),
        None if v.get("const").is_some() => "constant".into(),
        None => "any".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field and every enum value carries a description.
    #[test]
    fn every_field_is_documented() {
        let schema = schema();
        let mut missing = Vec::new();
        let mut defs: Vec<(String, &Value)> = vec![("JobFile".into(), &schema)];
        if let Some(d) = schema.get("$defs").and_then(Value::as_object) {
            defs.extend(d.iter().map(|(k, v)| (k.clone(), v)));
        }
        for (name, def) in defs {
            if description(def).is_none() {
                missing.push(name.clone());
            }
            for (field, prop) in def.get("properties").and_then(Value::as_object).into_iter().flatten() {
                if description(prop).is_none() {
                    missing.push(format!("{name}.{field}"));
                }
            }
            for (i, v) in def.get("oneOf").and_then(Value::as_array).into_iter().flatten().enumerate() {
                if description(v).is_none() {
                    missing.push(format!("{name} variant {i}"));
                }
            }
        }
        assert!(missing.is_empty(), "undocumented: {missing:?}");
    }

    #[test]
    fn reference_lists_every_field() {
        let md = reference_markdown();
        for field in
            ["`computers_from`", "`fail_if`", "`allow_inline_password`", "`packet_privacy`", "`array_separator`"]
        {
            assert!(md.contains(field), "{field} missing");
        }
        assert!(md.contains("| `credssp` |"), "enum values are listed");
        assert!(md.contains("map of [OptionSet](#optionset)"));
    }
}

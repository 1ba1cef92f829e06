//! The committed JSON Schema and job-file reference match the model types.
//! Regenerate both with `UPDATE_SCHEMA=1 cargo test --test job_schema`
//! (or `cargo run -- schema > schemas/job.schema.json` for the schema alone).

use std::path::Path;

fn check(path: &str, generated: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, generated).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date with src/job/model.rs; regenerate it with\n    UPDATE_SCHEMA=1 cargo test --test job_schema",
        path.display()
    );
}

#[test]
fn committed_schema_matches_the_types() {
    let schema = serde_json::to_string_pretty(&cimrun::job::schema()).expect("schema serializes");
    check("schemas/job.schema.json", &format!("{schema}\n"));
}

#[test]
fn committed_reference_matches_the_types() {
    check("docs/job-reference.md", &cimrun::job::reference_markdown());
}

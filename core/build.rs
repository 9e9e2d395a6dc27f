//! Generates the Kafka message types from Kelp's schema files in `schema/` (format: `schema/README.md`).
//!
//! One Rust file per API lands in `$OUT_DIR/api/`, plus `$OUT_DIR/api_table.rs` with the table of all
//! APIs. Generation happens at build time so the schema files stay the single source of truth.

#[path = "build/emit.rs"]
mod emit;
#[path = "build/schema.rs"]
mod schema;

use std::{env, fs, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=schema");
    println!("cargo:rerun-if-changed=build");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("api");
    fs::create_dir_all(&out).expect("create OUT_DIR/api");
    let mut files: Vec<_> = fs::read_dir("schema")
        .expect("read core/schema")
        .map(|e| e.expect("read core/schema entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "msg"))
        .collect();
    files.sort();
    let mut apis = Vec::new();
    let mut errors = Vec::new();
    for path in &files {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let text = fs::read_to_string(path).expect("read schema file");
        match schema::parse_api(&name, &text).and_then(|api| {
            let expected = format!("{}.msg", emit::snake(&api.name));
            if expected != name {
                return Err(format!("{name}: API {} belongs in {expected}", api.name));
            }
            let code = emit::emit_api(&api)?;
            fs::write(out.join(format!("{}.rs", emit::snake(&api.name))), code)
                .expect("write generated api");
            Ok(api)
        }) {
            Ok(api) => apis.push(api),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        for e in &errors {
            println!("cargo:warning={e}");
        }
        panic!("schema errors:\n{}", errors.join("\n"));
    }
    apis.sort_by_key(|a| a.key);
    fs::write(out.join("api_table.rs"), emit::emit_table(&apis)).expect("write api table");
}

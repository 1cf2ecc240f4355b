//! `docs/ARCHITECTURE.md`'s repository table names every module of every service and shared
//! crate, so a newcomer reading it sees the tree as it is: a module added without a line there
//! fails this test, naming it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The repository's root (this crate lives in `tests/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The table's rows by their first cell's paths: "| `shared/s3/` | …" → ("shared/s3", the row).
fn rows(doc: &str) -> BTreeMap<String, String> {
    let mut rows = BTreeMap::new();
    for line in doc.lines().filter(|l| l.starts_with("| `")) {
        let Some(first) = line.split('|').nth(1) else { continue };
        for path in first.split('`').skip(1).step_by(2) {
            rows.insert(path.trim_end_matches('/').to_owned(), line.to_owned());
        }
    }
    rows
}

/// The modules of a crate's `src/`: every file and directory but `lib.rs` and `main.rs`,
/// as `name.rs` or `name/`.
fn modules(src: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(src)
        .unwrap_or_else(|e| panic!("reading {}: {e}", src.display()))
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() {
                Some(format!("{name}/"))
            } else if name.ends_with(".rs") && name != "lib.rs" && name != "main.rs" {
                Some(name)
            } else {
                None
            }
        })
        .collect();
    names.sort();
    names
}

#[test]
fn the_repository_table_names_every_module() {
    let doc = std::fs::read_to_string(root().join("docs/ARCHITECTURE.md")).expect("docs/ARCHITECTURE.md");
    let rows = rows(&doc);
    let mut missing = Vec::new();
    for group in ["services", "shared"] {
        let mut crates: Vec<PathBuf> = std::fs::read_dir(root().join(group))
            .expect("the crates' directory")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.join("src").is_dir())
            .collect();
        crates.sort();
        for dir in crates {
            let name = format!("{group}/{}", dir.file_name().unwrap_or_default().to_string_lossy());
            let Some(row) = rows.get(&name) else {
                missing.push(format!("{name}/ has no row"));
                continue;
            };
            for module in modules(&dir.join("src")) {
                // A directory module is named `name/`; its `name.rs`, if any, counts the same.
                let stem = module.trim_end_matches('/').trim_end_matches(".rs");
                let named = row.contains(&format!("`{stem}.rs`"))
                    || row.contains(&format!("`{stem}/`"))
                    || row.contains(&format!("/{stem}.rs`"))
                    || row.contains(&format!("/{stem}/`"));
                if !named {
                    missing.push(format!("{name}/src/{module}"));
                }
            }
        }
    }
    assert!(missing.is_empty(), "docs/ARCHITECTURE.md's repository table does not name: {}", missing.join(", "));
}

#[test]
fn a_row_without_a_module_is_seen() {
    let rows = rows("| `shared/x/` | `a.rs` (one), `b/` |\n| `tools/a/`, `tools/b/` | two |\n");
    assert!(rows["shared/x"].contains("`a.rs`"));
    assert!(!rows["shared/x"].contains("`c.rs`"));
    assert_eq!(rows.len(), 3, "{rows:?}");
}

//! The repository's documents stand alone and render: every Markdown table has its
//! header separator, and no document points outside the repository.

use std::path::{Path, PathBuf};

fn documents() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut docs = vec![root.join("README.md"), root.join("ARCHITECTURE.md")];
    for entry in std::fs::read_dir(root.join("docs")).expect("docs/") {
        let path = entry.expect("docs entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            docs.push(path);
        }
    }
    docs
}

fn is_separator(line: &str) -> bool {
    let cells: Vec<&str> = line.trim().trim_matches('|').split('|').map(str::trim).collect();
    !cells.is_empty()
        && cells.iter().all(|c| {
            let c = c.trim_start_matches(':').trim_end_matches(':');
            !c.is_empty() && c.chars().all(|x| x == '-')
        })
}

#[test]
fn every_markdown_table_has_a_header_separator() {
    let mut problems = Vec::new();
    for path in documents() {
        let text = std::fs::read_to_string(&path).expect("read document");
        let mut in_code = false;
        let mut previous_is_row = false;
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.trim_start().starts_with("```") {
                in_code = !in_code;
            }
            let is_row = !in_code && line.trim_start().starts_with('|');
            if is_row && !previous_is_row {
                let next = lines.get(i + 1).copied().unwrap_or("");
                if !is_separator(next) {
                    problems.push(format!("{}:{}: {line}", path.display(), i + 1));
                }
            }
            previous_is_row = is_row;
        }
    }
    assert!(
        problems.is_empty(),
        "tables without a |---| line under their header:\n{}",
        problems.join("\n")
    );
}

#[test]
fn documents_refer_only_to_the_repository() {
    let outside = ["DESIGN.md", "STYLE.md", "../shared", "/work/"];
    let mut problems = Vec::new();
    for path in documents() {
        let text = std::fs::read_to_string(&path).expect("read document");
        for (i, line) in text.lines().enumerate() {
            for word in outside {
                if line.contains(word) {
                    problems.push(format!("{}:{}: {line}", path.display(), i + 1));
                }
            }
        }
    }
    assert!(problems.is_empty(), "references outside the repository:\n{}", problems.join("\n"));
}

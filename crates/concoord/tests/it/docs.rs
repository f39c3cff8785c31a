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

fn read(name: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read_to_string(root.join(name)).expect("read document")
}

/// N-1.2: a reader who copies the README's commands in order has `concoord` on PATH
/// before the first command that runs it bare.
#[test]
fn the_readme_installs_the_binaries_before_it_runs_a_bare_concoord() {
    let readme = read("README.md");
    let lines: Vec<&str> = readme.lines().collect();
    let install = lines
        .iter()
        .position(|l| l.trim_start().starts_with("cargo install --path crates/concoord"))
        .expect("the README says how to install the binaries");
    let mut in_code = false;
    let first_bare = lines.iter().enumerate().find_map(|(i, l)| {
        if l.trim_start().starts_with("```") {
            in_code = !in_code;
            return None;
        }
        let l = l.trim_start();
        (in_code && (l.starts_with("concoord ") || l.starts_with("openreplica "))).then_some(i)
    });
    let first_bare = first_bare.expect("the README runs concoord somewhere");
    assert!(
        install < first_bare,
        "README line {} runs a bare concoord before line {} installs it",
        first_bare + 1,
        install + 1
    );
}

/// The row of a Markdown table whose first cell starts with `` `name` `` or `` `name {``.
fn row<'a>(doc: &'a str, name: &str) -> &'a str {
    doc.lines()
        .find(|l| {
            let first = l.trim_start_matches('|').trim_start();
            first.starts_with(&format!("`{name}`")) || first.starts_with(&format!("`{name} {{"))
        })
        .unwrap_or_else(|| panic!("no table row for {name}"))
}

/// N-5: the session requests' replies are described alike in the protocol and the
/// objects documents (and as the server gives them: `sessions` tests), and an
/// unknown type is documented as the `TypeError` the machine raises.
#[test]
fn the_protocol_documents_agree_on_session_replies_and_create_errors() {
    let protocol = read("docs/protocol.md");
    let objects = read("docs/objects.md");
    for doc in [&protocol, &objects] {
        let keep_alive = row(doc, "KeepAlive");
        assert!(
            keep_alive.contains("Value(true)") && keep_alive.contains("Value(false)"),
            "{keep_alive}"
        );
        let close = row(doc, "CloseSession");
        assert!(close.contains("Value(false)") && !close.contains("Value(true)"), "{close}");
    }
    let create = row(&protocol, "Create");
    assert!(create.contains("`TypeError` for an unknown type"), "{create}");
}

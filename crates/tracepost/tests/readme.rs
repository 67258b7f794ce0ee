//! The README and the rustdoc front page (`docs.md`) show one integration snippet; both are
//! compiled as doctests (`cargo test -p tracepost --doc`). This checks that they are the same
//! snippet, so that the two places can never disagree.

fn rust_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.starts_with("```rust") => current = Some(String::new()),
            Some(block) if line.starts_with("```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

fn read(path: &str) -> String {
    let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

#[test]
fn readme_and_front_page_show_the_same_snippet() {
    let readme = rust_blocks(&read("../../README.md"));
    let front = rust_blocks(&read("docs.md"));
    assert_eq!(
        readme.len(),
        1,
        "the README has one Rust block: {readme:#?}"
    );
    assert_eq!(front.len(), 1, "docs.md has one Rust block: {front:#?}");
    assert_eq!(
        readme[0], front[0],
        "README.md and crates/tracepost/docs.md must show the same integration snippet"
    );
    for needle in ["use ", "EnvFilter", ".data_dir(", "tp.shutdown("] {
        assert!(readme[0].contains(needle), "the snippet lacks `{needle}`");
    }
}

/// The README, the front page and the book's "Add tracepost to your app" chapter.
#[test]
fn readme_and_front_page_show_the_same_dependency_block() {
    let toml = |md: &str| {
        let start = md.find("```toml\n").expect("a toml block") + "```toml\n".len();
        md[start..][..md[start..].find("```").unwrap()].to_string()
    };
    let readme = toml(&read("../../README.md"));
    assert_eq!(readme, toml(&read("docs.md")), "docs.md");
    assert_eq!(
        readme,
        toml(&read("../../book/src/your-app.md")),
        "book/src/your-app.md"
    );
    let repo = read("../../Cargo.toml");
    let url = repo
        .lines()
        .find_map(|l| l.strip_prefix("repository = "))
        .expect("workspace repository URL")
        .trim_matches('"')
        .to_string();
    assert!(
        readme.contains(&format!("tracepost = {{ git = \"{url}\" }}")),
        "the git dependency line names the repository of Cargo.toml ({url})"
    );
    assert!(readme.contains("tracepost = { version = \"0.1\""));
}

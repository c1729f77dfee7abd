//! The manual's links hold: every relative link of README.md and
//! docs/*.md (`[text](path)`, `[text](path#anchor)`, `[text](#anchor)`)
//! names a file of the repository and, with an anchor, a heading of that
//! file (GitHub's anchors: lower case, spaces to dashes, punctuation
//! dropped). Links outside code blocks only; web links are not followed.

use failstop_test_support as common;

use std::collections::BTreeSet;
use std::path::Path;

/// GitHub's anchor for a heading's text.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown text's headings (outside code blocks).
fn anchors(text: &str) -> BTreeSet<String> {
    prose(text).filter_map(|l| l.strip_prefix('#')).map(|h| anchor(h.trim_start_matches('#'))).collect()
}

/// The lines of `text` outside fenced code blocks.
fn prose(text: &str) -> impl Iterator<Item = &str> {
    let mut fenced = false;
    text.lines().filter(move |l| {
        if l.starts_with("```") {
            fenced = !fenced;
            return false;
        }
        !fenced
    })
}

#[test]
fn every_relative_link_names_a_file_and_a_heading() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = common::doc_files();
    let mut checked = 0;
    let mut broken = Vec::new();
    for (name, text) in &docs {
        let dir = Path::new(name).parent().unwrap_or(Path::new(""));
        for line in prose(text) {
            let mut rest = line;
            while let Some(i) = rest.find("](") {
                let after = &rest[i + 2..];
                let Some(end) = after.find(')') else { break };
                let target = &after[..end];
                rest = &after[end..];
                if target.contains("://") || target.starts_with("mailto:") || target.contains(' ') {
                    continue;
                }
                let (path, frag) = target.split_once('#').map_or((target, None), |(p, f)| (p, Some(f)));
                let file = if path.is_empty() { Path::new(name).to_path_buf() } else { dir.join(path) };
                checked += 1;
                let Ok(body) = std::fs::read_to_string(root.join(&file)) else {
                    if !root.join(&file).exists() {
                        broken.push(format!("{name}: ({target}): no file {}", file.display()));
                    }
                    continue;
                };
                if let Some(f) = frag
                    && !anchors(&body).contains(f)
                {
                    broken.push(format!("{name}: ({target}): no heading with anchor #{f} in {}", file.display()));
                }
            }
        }
    }
    assert!(checked > 20, "only {checked} links found: is the parser right?");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn anchors_follow_githubs_rules() {
    assert_eq!(
        anchor("Under debuggers, in containers, with your own signals"),
        "under-debuggers-in-containers-with-your-own-signals"
    );
    assert_eq!(anchor("The `failstop` command"), "the-failstop-command");
    assert_eq!(anchor("Under runit (or another supervisor)"), "under-runit-or-another-supervisor");
}

//! Every relative link in the repository's Markdown files leads somewhere: the file or folder
//! it names exists and, for a `#anchor` into a Markdown file (or into the same file), that file
//! has a heading with that anchor under GitHub's rules.
//!
//! Read: every `*.md` under the repository (README.md, docs/, BENCHMARKS.md, clients/, ...),
//! except build and tool outputs: `target/`, `node_modules/`, hidden folders, and fuzzing's
//! `corpus/`, `artifacts/` and `coverage/`. Links with a scheme (`https:`, `mailto:`) are not
//! followed.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

/// Folders never read: builds, installed packages, fuzzing's outputs.
const SKIPPED_DIRS: &[&str] = &["target", "node_modules", "corpus", "artifacts", "coverage"];

/// The Markdown files under `root`, sorted.
fn markdown_files(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        let entries =
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if !name.starts_with('.') && !SKIPPED_DIRS.contains(&name.as_str()) {
                    dirs.push(path);
                }
            } else if name.ends_with(".md") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The lines of `text` outside fenced code blocks, with their 1-based numbers.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut fence: Option<&str> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let marker = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m));
        match (fence, marker) {
            (None, Some(m)) => fence = Some(m),
            (Some(open), Some(m)) if open == m && trimmed.trim_end() == m => fence = None,
            (None, None) => out.push((i + 1, line)),
            _ => {}
        }
    }
    out
}

/// `line` with inline code spans removed (a link inside backticks is not a link).
fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let ticks = rest[start..].chars().take_while(|c| *c == '`').count();
        let after = &rest[start + ticks..];
        match after.find(&"`".repeat(ticks)) {
            Some(end) => rest = &after[end + ticks..],
            None => {
                out.push_str(&rest[start..]);
                return out;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The link targets of one line of prose: `[text](target)`, `![alt](target)` and reference
/// definitions `[name]: target`.
fn link_targets(line: &str) -> Vec<String> {
    let line = without_code_spans(line);
    let mut targets = Vec::new();
    let mut rest = line.as_str();
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let end = after.find(')').unwrap_or(after.len());
        let target = after[..end].split_whitespace().next().unwrap_or("");
        targets.push(target.trim_matches(|c| c == '<' || c == '>').to_owned());
        rest = &after[end..];
    }
    let trimmed = line.trim_start();
    if trimmed.starts_with('[')
        && let Some((label, target)) = trimmed.split_once("]: ")
        && !label.contains(']')
    {
        targets.extend(target.split_whitespace().next().map(str::to_owned));
    }
    targets
}

/// The anchor GitHub gives a heading: its text as rendered (link targets, backticks and
/// emphasis markers gone), lower-cased, without punctuation but `-` and `_`, spaces as `-`.
fn github_anchor(heading: &str) -> String {
    let mut text = String::new();
    let mut rest = heading;
    // `[text](url)` renders as `text`.
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find("](").map(|i| open + i) else {
            break;
        };
        let Some(end) = rest[close..].find(')').map(|i| close + i) else {
            break;
        };
        text.push_str(&rest[..open]);
        text.push_str(&rest[open + 1..close]);
        rest = &rest[end + 1..];
    }
    text.push_str(rest);
    let text = text.replace("**", "").replace("__", "");
    text.trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown file: one per heading (a repeated one gets `-1`, `-2`, ...), and
/// the `id`s and `name`s of HTML elements.
fn anchors(text: &str) -> HashSet<String> {
    let mut found = HashSet::new();
    let mut counts = std::collections::HashMap::<String, usize>::new();
    for (_, line) in prose_lines(text) {
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
            let anchor = github_anchor(line[hashes..].trim().trim_end_matches('#'));
            let n = counts.entry(anchor.clone()).or_default();
            found.insert(if *n == 0 {
                anchor.clone()
            } else {
                format!("{anchor}-{n}")
            });
            *n += 1;
        }
        for attr in ["id=\"", "name=\""] {
            let mut rest = line;
            while let Some(at) = rest.find(attr) {
                let value = &rest[at + attr.len()..];
                let end = value.find('"').unwrap_or(value.len());
                found.insert(value[..end].to_owned());
                rest = &value[end..];
            }
        }
    }
    found
}

/// `path` with `.` and `..` resolved without touching the file system (a link may go through
/// a folder that does not exist: then it is broken anyway).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Every broken relative link of the Markdown files under `root`, as `file:line: target
/// (why)`.
fn broken_links(root: &Path) -> (usize, Vec<String>) {
    let mut checked = 0;
    let mut broken = Vec::new();
    for file in markdown_files(root) {
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        let shown = file
            .strip_prefix(root)
            .unwrap_or(&file)
            .display()
            .to_string();
        for (number, line) in prose_lines(&text) {
            for target in link_targets(line) {
                let scheme = target.split_once(':').is_some_and(|(s, _)| {
                    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphabetic())
                });
                if scheme || target.starts_with("//") {
                    continue;
                }
                checked += 1;
                let (path, anchor) = match target.split_once('#') {
                    Some((path, anchor)) => (path, Some(anchor)),
                    None => (target.as_str(), None),
                };
                let dir = file.parent().unwrap_or(root);
                let resolved = if path.is_empty() {
                    file.clone()
                } else {
                    normalize(&dir.join(path))
                };
                if !resolved.starts_with(root) {
                    broken.push(format!(
                        "{shown}:{number}: {target} (outside the repository)"
                    ));
                    continue;
                }
                if !resolved.exists() {
                    broken.push(format!("{shown}:{number}: {target} (no such file)"));
                    continue;
                }
                let Some(anchor) = anchor else { continue };
                if resolved.extension().is_some_and(|e| e == "md") {
                    let linked = std::fs::read_to_string(&resolved).unwrap_or_default();
                    if !anchors(&linked).contains(anchor) {
                        broken.push(format!("{shown}:{number}: {target} (no such heading)"));
                    }
                }
            }
        }
    }
    (checked, broken)
}

#[test]
fn every_relative_link_in_the_markdown_files_resolves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = markdown_files(root);
    for needed in [
        "README.md",
        "BENCHMARKS.md",
        "docs/README.md",
        "docs/rest-api.md",
    ] {
        assert!(
            files.contains(&root.join(needed)),
            "{needed} is read: {files:?}"
        );
    }
    assert!(
        !files
            .iter()
            .any(|f| f.components().any(|c| c.as_os_str() == "target")),
        "target/ is not read"
    );
    let (checked, broken) = broken_links(root);
    assert!(checked >= 50, "only {checked} relative links found");
    assert!(
        broken.is_empty(),
        "{} broken links:\n{}",
        broken.len(),
        broken.join("\n")
    );
}

#[test]
fn anchors_follow_githubs_rules() {
    for (heading, anchor) in [
        (
            "What is better than the Python original",
            "what-is-better-than-the-python-original",
        ),
        ("Use it from ...", "use-it-from-"),
        ("History's memory budget", "historys-memory-budget"),
        (
            "Design notes: the Redis client",
            "design-notes-the-redis-client",
        ),
        (
            "Python: resume after a reconnect",
            "python-resume-after-a-reconnect",
        ),
        (
            "`--slow-consumer` and **flow** control",
            "--slow-consumer-and-flow-control",
        ),
        (
            "[Several nodes](scale-out.md) on Redis",
            "several-nodes-on-redis",
        ),
        ("A 30-second tour", "a-30-second-tour"),
        ("snake_case names", "snake_case-names"),
    ] {
        assert_eq!(github_anchor(heading), anchor, "{heading}");
    }
    let text = "# Title\n\n## Errors\n\n```bash\n# not a heading\n```\n\n## Errors\n<a id=\"custom\"></a>\n";
    let found = anchors(text);
    for anchor in ["title", "errors", "errors-1", "custom"] {
        assert!(found.contains(anchor), "{anchor} in {found:?}");
    }
    assert!(!found.contains("not-a-heading"), "{found:?}");
}

#[test]
fn links_are_found_outside_code_only() {
    assert_eq!(
        link_targets("see [a](x.md#b), ![img](i.png) and [c](<y z.md>) or [d](https://e.org)"),
        ["x.md#b", "i.png", "y", "https://e.org"]
    );
    assert_eq!(link_targets("`[not](a-link.md)` but [yes](b.md)"), ["b.md"]);
    assert_eq!(link_targets("[ref]: docs/x.md \"title\""), ["docs/x.md"]);
    let text = "a [x](one.md)\n```\n[y](two.md)\n```\nb [z](three.md)\n";
    let targets: Vec<String> = prose_lines(text)
        .into_iter()
        .flat_map(|(_, l)| link_targets(l))
        .collect();
    assert_eq!(targets, ["one.md", "three.md"]);
}

#[test]
fn a_broken_link_of_each_kind_is_reported() {
    let root = std::env::temp_dir().join(format!("pubsub-doc-links-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("docs")).expect("create docs/");
    std::fs::create_dir_all(root.join("target")).expect("create target/");
    std::fs::write(
        root.join("README.md"),
        "# Top\n\n## Here\n\n[ok](docs/a.md#part) [ok](#here) [ok](docs/)\n\
         [gone](docs/missing.md) [bad anchor](docs/a.md#nowhere) [bad self](#there)\n\
         [out](../elsewhere.md) [web](https://example.org/x.md)\n",
    )
    .expect("write README.md");
    std::fs::write(
        root.join("docs/a.md"),
        "# A\n\n## Part\n\n[up](../README.md#top)\n",
    )
    .expect("write docs/a.md");
    std::fs::write(root.join("target/skip.md"), "[never read](nothing.md)\n")
        .expect("write target/skip.md");
    let (checked, broken) = broken_links(&root);
    let _ = std::fs::remove_dir_all(&root);
    assert_eq!(checked, 8, "{broken:?}");
    assert_eq!(
        broken,
        [
            "README.md:6: docs/missing.md (no such file)",
            "README.md:6: docs/a.md#nowhere (no such heading)",
            "README.md:6: #there (no such heading)",
            "README.md:7: ../elsewhere.md (outside the repository)",
        ]
    );
}

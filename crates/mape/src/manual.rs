//! The manual: `mape(8)` and one `mape-<command>(8)` per subcommand, rendered from the clap
//! definitions, and `mape.toml(5)`, rendered from the documented example configuration
//! `dist/mape.toml` — each fact written once, in the code or in that file.
use std::io;
use std::path::{Path, PathBuf};

use roff::{bold, italic, roman, Roff};

/// The documented example configuration, the source of `mape.toml(5)`.
pub(crate) const EXAMPLE_CONFIG: &str = include_str!("../../../dist/mape.toml");

/// Writes `mape.8`, `mape-<command>[-<sub>].8` for every (nested) subcommand and
/// `mape.toml.5` into `dir`; returns the files written.
pub(crate) fn write_pages(cmd: clap::Command, dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    write_command_pages(cmd.clone(), dir, &mut written)?;
    let path = dir.join("mape.toml.5");
    std::fs::write(&path, config_page(EXAMPLE_CONFIG))?;
    written.push(path);
    Ok(written)
}

/// `man` would otherwise point at pages of section 1: mape is a system administration
/// command (man-pages(7): section 8).
const SECTION: &str = "8";

fn write_command_pages(
    cmd: clap::Command,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> io::Result<()> {
    let cmd = cmd.disable_help_subcommand(true);
    let name = cmd.get_display_name().unwrap_or(cmd.get_name()).to_owned();
    let path = dir.join(format!("{name}.{SECTION}"));
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .section(SECTION)
        .render(&mut out)?;
    if name == "mape" {
        out.extend_from_slice(crate::exit::man_section().as_bytes());
        out.extend_from_slice(see_also_config().as_bytes());
    }
    std::fs::write(&path, ascii_roff(&String::from_utf8_lossy(&out)))?;
    written.push(path);
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() {
            continue;
        }
        // clap names a subcommand's page after its parent ("mape-show-ports").
        let sub = sub
            .clone()
            .display_name(format!("{name}-{}", sub.get_name()));
        write_command_pages(sub, dir, written)?;
    }
    Ok(())
}

fn see_also_config() -> String {
    let mut page = Roff::new();
    page.control("SH", ["SEE ALSO"]).text([
        bold("mape.toml"),
        roman("(5), "),
        bold("systemctl"),
        roman("(1), "),
        bold("journalctl"),
        roman("(1)"),
    ]);
    page.render()
}

/// One documented key of the example configuration.
#[derive(Debug, PartialEq)]
struct Key {
    /// `wan`, `nat.timeouts`, … (empty before the first table).
    table: String,
    name: String,
    /// The value the example gives (for a commented-out key: an example, not the default).
    value: String,
    /// Commented out in the example: optional.
    optional: bool,
    text: Vec<String>,
}

/// A line of the example, classified.
enum Line<'a> {
    Blank,
    /// `[table]` or `[[table]]`, possibly commented out, with its trailing comment.
    Table(&'a str, &'a str),
    /// `key = value  # comment`, possibly commented out.
    Key {
        name: &'a str,
        value: &'a str,
        comment: &'a str,
        optional: bool,
    },
    /// A comment line (its text).
    Comment(&'a str),
    /// A comment line indented under the one before it: the same sentence goes on.
    Wrapped(&'a str),
    /// An indented comment continuing the previous key's trailing comment.
    Continuation(&'a str),
}

fn split_comment(s: &str) -> (&str, &str) {
    // TOML strings in the example never hold '#'.
    match s.find('#') {
        Some(i) => (s[..i].trim(), s[i + 1..].trim()),
        None => (s.trim(), ""),
    }
}

fn classify(line: &str) -> Line<'_> {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Line::Blank;
    }
    // A commented-out setting is "# " followed at once by a key or a table header;
    // prose and examples inside comments are indented further.
    let (body, optional) = match trimmed.strip_prefix('#') {
        Some(rest) => match rest.strip_prefix(' ') {
            Some(r) if !r.starts_with(' ') && looks_like_setting(r) => (r, true),
            _ => {
                let text = rest.trim_start_matches('#').trim();
                let indent = rest.len() - rest.trim_start().len();
                return if line.starts_with(' ') {
                    Line::Continuation(text)
                } else if indent > 4 {
                    Line::Wrapped(text)
                } else {
                    Line::Comment(text)
                };
            }
        },
        None => (trimmed, false),
    };
    let (setting, comment) = split_comment(body);
    if let Some(table) = setting.strip_prefix('[') {
        return Line::Table(table.trim_matches(|c| c == '[' || c == ']'), comment);
    }
    match setting.split_once('=') {
        Some((name, value)) => Line::Key {
            name: name.trim(),
            value: value.trim(),
            comment,
            optional,
        },
        None => Line::Comment(body),
    }
}

fn looks_like_setting(s: &str) -> bool {
    if s.starts_with('[') {
        return s.contains(']');
    }
    match s.split_once('=') {
        Some((name, _)) => {
            let name = name.trim();
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        }
        None => false,
    }
}

/// A table of the example: its name (empty before the first) and its own text.
type Table = (String, Vec<String>);

/// The header comment (up to the first blank line), the tables in order with their own
/// text, and the keys.
fn parse_example(example: &str) -> (Vec<String>, Vec<Table>, Vec<Key>) {
    let mut lines = example.lines().peekable();
    let mut header = Vec::new();
    while let Some(l) = lines.next_if(|l| !l.trim().is_empty()) {
        header.push(l.trim_start_matches('#').trim().to_owned());
    }
    let mut tables: Vec<Table> = vec![(String::new(), Vec::new())];
    let mut keys: Vec<Key> = Vec::new();
    let mut pending: Vec<String> = Vec::new();
    for line in lines {
        match classify(line) {
            Line::Blank => {
                // Prose before a blank line belongs to the table that follows, or to the
                // current table when no key follows it directly.
            }
            Line::Comment(text) => pending.push(text.to_owned()),
            Line::Wrapped(text) => match pending.last_mut() {
                Some(last) => {
                    last.push(' ');
                    last.push_str(text);
                }
                None => pending.push(text.to_owned()),
            },
            Line::Continuation(text) => match keys.last_mut() {
                Some(k) => k.text.push(text.to_owned()),
                None => pending.push(text.to_owned()),
            },
            Line::Table(name, comment) => {
                let mut text = std::mem::take(&mut pending);
                if !comment.is_empty() {
                    text.push(comment.to_owned());
                }
                tables.push((name.to_owned(), text));
            }
            Line::Key {
                name,
                value,
                comment,
                optional,
            } => {
                let mut text = std::mem::take(&mut pending);
                if !comment.is_empty() {
                    text.push(comment.to_owned());
                }
                let table = tables.last().map(|t| t.0.clone()).unwrap_or_default();
                keys.push(Key {
                    table,
                    name: name.to_owned(),
                    value: value.to_owned(),
                    optional,
                    text,
                });
            }
        }
    }
    if let Some(last) = tables.last_mut() {
        last.1.append(&mut pending);
    }
    (header, tables, keys)
}

/// `mape.toml(5)` in roff.
pub(crate) fn config_page(example: &str) -> String {
    let (header, tables, keys) = parse_example(example);
    let mut page = Roff::new();
    page.control("TH", ["MAPE.TOML", "5"])
        .control("SH", ["NAME"])
        .text([roman("mape.toml - configuration of the mape daemon")])
        .control("SH", ["SYNOPSIS"])
        .text([bold("/etc/mape/mape.toml")])
        .control("SH", ["DESCRIPTION"]);
    for line in header.iter().filter(|l| !l.is_empty()) {
        page.text([roman(line.as_str())])
            .control("br", [] as [&str; 0]);
    }
    page.text([
        roman("The file is TOML. Settings shown commented out below are optional; their "),
        roman("value is an example. Check a file without touching the system with "),
        bold("mape run --check --config"),
        roman(" "),
        italic("FILE"),
        roman("."),
    ]);
    for (table, text) in &tables {
        let in_table: Vec<&Key> = keys.iter().filter(|k| &k.table == table).collect();
        if table.is_empty() && in_table.is_empty() {
            continue;
        }
        let title = if table.is_empty() {
            "TOP LEVEL".to_owned()
        } else {
            format!("[{table}]")
        };
        page.control("SH", [title.as_str()]);
        for line in text {
            page.text([roman(line.as_str())])
                .control("br", [] as [&str; 0]);
        }
        for key in in_table {
            page.control("TP", [] as [&str; 0]).text([
                bold(key.name.as_str()),
                roman(" = "),
                roman(key.value.as_str()),
                roman(if key.optional { " (optional)" } else { "" }),
            ]);
            for line in &key.text {
                page.text([roman(line.as_str())])
                    .control("br", [] as [&str; 0]);
            }
        }
    }
    page.control("SH", ["SEE ALSO"]).text([
        bold("mape"),
        roman("(8), "),
        bold("mape-run"),
        roman("(8)"),
    ]);
    ascii_roff(&page.render())
}

/// Roff input in ASCII: every other character as groff's Unicode escape `\[uXXXX]`
/// (groff_char(7)), so that the pages read the same without a UTF-8 preprocessor.
fn ascii_roff(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\[u{:04X}]", u32::from(c)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every setting of the example, as the `toml` crate reads the file (an independent
    /// parser), is documented in its table.
    #[test]
    fn every_setting_of_the_example_has_an_entry_in_its_table() {
        let (_, _, keys) = parse_example(EXAMPLE_CONFIG);
        let doc: toml::Table = toml::from_str(EXAMPLE_CONFIG).expect("example parses");
        fn walk(prefix: &str, t: &toml::Table, out: &mut Vec<(String, String)>) {
            for (k, v) in t {
                match v {
                    toml::Value::Table(sub) => {
                        let p = if prefix.is_empty() {
                            k.clone()
                        } else {
                            format!("{prefix}.{k}")
                        };
                        walk(&p, sub, out);
                    }
                    _ => out.push((prefix.to_owned(), k.clone())),
                }
            }
        }
        let mut settings = Vec::new();
        walk("", &doc, &mut settings);
        assert!(settings.len() > 30, "{settings:?}");
        for (table, name) in settings {
            let key = keys
                .iter()
                .find(|k| k.table == table && k.name == name && !k.optional);
            assert!(key.is_some(), "[{table}] {name} missing from mape.toml(5)");
        }
    }

    #[test]
    fn commented_out_settings_are_optional_entries_and_prose_is_not_a_setting() {
        let (_, tables, keys) = parse_example(EXAMPLE_CONFIG);
        let find = |t: &str, n: &str| keys.iter().find(|k| k.table == t && k.name == n);
        let br = find("map", "br").expect("[map] br");
        assert!(br.optional);
        assert_eq!(br.value, "[\"2404:9200:225:100::64\"]");
        assert_eq!(br.text, ["override the profile's BR"]);
        assert!(find("nat.forward", "internal").is_some_and(|k| k.optional));
        assert!(find("events", "hook").is_some_and(|k| k.optional));
        // "#   profile = ..." is an example inside prose, not a second `profile` key.
        assert_eq!(keys.iter().filter(|k| k.name == "profile").count(), 1);
        // A trailing comment continued on the next, indented line stays with its key.
        let recycle = find("nat.quota", "recycle_idle").expect("recycle_idle");
        assert_eq!(recycle.text.len(), 2, "{:?}", recycle.text);
        assert!(tables.iter().any(|(t, _)| t == "nat.timeouts"));
    }

    /// groff's warnings about `page` (a real roff implementation); `None` without groff.
    fn groff_warnings(page: &[u8]) -> Option<String> {
        let Ok(out) = std::process::Command::new("groff")
            .args(["-man", "-ww", "-z"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                if let Some(mut stdin) = child.stdin.take() {
                    stdin.write_all(page)?;
                }
                child.wait_with_output()
            })
        else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "groff missing"
            );
            return None;
        };
        assert!(out.status.success());
        Some(String::from_utf8_lossy(&out.stderr).into_owned())
    }

    #[test]
    fn groff_renders_the_config_page_without_warnings() {
        if let Some(w) = groff_warnings(config_page(EXAMPLE_CONFIG).as_bytes()) {
            assert!(w.is_empty(), "{w}");
        }
    }

    /// Every subcommand has its page, every page a page refers to exists, and groff reads
    /// them all without a warning.
    #[test]
    fn every_page_exists_that_a_page_names_and_all_render_cleanly() {
        let dir = std::env::temp_dir().join(format!("mape-man-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cmd = <crate::Cli as clap::CommandFactory>::command();
        let subcommands: Vec<String> = cmd
            .get_subcommands()
            .map(|s| s.get_name().to_owned())
            .collect();
        let pages = write_pages(cmd, &dir).expect("write pages");
        let names: Vec<String> = pages
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect();
        for sub in &subcommands {
            assert!(names.contains(&format!("mape-{sub}.8")), "{sub}: {names:?}");
        }
        assert!(names.contains(&"mape-show-ports.8".to_owned()), "{names:?}");
        for page in &pages {
            let text = std::fs::read(page).expect("read page");
            if let Some(w) = groff_warnings(&text) {
                assert!(w.is_empty(), "{}: {w}", page.display());
            }
            let text = String::from_utf8(text).expect("ASCII page");
            // References look like "mape\\-show(8)" or "\\fBmape.toml\\fR(5)".
            for (at, _) in text.match_indices('(') {
                let section = &text[at + 1..];
                let Some(section) = section.get(..2).filter(|s| matches!(*s, "5)" | "8)")) else {
                    continue;
                };
                let before = &text[..at];
                let before = before.strip_suffix("\\fR").unwrap_or(before);
                let from = before
                    .rfind(|c: char| !(c.is_ascii_lowercase() || matches!(c, '.' | '-' | '\\')))
                    .map_or(0, |i| i + 1);
                let name = before[from..].replace("\\-", "-");
                if name.starts_with("mape") {
                    let file = format!("{name}.{}", &section[..1]);
                    assert!(names.contains(&file), "{} names {file}", page.display());
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

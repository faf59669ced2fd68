//! The library's module layering, checked on its sources.
//!
//! The library is a stack of layers ([`LAYERS`]): plain data and maths at the bottom, the
//! contracts the whole node shares (its config file, the wire formats) above them, the pipeline
//! stages above those and the commands on top. A module may import modules of its own layer or
//! of a lower one, and the imports between modules must not form a loop. That keeps each layer
//! readable and testable without the ones above it. The compiler accepts loops between the
//! modules of one crate, so without this test nothing would notice one creeping in.
//!
//! The test reads `src/` as text instead of linking the crate, so it builds in seconds.
//! Module A imports module B when any file of A has a `crate::B` path in its code: a `use`, a
//! grouped `use crate::{B, C}`, or a path in an expression or a type. Comments, doc comments,
//! string literals and `#[cfg(test)]` modules do not count, because tests may look across layers.
//! `src/main.rs` is the binary: it may use any layer and is not part of the graph.
//!
//! When the test fails it lists every problem at once: modules missing from the table, upward
//! imports, and the loops, with the file and line of each import involved.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, lowest first. A module may import modules of its own layer or a lower one, never
/// a higher one: `config/` and `wire/` import nothing above them, stages import them, commands
/// import stages. Within a layer the imports must not form a loop either (the loop check covers
/// every module, listed or not).
///
/// Every module that `src/lib.rs` declares must be listed here. A listed module that `src/lib.rs`
/// does not declare is ignored, so the table can name modules that are still planned.
const LAYERS: &[(&str, &[&str])] = &[
    // Plain data and maths that config and wire may use.
    ("leaf", &["geometry", "frame"]),
    // What the node shares with the outside world: its config file and what it sends.
    ("contract", &["config", "wire"]),
    // The pipeline stages and the services that run beside them.
    (
        "stage",
        &[
            "stats", "draw", "motion", "ingest", "infer", "track", "plates", "rules", "incident",
            "drone", "clip", "publish", "verdict", "engine", "systemd", "http", "node",
        ],
    ),
    // The subcommands, which put the stages together.
    ("command", &["commands"]),
];

#[test]
fn modules_keep_to_their_layers() {
    let report = layout_report(Path::new(env!("CARGO_MANIFEST_DIR")));
    if !report.is_empty() {
        panic!("{report}");
    }
}

/// Everything wrong with the module layout of the crate at `root`.
fn layout_report(root: &Path) -> Report {
    let mut report = Report::default();
    let (_, lib) = read_code(root, Path::new("src/lib.rs"), &mut report);
    let modules = declared_modules(&lib);
    assert!(!modules.is_empty(), "found no `mod` declarations in src/lib.rs");
    // The binary may import any layer; it only has to be readable by the scanner.
    read_code(root, Path::new("src/main.rs"), &mut report);

    report.unlisted = modules.iter().filter(|m| layer_of(m).is_none()).cloned().collect();
    let imports = imports_between(root, &modules, &mut report);
    report.upward = upward_imports(&imports);
    let links: BTreeSet<(String, String)> = imports.keys().cloned().collect();
    report.cycles = shortest_cycles(&links)
        .into_iter()
        .map(|cycle| {
            let steps =
                cycle.windows(2).map(|step| imports[&(step[0].clone(), step[1].clone())].clone());
            (cycle.clone(), steps.collect())
        })
        .collect();
    report
}

/// One `crate::B` path in a file of module A.
#[derive(Clone, Debug)]
struct Import {
    file: String,
    line: usize,
    /// The source line, trimmed, so the report shows which `use` to move.
    text: String,
}

/// Every import between two modules, first occurrence first, keyed by (importer, imported).
type Imports = BTreeMap<(String, String), Vec<Import>>;

/// Everything wrong, gathered so one run reports all of it.
#[derive(Default)]
struct Report {
    unreadable: Vec<String>,
    unlisted: Vec<String>,
    upward: Vec<((String, String), Vec<Import>)>,
    /// Each cycle as modules (first and last the same), with the imports of each step.
    cycles: Vec<(Vec<String>, Vec<Vec<Import>>)>,
}

impl Report {
    fn is_empty(&self) -> bool {
        self.unreadable.is_empty()
            && self.unlisted.is_empty()
            && self.upward.is_empty()
            && self.cycles.is_empty()
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count =
            self.unreadable.len() + self.unlisted.len() + self.upward.len() + self.cycles.len();
        let layers: Vec<&str> = LAYERS.iter().map(|(name, _)| *name).collect();
        writeln!(
            f,
            "the module layout breaks its rule in {count} places. Layers, lowest first: {}. \
             A module may import its own layer or lower ones, and imports must not form a loop \
             (the table and the reasons are at the top of tests/layout.rs).",
            layers.join(" < ")
        )?;
        if !self.unreadable.is_empty() {
            writeln!(f, "\nfiles the scanner could not read:")?;
            for problem in &self.unreadable {
                writeln!(f, "  {problem}")?;
            }
        }
        if !self.unlisted.is_empty() {
            writeln!(
                f,
                "\nmodules in src/lib.rs that are in no layer (add each to a layer in tests/layout.rs):"
            )?;
            for module in &self.unlisted {
                writeln!(f, "  {module}")?;
            }
        }
        if !self.upward.is_empty() {
            writeln!(f, "\nupward imports (move the code, or the import, down a layer):")?;
            for ((from, to), imports) in &self.upward {
                let from_layer = layer_name(from);
                let to_layer = layer_name(to);
                writeln!(f, "  {from} ({from_layer}) imports {to} ({to_layer}):")?;
                for import in imports {
                    writeln!(f, "      {}:{}  {}", import.file, import.line, import.text)?;
                }
            }
        }
        if !self.cycles.is_empty() {
            writeln!(f, "\nimport cycles (break each by moving one of its imports):")?;
            for (cycle, steps) in &self.cycles {
                writeln!(f, "  {}", cycle.join(" → "))?;
                for (step, imports) in cycle.windows(2).zip(steps) {
                    let first = &imports[0];
                    let more = match imports.len() {
                        1 => String::new(),
                        n => format!("  (and {} more)", n - 1),
                    };
                    let arrow = format!("{} → {}", step[0], step[1]);
                    writeln!(
                        f,
                        "      {arrow:<22} {}:{}  {}{more}",
                        first.file, first.line, first.text
                    )?;
                }
            }
        }
        Ok(())
    }
}

/// The layer's position in [`LAYERS`] (0 lowest), or `None` when the module is not listed.
fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, modules)| modules.contains(&module))
}

fn layer_name(module: &str) -> &'static str {
    layer_of(module).map_or("no layer", |layer| LAYERS[layer].0)
}

/// Reads a file (path relative to the crate root): its text, and its code as the graph sees it
/// (see [`code_only`] and [`without_test_modules`]). A file the scanner cannot make sense of goes
/// into the report, and its code counts as empty.
fn read_code(root: &Path, file: &Path, report: &mut Report) -> (String, String) {
    let source = fs::read_to_string(root.join(file))
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    let code = match code_only(&source) {
        Ok(code) => without_test_modules(&code),
        Err(why) => {
            report.unreadable.push(format!("{}: {why}", file.display()));
            String::new()
        }
    };
    (source, code)
}

/// The modules `src/lib.rs` declares with `mod X;` (any visibility, any attributes).
fn declared_modules(lib_code: &str) -> Vec<String> {
    let bytes = lib_code.as_bytes();
    let mut modules = Vec::new();
    for at in word_positions(bytes, "mod") {
        let start = skip_whitespace(bytes, at + 3);
        let end = ident_end(bytes, start);
        if end > start && bytes.get(skip_whitespace(bytes, end)) == Some(&b';') {
            modules.push(lib_code[start..end].to_string());
        }
    }
    modules
}

/// The files of a top-level module: `src/X.rs` and everything under `src/X/`.
fn module_files(root: &Path, module: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let single = Path::new("src").join(format!("{module}.rs"));
    if root.join(&single).is_file() {
        files.push(single);
    }
    let mut folders = vec![Path::new("src").join(module)];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = fs::read_dir(root.join(&folder)) else { continue };
        for entry in entries {
            let path = folder.join(entry.expect("a readable folder entry").file_name());
            if root.join(&path).is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Every `crate::B` in module A's files, for modules A ≠ B both declared in `src/lib.rs`.
fn imports_between(root: &Path, modules: &[String], report: &mut Report) -> Imports {
    let mut imports = Imports::new();
    for from in modules {
        for file in module_files(root, from) {
            let (source, code) = read_code(root, &file, report);
            let lines: Vec<&str> = source.lines().collect();
            for (to, line) in crate_references(&code) {
                if to == *from || !modules.contains(&to) {
                    continue;
                }
                let text = lines.get(line - 1).map_or("", |text| text.trim());
                let import =
                    Import { file: file.display().to_string(), line, text: shortened(text, 90) };
                imports.entry((from.clone(), to)).or_default().push(import);
            }
        }
    }
    imports
}

fn shortened(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// Imports from a module into a module of a higher layer. Modules in no layer are reported as
/// unlisted instead; their imports cannot be judged until they have a layer.
fn upward_imports(imports: &Imports) -> Vec<((String, String), Vec<Import>)> {
    imports
        .iter()
        .filter(|((from, to), _)| match (layer_of(from), layer_of(to)) {
            (Some(from), Some(to)) => to > from,
            _ => false,
        })
        .map(|(link, imports)| (link.clone(), imports.clone()))
        .collect()
}

/// For every link A → B that lies on a loop, the shortest loop through it, written as
/// `[A, B, …, A]`. Listing every simple loop of a tangled graph would run to hundreds; this way
/// every import that closes a loop appears at least once, and each loop only once. Each loop
/// starts at its lowest-layer module, so its first step is usually the upward import.
fn shortest_cycles(links: &BTreeSet<(String, String)>) -> Vec<Vec<String>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in links {
        next.entry(from).or_default().push(to);
    }
    let mut cycles = BTreeSet::new();
    for (from, to) in links {
        let Some(back) = shortest_path(&next, to, from) else { continue };
        let mut cycle: Vec<String> = back.iter().map(|m| m.to_string()).collect();
        cycle.pop(); // `from` again; the loop is `from`, then `back` without its end
        cycle.insert(0, from.clone());
        let lowest = (0..cycle.len())
            .min_by_key(|&i| (layer_of(&cycle[i]).unwrap_or(usize::MAX), cycle[i].clone()))
            .expect("a loop has modules");
        cycle.rotate_left(lowest);
        cycle.push(cycle[0].clone());
        cycles.insert(cycle);
    }
    let mut cycles: Vec<Vec<String>> = cycles.into_iter().collect();
    cycles.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    cycles
}

/// Breadth-first search: the modules from `start` to `goal`, both included.
fn shortest_path<'a>(
    next: &BTreeMap<&'a str, Vec<&'a str>>,
    start: &'a str,
    goal: &'a str,
) -> Option<Vec<&'a str>> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(module) = queue.pop_front() {
        if module == goal {
            let mut path = vec![goal];
            while let Some(&previous) = came_from.get(path.last().expect("not empty")) {
                path.push(previous);
            }
            path.reverse();
            return Some(path);
        }
        for &to in next.get(module).into_iter().flatten() {
            if to != start && !came_from.contains_key(to) {
                came_from.insert(to, module);
                queue.push_back(to);
            }
        }
    }
    None
}

// ---- The scanner: just enough of Rust's lexical rules to find `crate::` paths in code. ----

/// `source` with every comment and string or char literal blanked to spaces. Newlines stay, so
/// offsets and line numbers still match the file. A string inside an attribute that is nothing
/// but a path stays, because the compiler resolves it like code:
/// `#[serde(deserialize_with = "crate::drone::config::geo_polygon")]` is an import of `drone`.
fn code_only(source: &str) -> Result<String, String> {
    let bytes = source.as_bytes();
    let mut code = bytes.to_vec();
    let unterminated =
        |what: &str, at: usize| format!("unterminated {what} from line {}", line_at(bytes, at));
    // `[` nesting inside `#[...]` / `#![...]`; 0 outside attributes.
    let mut attribute_depth = 0;
    // The last two code bytes that are not whitespace, to see `#[` and `#![` coming.
    let mut last = [b' '; 2];
    let mut i = 0;
    while i < bytes.len() {
        let end = if bytes[i..].starts_with(b"//") {
            bytes[i..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |n| i + n)
        } else if bytes[i..].starts_with(b"/*") {
            block_comment_end(bytes, i).ok_or_else(|| unterminated("block comment", i))?
        } else if let Some((open, hashes)) = raw_string_open(bytes, i) {
            let close = [&b"\""[..], &vec![b'#'; hashes]].concat();
            let content_end =
                find(bytes, open + 1, &close).ok_or_else(|| unterminated("raw string", i))?;
            content_end + close.len()
        } else if bytes[i] == b'"' {
            let after = string_end(bytes, i + 1).ok_or_else(|| unterminated("string", i))?;
            let inside = &source[i + 1..after - 1];
            if attribute_depth > 0 && is_path(inside) {
                i = after;
                continue;
            }
            after
        } else if let Some(after) = char_literal_end(bytes, i) {
            after
        } else {
            // Code (a lifetime's `'` included): follow attribute brackets, then move on.
            match bytes[i] {
                b'[' if attribute_depth > 0 => attribute_depth += 1,
                b'[' if last[1] == b'#' || last == *b"#!" => attribute_depth = 1,
                b']' if attribute_depth > 0 => attribute_depth -= 1,
                _ => {}
            }
            if !bytes[i].is_ascii_whitespace() {
                last = [last[1], bytes[i]];
            }
            i += 1;
            continue;
        };
        blank(&mut code, i, end);
        i = end;
    }
    Ok(String::from_utf8(code).expect("blanking keeps UTF-8 whole"))
}

/// The code with every `#[cfg(test)]` inline module (`mod tests { … }`, any name and visibility)
/// blanked out. Test code may use any layer. Takes [`code_only`]'s output, so braces in strings,
/// chars and comments are already gone and counting braces finds the module's end.
fn without_test_modules(code: &str) -> String {
    const CFG_TEST: &str = "#[cfg(test)]";
    let bytes = code.as_bytes();
    let mut kept = bytes.to_vec();
    let mut from = 0;
    while let Some(start) = find(bytes, from, CFG_TEST.as_bytes()) {
        let after = start + CFG_TEST.len();
        from = match inline_module_open(bytes, after) {
            Some(open) => {
                let end = matching_brace(bytes, open).unwrap_or(bytes.len());
                blank(&mut kept, start, end);
                end
            }
            None => after,
        };
    }
    String::from_utf8(kept).expect("blanking keeps UTF-8 whole")
}

/// Every `crate::B` in the code, as (B, line): `crate::B::x`, `crate::B` in an expression, and each
/// entry of `crate::{B, C::x, D::{y, z}}`.
fn crate_references(code: &str) -> Vec<(String, usize)> {
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    for at in word_positions(bytes, "crate") {
        let colons = skip_whitespace(bytes, at + "crate".len());
        if !bytes[colons..].starts_with(b"::") {
            continue; // `pub(crate)`, `crate` as a visibility
        }
        let start = skip_whitespace(bytes, colons + 2);
        if bytes.get(start) == Some(&b'{') {
            found.extend(group_entries(bytes, start));
        } else {
            let end = ident_end(bytes, start);
            if end > start {
                found.push((code[start..end].to_string(), line_at(bytes, start)));
            }
        }
    }
    found
}

/// The first name of each entry of the `{…}` group opening at `open`: `{a::{b, c}, d}` gives a
/// and d. `self` and `*` name no module.
fn group_entries(bytes: &[u8], open: usize) -> Vec<(String, usize)> {
    let mut entries = Vec::new();
    let mut depth = 0;
    let mut entry_starts = true;
    let mut i = open;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            b',' if depth == 1 => entry_starts = true,
            b if b.is_ascii_whitespace() => {}
            _ if depth == 1 && entry_starts => {
                entry_starts = false;
                let end = ident_end(bytes, i);
                let name = String::from_utf8_lossy(&bytes[i..end]);
                if end > i && name != "self" {
                    entries.push((name.into_owned(), line_at(bytes, i)));
                }
                i = end.max(i + 1);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    entries
}

/// Where the `{` of an inline module starts, when the item after a `#[cfg(test)]` at `at` is
/// one: more attributes, a visibility, `mod name {`.
fn inline_module_open(bytes: &[u8], at: usize) -> Option<usize> {
    let mut i = skip_whitespace(bytes, at);
    while bytes[i..].starts_with(b"#[") {
        i = skip_whitespace(bytes, matching(bytes, i + 1, b'[', b']')?);
    }
    if bytes[i..].starts_with(b"pub") && ident_end(bytes, i) == i + 3 {
        i = skip_whitespace(bytes, i + 3);
        if bytes.get(i) == Some(&b'(') {
            i = skip_whitespace(bytes, matching(bytes, i, b'(', b')')?);
        }
    }
    if !(bytes[i..].starts_with(b"mod") && ident_end(bytes, i) == i + 3) {
        return None;
    }
    let name = skip_whitespace(bytes, i + 3);
    let open = skip_whitespace(bytes, ident_end(bytes, name));
    (bytes.get(open) == Some(&b'{')).then_some(open)
}

/// Just past the `}` that closes the `{` at `open`.
fn matching_brace(bytes: &[u8], open: usize) -> Option<usize> {
    matching(bytes, open, b'{', b'}')
}

/// Just past the `close` that matches the `open` byte at `at`, counting nesting.
fn matching(bytes: &[u8], at: usize, open: u8, close: u8) -> Option<usize> {
    let mut depth = 0;
    for (i, &b) in bytes.iter().enumerate().skip(at) {
        if b == open {
            depth += 1;
        } else if b == close {
            depth -= 1;
            if depth == 0 {
                return Some(i + 1);
            }
        }
    }
    None
}

/// Where `r"`, `r#"`, `br##"`, `cr"` … starts at `at`: the offset of its `"` and its `#` count.
fn raw_string_open(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    if at > 0 && is_ident_byte(bytes[at - 1]) {
        return None; // inside a longer identifier such as `bar`
    }
    let r = if matches!(bytes[at], b'b' | b'c') { at + 1 } else { at };
    if bytes.get(r) != Some(&b'r') {
        return None;
    }
    let hashes = bytes[r + 1..].iter().take_while(|&&b| b == b'#').count();
    let open = r + 1 + hashes;
    (bytes.get(open) == Some(&b'"')).then_some((open, hashes))
}

/// Just past the `"` that ends a string whose contents start at `from`, escapes included.
fn string_end(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Just past a char literal (`'{'`, `'\''`, `'\u{7b}'`, `'é'`) starting at `at`; `None` for a
/// lifetime or a label (`'a`), which has no closing quote.
fn char_literal_end(bytes: &[u8], at: usize) -> Option<usize> {
    if bytes[at] != b'\'' {
        return None;
    }
    match *bytes.get(at + 1)? {
        b'\\' => find(bytes, at + 3, b"'").map(|close| close + 1),
        first => {
            let width = match first {
                0..0x80 => 1,
                0x80..0xE0 => 2,
                0xE0..0xF0 => 3,
                _ => 4,
            };
            (bytes.get(at + 1 + width) == Some(&b'\'')).then_some(at + 2 + width)
        }
    }
}

/// Just past the `*/` that closes the block comment at `at` (block comments nest).
fn block_comment_end(bytes: &[u8], at: usize) -> Option<usize> {
    let mut depth = 0;
    let mut i = at;
    while i + 1 < bytes.len() {
        if bytes[i..].starts_with(b"/*") {
            depth += 1;
            i += 2;
        } else if bytes[i..].starts_with(b"*/") {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return Some(i);
            }
        } else {
            i += 1;
        }
    }
    None
}

/// `a::b::c`-shaped text, nothing else.
fn is_path(text: &str) -> bool {
    text.split("::").all(|segment| {
        segment.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && segment.bytes().all(is_ident_byte)
    })
}

/// Offsets where `word` stands as a whole word.
fn word_positions<'a>(bytes: &'a [u8], word: &'a str) -> impl Iterator<Item = usize> + 'a {
    (0..bytes.len()).filter(move |&i| {
        bytes[i..].starts_with(word.as_bytes())
            && (i == 0 || !is_ident_byte(bytes[i - 1]))
            && !bytes.get(i + word.len()).is_some_and(|&b| is_ident_byte(b))
    })
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|n| from + n)
}

fn ident_end(bytes: &[u8], start: usize) -> usize {
    start + bytes.get(start..).unwrap_or_default().iter().take_while(|&&b| is_ident_byte(b)).count()
}

fn skip_whitespace(bytes: &[u8], from: usize) -> usize {
    from + bytes
        .get(from..)
        .unwrap_or_default()
        .iter()
        .take_while(|b| b.is_ascii_whitespace())
        .count()
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn line_at(bytes: &[u8], offset: usize) -> usize {
    bytes[..offset].iter().filter(|&&b| b == b'\n').count() + 1
}

/// Spaces over `bytes[from..to]`, newlines kept.
fn blank(bytes: &mut [u8], from: usize, to: usize) {
    for b in &mut bytes[from..to] {
        if *b != b'\n' {
            *b = b' ';
        }
    }
}

// ---- The scanner and the loop finder on small inputs. ----

/// The modules `source` refers to through `crate::`, as the main check reads it.
fn referenced(source: &str) -> Vec<(String, usize)> {
    crate_references(&without_test_modules(&code_only(source).expect("scannable")))
}

fn names(found: &[(String, usize)]) -> Vec<&str> {
    found.iter().map(|(name, _)| name.as_str()).collect()
}

#[test]
fn a_grouped_use_names_the_first_segment_of_each_entry() {
    let found = referenced("use crate::{a::{b, c}, d};\nuse crate::{\n    self,\n    e::*,\n};\n");
    assert_eq!(found, [("a".into(), 1), ("d".into(), 1), ("e".into(), 4)]);
}

#[test]
fn a_path_in_an_expression_or_a_type_counts() {
    let found =
        referenced("fn f<'a>(x: &'a str) -> crate::t::T {\n    crate :: geo::area(x, '{')\n}\n");
    assert_eq!(found, [("t".into(), 1), ("geo".into(), 2)]);
}

#[test]
fn comments_and_string_literals_do_not_count() {
    let source = r###"
//! See [`crate::a`].
/// Uses `crate::b`.
// crate::c
/* crate::d /* nested crate::e */ crate::f */
fn f() -> &'static str {
    let _ = ('"', '\'', b'"', "crate::g \" crate::h", r#"crate::i " }"#, br"crate::j");
    "crate::k"
}
pub(crate) use crate::kept;
"###;
    assert_eq!(names(&referenced(source)), ["kept"]);
}

#[test]
fn a_path_in_an_attribute_string_counts() {
    let source = "#[serde(default, deserialize_with = \"crate::drone::geo_polygon\")]\n\
                  #[error(\"crate::not_a_path, a message\")]\n";
    assert_eq!(names(&referenced(source)), ["drone"]);
}

#[test]
fn test_modules_do_not_count() {
    let source = r#"use crate::before;

#[cfg(test)]
mod tests {
    use crate::y;
    fn braces() -> (char, char, &'static str) {
        ('}', '{', "}}} {")
    }
    // }
}

#[cfg(test)]
#[allow(dead_code)]
pub(crate) mod testing {
    use crate::z;
}

#[cfg(test)]
use crate::helper;

use crate::after;
"#;
    let found = referenced(source);
    // A `#[cfg(test)]` item that is not a module still counts: only whole test modules are skipped.
    assert_eq!(found, [("before".into(), 1), ("helper".into(), 19), ("after".into(), 21)]);
}

#[test]
fn an_unterminated_string_is_reported() {
    assert!(code_only("let s = \"crate::a;\n").unwrap_err().contains("line 1"));
}

#[test]
fn lib_rs_modules_are_its_mod_declarations() {
    let lib = "//! Docs: mod fake;\npub mod a;\nmod b;\n#[cfg(feature = \"x\")]\npub(crate) mod c;\n\
               pub use a::Thing;\n";
    assert_eq!(declared_modules(&code_only(lib).expect("scannable")), ["a", "b", "c"]);
}

#[test]
fn each_looping_link_appears_in_one_shortest_loop() {
    let links: BTreeSet<(String, String)> =
        [("ingest", "config"), ("config", "ingest"), ("config", "rules"), ("rules", "track")]
            .into_iter()
            .chain([("track", "config"), ("frame", "geometry")])
            .map(|(from, to)| (from.to_string(), to.to_string()))
            .collect();
    let cycles = shortest_cycles(&links);
    // Each loop starts at its lowest-layer module (config is below the stages).
    assert_eq!(
        cycles,
        [vec!["config", "ingest", "config"], vec!["config", "rules", "track", "config"]]
    );
}

#[test]
fn the_layer_table_lists_each_module_once() {
    let mut seen = BTreeSet::new();
    for (_, modules) in LAYERS {
        for module in *modules {
            assert!(seen.insert(module), "{module} is in two layers");
        }
    }
}

/// A crate with `files` (path, text) in a temporary folder.
fn fake_crate(files: &[(&str, &str)]) -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("a temporary folder");
    for (path, text) in files {
        let path = root.path().join(path);
        fs::create_dir_all(path.parent().expect("in a folder")).expect("a folder");
        fs::write(path, text).expect("a written file");
    }
    root
}

#[test]
fn a_crate_that_keeps_to_its_layers_passes() {
    let root = fake_crate(&[
        ("src/lib.rs", "pub mod commands;\npub mod config;\npub mod geometry;\npub mod ingest;\n"),
        ("src/main.rs", "use cityeye::commands;\nfn main() { commands::run() }\n"),
        ("src/commands/mod.rs", "mod replay;\npub fn run() { replay::run() }\n"),
        ("src/commands/replay.rs", "use crate::{config::Config, ingest};\npub fn run() {}\n"),
        (
            "src/config.rs",
            "use crate::geometry::Point;\n#[cfg(test)]\nmod tests { use crate::ingest; }\n",
        ),
        ("src/geometry.rs", "pub struct Point;\n"),
        // A stage importing another stage, and itself: both fine.
        ("src/ingest.rs", "use crate::config::Config;\nuse crate::ingest::x;\n"),
    ]);
    let report = layout_report(root.path());
    assert!(report.is_empty(), "{report}");
}

#[test]
fn a_crate_that_breaks_the_rule_gets_every_problem_reported() {
    let root = fake_crate(&[
        ("src/lib.rs", "pub mod config;\npub mod ingest;\npub mod infer;\npub mod extra;\n"),
        ("src/main.rs", "fn main() {}\n"),
        // An upward import that also closes a loop with ingest.
        ("src/config.rs", "use crate::ingest::Mode;\n"),
        ("src/ingest.rs", "use crate::config::Config;\nfn f() { crate::infer::g() }\n"),
        ("src/infer/mod.rs", "mod decode;\n"),
        // Same layer, but a loop: ingest → infer → ingest.
        ("src/infer/decode.rs", "\n\nuse crate::{config, ingest::Frame};\n"),
        ("src/extra.rs", ""),
    ]);
    let report = layout_report(root.path());
    assert_eq!(report.unlisted, ["extra"]);
    let upward: Vec<_> = report.upward.iter().map(|(link, _)| link.clone()).collect();
    assert_eq!(upward, [("config".to_string(), "ingest".to_string())]);
    let cycles: Vec<_> = report.cycles.iter().map(|(cycle, _)| cycle.join(" → ")).collect();
    // infer → config closes a third loop, through the other two links.
    assert_eq!(
        cycles,
        ["config → ingest → config", "infer → ingest → infer", "config → ingest → infer → config"]
    );
    let text = report.to_string();
    assert!(text.contains("src/infer/decode.rs:3  use crate::{config, ingest::Frame};"), "{text}");
    assert!(text.contains("src/config.rs:1  use crate::ingest::Mode;"), "{text}");
}

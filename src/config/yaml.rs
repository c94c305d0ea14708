//! A YAML tree that remembers where every node came from.
//!
//! Why not serde_yaml: it reports only the first error and gives no position for a value once
//! it has been deserialized, so a semantic error ("port 70000 out of range") could not name its
//! line, and a file with three mistakes would need three edit-and-retry rounds. Instead we take
//! the marked event stream of `yaml-rust2` (a maintained pure-Rust YAML 1.2 parser), build this
//! small tree with a line and column on every node, and let `config::load` walk it, collecting
//! every error with its position. Anchors, aliases and merge keys (`<<: *name`) are resolved
//! here, with a bound on how much aliases may copy; duplicate keys are kept (the loader reports
//! them). A file is one document: a second one is an error, not silently dropped.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A 1-based position in the source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone)]
pub enum Kind {
    /// A scalar's text. `plain` is false for quoted and block scalars (`"80"` stays a string);
    /// `block` is true for `|` and `>`, `literal` for `|` alone (its lines are the file's lines).
    Scalar {
        value: String,
        plain: bool,
        block: bool,
        literal: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone)]
pub struct Node {
    pub kind: Kind,
    pub pos: Pos,
}

impl Node {
    /// A plain `~`, `null` or empty scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar { value, plain: true, .. }
            if value.is_empty() || value == "~" || value == "null" || value == "Null" || value == "NULL")
    }

    /// The text of a scalar, or `None` for a sequence or mapping.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// What it weighs against the alias budget: one per node, a long text one per 64 bytes.
    fn weight(&self) -> usize {
        match &self.kind {
            Kind::Scalar { value, .. } => 1 + value.len() / 64,
            Kind::Seq(items) => 1 + items.iter().map(Node::weight).sum::<usize>(),
            Kind::Map(entries) => {
                1 + entries
                    .iter()
                    .map(|(k, v)| k.weight() + v.weight())
                    .sum::<usize>()
            }
        }
    }

    /// A plain scalar's text: a key as written without quotes.
    fn plain_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar {
                value, plain: true, ..
            } => Some(value),
            _ => None,
        }
    }

    /// What this node is, for "expected X, found Y" messages.
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            _ if self.is_null() => "nothing",
            Kind::Scalar { .. } => "a value",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }
}

/// A file that is not one YAML document autoheal can read: bad syntax, a second document,
/// aliases that copy too much, a bad merge key. It stops the parse: nothing else is reported.
#[derive(Debug, Clone)]
pub struct YamlError {
    pub pos: Pos,
    /// The whole message, e.g. `YAML syntax error: ...`.
    pub message: String,
    /// Width of the caret under `pos`.
    pub width: usize,
    pub help: String,
}

/// The lines of `src` as YAML counts them, so that a position names the line it quotes: a line
/// break is LF, CRLF or a lone CR (YAML 1.2, 5.4), and the parser counts a lone CR as one too.
pub fn lines(src: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(i) = rest.find(['\r', '\n']) {
        out.push(&rest[..i]);
        let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
        rest = &rest[i + skip..];
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// Parses one YAML document. An empty file gives `Ok(None)`.
pub fn parse(src: &str) -> Result<Option<Node>, YamlError> {
    let mut builder = Builder {
        lines: lines(src),
        ..Builder::default()
    };
    let mut parser = Parser::new_from_str(src);
    if let Err(e) = parser.load(&mut builder, true) {
        let m = e.marker();
        let mut pos = pos_of(m);
        if e.info().contains("tab") {
            pos = tab_at_or_after(&builder.lines, pos).unwrap_or(pos);
        }
        return Err(YamlError {
            pos,
            message: format!("YAML syntax error: {}", e.info()),
            width: 1,
            help:
                "fix the YAML syntax (indentation with spaces, `key: value`, `- ` for list items)"
                    .into(),
        });
    }
    if let Some(err) = builder.error {
        return Err(err);
    }
    Ok(builder.docs.into_iter().next())
}

/// Where the tab that a "found a tab" error is about stands. The scanner marks where it was
/// when it met the tab: the start of the scalar before it (a tab that indents the next line is
/// reported on the line above), or the column after an indenting tab. The culprit is the first
/// tab in the indentation of a line with content from the marked line on, else the first tab
/// after the mark.
fn tab_at_or_after(lines: &[&str], at: Pos) -> Option<Pos> {
    let from = at.line.checked_sub(1)?;
    for (i, line) in lines.iter().enumerate().skip(from) {
        let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
        let content = line[indent..].chars().next();
        if content.is_none() || content == Some('#') {
            continue;
        }
        if let Some(tab) = line[..indent].find('\t') {
            return Some(Pos {
                line: i + 1,
                col: tab + 1,
            });
        }
    }
    let line = lines.get(from)?;
    let skip = at.col.saturating_sub(1);
    let tab = line.chars().skip(skip).position(|c| c == '\t')?;
    Some(Pos {
        line: at.line,
        col: skip + tab + 1,
    })
}

/// Where an empty value of `key` stands: just after the key's `:`. The parser marks an empty
/// value where it found the next token (the next key, or past the end of the file), so an
/// `script:` with nothing after it would be reported on the line below.
fn after_colon(lines: &[&str], key: &Node) -> Option<Pos> {
    let line: Vec<char> = lines.get(key.pos.line.checked_sub(1)?)?.chars().collect();
    let mut i = key.pos.col.checked_sub(1)?;
    match (&key.kind, line.get(i)) {
        (
            Kind::Scalar {
                plain: true, value, ..
            },
            _,
        ) => i += value.chars().count(),
        (Kind::Scalar { .. }, Some(&q)) if q == '"' || q == '\'' => {
            // Past the closing quote: `\"` escapes one in double quotes, `''` in single.
            i += 1;
            while let Some(&c) = line.get(i) {
                if q == '"' && c == '\\' {
                    i += 2;
                    continue;
                }
                if c == q {
                    if q == '\'' && line.get(i + 1) == Some(&'\'') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
        }
        _ => return None,
    }
    let colon = i + line.get(i..)?.iter().position(|c| *c == ':')?;
    Some(Pos {
        line: key.pos.line,
        col: colon + 2,
    })
}

fn pos_of(m: &Marker) -> Pos {
    // yaml-rust2 counts lines from 1 and columns from 0.
    Pos {
        line: m.line(),
        col: m.col() + 1,
    }
}

/// Builds the tree from parser events: a stack of open collections.
#[derive(Default)]
struct Builder<'a> {
    /// The source's lines ([`lines`]), to place what the parser marks elsewhere.
    lines: Vec<&'a str>,
    stack: Vec<(Node, usize)>,
    /// Keys of open mappings waiting for their value.
    pending_keys: Vec<Option<Node>>,
    /// Each anchored node with its weight.
    anchors: std::collections::HashMap<usize, (Node, usize)>,
    /// Weight copied so far by anchors and aliases, against [`crate::defaults::YAML_ALIAS_BUDGET`].
    copied: usize,
    docs: Vec<Node>,
    /// Where the current document starts (its `---`).
    doc_start: Pos,
    /// The first error; once set, further events are ignored.
    error: Option<YamlError>,
}

impl Builder<'_> {
    fn fail(&mut self, pos: Pos, width: usize, message: String, help: &str) {
        self.error.get_or_insert(YamlError {
            pos,
            message,
            width,
            help: help.into(),
        });
    }

    /// Counts a copy of `weight` against the alias budget; false (and an error at `pos`) past it.
    fn copy(&mut self, weight: usize, pos: Pos) -> bool {
        let budget = crate::defaults::YAML_ALIAS_BUDGET;
        self.copied = self.copied.saturating_add(weight);
        if self.copied > budget {
            self.fail(
                pos,
                1,
                format!("YAML aliases expand to more than {budget} nodes"),
                "an alias (`*name`) copies its anchor's whole value, and aliases inside an \
                 anchor multiply: write the values out or alias less",
            );
            return false;
        }
        true
    }

    fn push_value(&mut self, mut node: Node, anchor: usize) {
        // An empty value marked on another line than its key: it stands after the key's `:`.
        if is_empty_document(&node)
            && let Some(Some(key)) = self.pending_keys.last()
            && matches!(
                self.stack.last(),
                Some((
                    Node {
                        kind: Kind::Map(_),
                        ..
                    },
                    _
                ))
            )
            && key.pos.line != node.pos.line
            && let Some(pos) = after_colon(&self.lines, key)
        {
            node.pos = pos;
        }
        if anchor > 0 {
            let weight = node.weight();
            if !self.copy(weight, node.pos) {
                return;
            }
            self.anchors.insert(anchor, (node.clone(), weight));
        }
        match self.stack.last_mut() {
            // A second document with content: its services would be dropped without a word.
            None if !self.docs.is_empty() && !is_empty_document(&node) => {
                self.fail(
                    self.doc_start,
                    3,
                    "a second YAML document starts here; a config file is one document".into(),
                    "put every service in one mapping: remove this `---` and what it separates \
                     (or move it to its own file)",
                );
            }
            None => self.docs.push(node),
            Some((parent, _)) => match &mut parent.kind {
                Kind::Seq(items) => items.push(node),
                Kind::Map(entries) => {
                    let slot = self
                        .pending_keys
                        .last_mut()
                        .expect("a key slot per open map");
                    match slot.take() {
                        None => *slot = Some(node),
                        Some(key) => entries.push((key, node)),
                    }
                }
                Kind::Scalar { .. } => unreachable!("scalars are never pushed on the stack"),
            },
        }
    }
}

/// What a bare `---` at the end of a file gives: nothing.
fn is_empty_document(node: &Node) -> bool {
    matches!(&node.kind, Kind::Scalar { value, plain: true, .. } if value.is_empty())
}

/// Resolves the merge keys (`<<: *name`, `<<: [*a, *b]`) of a finished mapping: the merged
/// mappings' entries take the place of the `<<` entry, except keys the mapping gives itself
/// (explicit keys win) or an earlier merged mapping gave (the first wins), as in YAML 1.1.
fn merge(entries: &mut Vec<(Node, Node)>) -> Result<(), (Pos, String)> {
    if !entries.iter().any(|(k, _)| k.plain_str() == Some("<<")) {
        return Ok(());
    }
    let old = std::mem::take(entries);
    let mut taken: std::collections::HashSet<String> = old
        .iter()
        .filter(|(k, _)| k.plain_str() != Some("<<"))
        .filter_map(|(k, _)| k.as_str().map(str::to_string))
        .collect();
    for (k, v) in old {
        if k.plain_str() != Some("<<") {
            entries.push((k, v));
            continue;
        }
        let sources = match v.kind {
            Kind::Map(m) => vec![m],
            Kind::Seq(items) if items.iter().all(|i| matches!(i.kind, Kind::Map(_))) => items
                .into_iter()
                .map(|i| match i.kind {
                    Kind::Map(m) => m,
                    _ => unreachable!("checked above"),
                })
                .collect(),
            _ => {
                let found = v.describe();
                return Err((
                    v.pos,
                    format!(
                        "`<<` (a YAML merge key) takes a mapping or a list of mappings, found {found}"
                    ),
                ));
            }
        };
        for (mk, mv) in sources.into_iter().flatten() {
            let new = match mk.as_str() {
                Some(name) => taken.insert(name.to_string()),
                None => true,
            };
            if new {
                entries.push((mk, mv));
            }
        }
    }
    Ok(())
}

impl MarkedEventReceiver for Builder<'_> {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let pos = pos_of(&mark);
        match ev {
            Event::Scalar(value, style, anchor, _tag) => {
                let node = Node {
                    kind: Kind::Scalar {
                        value,
                        plain: style == TScalarStyle::Plain,
                        block: matches!(style, TScalarStyle::Literal | TScalarStyle::Folded),
                        literal: style == TScalarStyle::Literal,
                    },
                    pos,
                };
                self.push_value(node, anchor);
            }
            Event::SequenceStart(anchor, _) => self.stack.push((
                Node {
                    kind: Kind::Seq(Vec::new()),
                    pos,
                },
                anchor,
            )),
            Event::MappingStart(anchor, _) => {
                self.stack.push((
                    Node {
                        kind: Kind::Map(Vec::new()),
                        pos,
                    },
                    anchor,
                ));
                self.pending_keys.push(None);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((mut node, anchor)) = self.stack.pop() {
                    if let Kind::Map(entries) = &mut node.kind {
                        self.pending_keys.pop();
                        // The parser marks a block mapping where its first value starts; the
                        // operator looks for it where its first key stands.
                        if let Some((k, _)) = entries.first() {
                            node.pos = k.pos;
                        }
                        if let Err((at, message)) = merge(entries) {
                            self.fail(
                                at,
                                1,
                                message,
                                "write `<<: *name`, where `&name` anchors a mapping",
                            );
                            return;
                        }
                    }
                    self.push_value(node, anchor);
                }
            }
            Event::Alias(id) => match self.anchors.get(&id).map(|(_, w)| *w) {
                Some(weight) => {
                    if !self.copy(weight, pos) {
                        return;
                    }
                    let mut node = self.anchors[&id].0.clone();
                    node.pos = pos;
                    self.push_value(node, 0);
                }
                None => self.fail(
                    pos,
                    1,
                    "YAML syntax error: alias to an unknown anchor".into(),
                    "define the anchor (`&name`) before the alias (`*name`)",
                ),
            },
            Event::DocumentStart => self.doc_start = pos,
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let doc = parse("a:\n  b: 1\n  c: [x, y]\n").unwrap().unwrap();
        let Kind::Map(top) = &doc.kind else { panic!() };
        assert_eq!(top[0].0.pos, Pos { line: 1, col: 1 });
        let Kind::Map(inner) = &top[0].1.kind else {
            panic!()
        };
        assert_eq!(inner[0].0.pos, Pos { line: 2, col: 3 });
        assert_eq!(inner[0].1.pos, Pos { line: 2, col: 6 });
        assert_eq!(inner[1].0.as_str(), Some("c"));
    }

    #[test]
    fn aliases_resolve() {
        let doc = parse("a: &x {k: 1}\nb: *x\n").unwrap().unwrap();
        let Kind::Map(top) = &doc.kind else { panic!() };
        assert!(matches!(&top[1].1.kind, Kind::Map(m) if m.len() == 1));
        assert_eq!(top[1].1.pos.line, 2);
    }

    #[test]
    fn syntax_error_has_position() {
        let err = parse("a: 1\n b: 2\n").unwrap_err();
        assert_eq!(err.pos.line, 2, "{err:?}");
    }

    #[test]
    fn block_scalars_are_marked_at_their_first_content_line() {
        let doc = parse("a:\n  check: |\n    x\n    y\n").unwrap().unwrap();
        let Kind::Map(top) = &doc.kind else { panic!() };
        let Kind::Map(inner) = &top[0].1.kind else {
            panic!()
        };
        assert_eq!(inner[0].1.pos, Pos { line: 3, col: 5 });
    }

    #[test]
    fn literal_blocks_keep_leading_blank_lines() {
        let doc = parse("a: |\n\n  x\n").unwrap().unwrap();
        let Kind::Map(top) = &doc.kind else { panic!() };
        assert!(matches!(&top[0].1.kind,
            Kind::Scalar { value, literal: true, .. } if value == "\nx\n"));
        assert_eq!(top[0].1.pos.line, 3);
    }

    #[test]
    fn merge_keys_merge_and_explicit_keys_win() {
        let src = "a: &d {x: 1, y: 2}\nb: &e {z: 3, x: 9}\nc:\n  y: 5\n  <<: [*d, *e]\n";
        let doc = parse(src).unwrap().unwrap();
        let Kind::Map(top) = &doc.kind else { panic!() };
        let Kind::Map(c) = &top[2].1.kind else {
            panic!()
        };
        let pairs: Vec<(&str, &str)> = c
            .iter()
            .map(|(k, v)| (k.as_str().unwrap(), v.as_str().unwrap()))
            .collect();
        assert_eq!(pairs, [("y", "5"), ("x", "1"), ("z", "3")]);
        // A quoted "<<" is an ordinary key.
        let doc = parse("a: {\"<<\": 1}\n").unwrap().unwrap();
        let Kind::Map(top) = &doc.kind else { panic!() };
        assert!(matches!(&top[0].1.kind, Kind::Map(m) if m[0].0.as_str() == Some("<<")));
    }

    #[test]
    fn a_merge_key_needs_a_mapping() {
        let err = parse("a: &s 1\nb:\n  <<: *s\n").unwrap_err();
        assert_eq!(err.pos, Pos { line: 3, col: 7 });
        assert!(err.message.contains("found a value"), "{err:?}");
    }

    #[test]
    fn a_second_document_is_an_error_a_trailing_marker_is_not() {
        let err = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(err.pos, Pos { line: 2, col: 1 });
        assert!(parse("a: 1\n---\n").unwrap().is_some());
        assert!(parse("---\na: 1\n...\n").unwrap().is_some());
    }

    #[test]
    fn alias_expansion_is_bounded() {
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..30 {
            let p = i - 1;
            src.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
        }
        let err = parse(&src).unwrap_err();
        assert!(err.message.contains("aliases expand"), "{err:?}");
        // Ordinary reuse is well within the budget.
        let mut ok = String::from("d: &d [{name: db, host: h, port: 1}]\n");
        for i in 0..1000 {
            ok.push_str(&format!("s{i}: {{dep: *d}}\n"));
        }
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn lines_break_at_lf_crlf_and_a_lone_cr() {
        assert_eq!(lines("a\nb\r\nc\rd"), ["a", "b", "c", "d"]);
        assert_eq!(lines("a\r\r\n\n"), ["a", "", ""]);
        assert!(lines("").is_empty());
        // The parser counts the same lines.
        let doc = parse("a: 1\rb: 2\r\nc: 3\n").unwrap().unwrap();
        let Kind::Map(top) = &doc.kind else { panic!() };
        assert_eq!(top[2].0.pos, Pos { line: 3, col: 1 });
    }

    #[test]
    fn empty_is_none() {
        assert!(parse("").unwrap().is_none());
        assert!(parse("# only a comment\n").unwrap().is_none());
    }
}

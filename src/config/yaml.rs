//! A YAML tree that remembers where every node came from.
//!
//! Why not serde_yaml: it reports only the first error and gives no position for a value once
//! it has been deserialized, so a semantic error ("port 70000 out of range") could not name its
//! line, and a file with three mistakes would need three edit-and-retry rounds. Instead we take
//! the marked event stream of `yaml-rust2` (a maintained pure-Rust YAML 1.2 parser), build this
//! small tree with a line and column on every node, and let `config::load` walk it, collecting
//! every error with its position. Anchors and aliases are resolved here; duplicate keys are kept
//! (the loader reports them).

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
    /// A scalar's text. `plain` is false for quoted and block scalars (`"80"` stays a string).
    Scalar {
        value: String,
        plain: bool,
        block: bool,
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

/// A YAML syntax error with its position.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Parses one YAML document. An empty file gives `Ok(None)`.
pub fn parse(src: &str) -> Result<Option<Node>, SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(src);
    if let Err(e) = parser.load(&mut builder, true) {
        let m = e.marker();
        return Err(SyntaxError {
            pos: pos_of(m),
            message: e.info().to_string(),
        });
    }
    if let Some(err) = builder.error {
        return Err(err);
    }
    Ok(builder.docs.into_iter().next())
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
struct Builder {
    stack: Vec<(Node, usize)>,
    /// Keys of open mappings waiting for their value.
    pending_keys: Vec<Option<Node>>,
    anchors: std::collections::HashMap<usize, Node>,
    docs: Vec<Node>,
    error: Option<SyntaxError>,
}

impl Builder {
    fn push_value(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
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

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = pos_of(&mark);
        match ev {
            Event::Scalar(value, style, anchor, _tag) => {
                let node = Node {
                    kind: Kind::Scalar {
                        value,
                        plain: style == TScalarStyle::Plain,
                        block: matches!(style, TScalarStyle::Literal | TScalarStyle::Folded),
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
                    if let Kind::Map(entries) = &node.kind {
                        self.pending_keys.pop();
                        // The parser marks a block mapping where its first value starts; the
                        // operator looks for it where its first key stands.
                        if let Some((k, _)) = entries.first() {
                            node.pos = k.pos;
                        }
                    }
                    self.push_value(node, anchor);
                }
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(mut node) => {
                    node.pos = pos;
                    self.push_value(node, 0);
                }
                None => {
                    self.error.get_or_insert(SyntaxError {
                        pos,
                        message: "alias to an unknown anchor".into(),
                    });
                }
            },
            Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd
            | Event::Nothing => {}
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
    fn empty_is_none() {
        assert!(parse("").unwrap().is_none());
        assert!(parse("# only a comment\n").unwrap().is_none());
    }
}

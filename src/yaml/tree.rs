//! A YAML document as a tree of nodes, each with where it was written.
use std::collections::HashMap;

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle};

use super::YamlError;

/// Where a node starts: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Mark {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// Text as written; `plain` when unquoted (and so resolved by the
    /// core schema: null, booleans, numbers).
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: Kind,
    pub at: Mark,
}

/// Most nodes a document may expand to, aliases included: a few anchors
/// must not expand into billions of nodes.
const MAX_NODES: usize = 1_000_000;

impl Node {
    pub fn empty_map(at: Mark) -> Node {
        Node { kind: Kind::Map(Vec::new()), at }
    }

    /// A plain scalar that the core schema reads as null.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar { text, plain: true } if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The value of `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            Kind::Map(entries) => entries.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The node at a path like `notifiers[0].smtp.host`; as far as it exists.
    pub fn find(&self, path: &str) -> Option<&Node> {
        let mut node = self;
        for part in path.split('.') {
            let (name, indexes) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if !name.is_empty() {
                node = node.get(name)?;
            }
            for index in indexes.split('[').filter(|s| !s.is_empty()) {
                let i: usize = index.trim_end_matches(']').parse().ok()?;
                node = match &node.kind {
                    Kind::Seq(items) => items.get(i)?,
                    _ => return None,
                };
            }
        }
        Some(node)
    }

    /// Remove the mapping entry at `at` (its key starts there, or its value
    /// holds it), deepest first. False when there is none.
    pub fn remove_entry_at(&mut self, at: Mark) -> bool {
        match &mut self.kind {
            Kind::Scalar { .. } => false,
            Kind::Seq(items) => items.iter_mut().any(|n| n.remove_entry_at(at)),
            Kind::Map(entries) => {
                for (k, v) in entries.iter_mut() {
                    if k.at != at && v.remove_entry_at(at) {
                        return true;
                    }
                }
                let found = entries.iter().position(|(k, v)| k.at == at || v.at == at || v.contains(at));
                found.map(|i| entries.remove(i)).is_some()
            }
        }
    }

    fn contains(&self, at: Mark) -> bool {
        self.at == at
            || match &self.kind {
                Kind::Scalar { .. } => false,
                Kind::Seq(items) => items.iter().any(|n| n.contains(at)),
                Kind::Map(entries) => entries.iter().any(|(k, v)| k.contains(at) || v.contains(at)),
            }
    }
}

/// Parse a document into its tree: an empty document is an empty mapping.
/// Duplicate keys are errors, all of them reported.
pub fn parse(text: &str) -> Result<Node, Vec<YamlError>> {
    let mut builder = Builder { anchors: HashMap::new(), stack: Vec::new(), root: None, nodes: 0, errors: Vec::new() };
    let mut parser = Parser::new_from_str(text);
    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(|e| {
            let m = e.marker();
            vec![YamlError::at(Mark { line: m.line(), column: m.col() + 1 }, e.info())]
        })?;
        let at = Mark { line: span.start.line(), column: span.start.col() + 1 };
        builder.event(event, at)?;
    }
    if !builder.errors.is_empty() {
        return Err(builder.errors);
    }
    Ok(builder.root.unwrap_or_else(|| Node::empty_map(Mark { line: 1, column: 1 })))
}

struct Builder {
    /// Anchored nodes with their size in nodes.
    anchors: HashMap<usize, (Node, usize)>,
    /// Open collections: the node, its anchor id, and a pending map key.
    stack: Vec<(Node, usize, Option<Node>)>,
    root: Option<Node>,
    nodes: usize,
    errors: Vec<YamlError>,
}

impl Builder {
    fn event(&mut self, event: Event<'_>, at: Mark) -> Result<(), Vec<YamlError>> {
        match event {
            Event::Scalar(text, style, anchor, _) => {
                let node =
                    Node { kind: Kind::Scalar { text: text.into_owned(), plain: style == ScalarStyle::Plain }, at };
                self.finish(node, anchor)
            }
            Event::SequenceStart(_, anchor, _) => {
                self.stack.push((Node { kind: Kind::Seq(Vec::new()), at }, anchor, None));
                Ok(())
            }
            Event::MappingStart(_, anchor, _) => {
                self.stack.push((Node::empty_map(at), anchor, None));
                Ok(())
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor, _) = self.stack.pop().expect("a collection is open");
                self.finish(node, anchor)
            }
            Event::Alias(id) => {
                let (node, size) = self.anchors.get(&id).ok_or_else(|| vec![YamlError::at(at, "unknown alias")])?;
                self.nodes += size;
                if self.nodes > MAX_NODES {
                    return Err(vec![YamlError::at(at, "the document expands to too many nodes (aliases?)")]);
                }
                let node = Node { at, ..node.clone() };
                self.finish(node, 0)
            }
            _ => Ok(()),
        }
    }

    fn count(node: &Node) -> usize {
        1 + match &node.kind {
            Kind::Scalar { .. } => 0,
            Kind::Seq(items) => items.iter().map(Builder::count).sum(),
            Kind::Map(entries) => entries.iter().map(|(k, v)| Builder::count(k) + Builder::count(v)).sum(),
        }
    }

    /// A node is complete: put it where it belongs.
    fn finish(&mut self, node: Node, anchor: usize) -> Result<(), Vec<YamlError>> {
        self.nodes += 1;
        if anchor != 0 {
            self.anchors.insert(anchor, (node.clone(), Builder::count(&node)));
        }
        if self.nodes > MAX_NODES {
            return Err(vec![YamlError::at(node.at, "the document expands to too many nodes (aliases?)")]);
        }
        let Some((parent, _, pending_key)) = self.stack.last_mut() else {
            self.root.get_or_insert(node);
            return Ok(());
        };
        match &mut parent.kind {
            Kind::Seq(items) => items.push(node),
            Kind::Map(entries) => match pending_key.take() {
                None => *pending_key = Some(node),
                Some(key) => {
                    if let Some(name) = key.as_str()
                        && let Some((first, _)) = entries.iter().find(|(k, _)| k.as_str() == Some(name))
                    {
                        self.errors.push(YamlError::at(
                            key.at,
                            format!("duplicate key `{name}` (first at line {})", first.at.line),
                        ));
                    }
                    entries.push((key, node));
                }
            },
            Kind::Scalar { .. } => unreachable!("scalars hold nothing"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_know_where_they_were_written() {
        let doc = parse("a: 1\nlist:\n  - name: x\n    bad: 'q'\n  - {name: y}\n").unwrap();
        assert_eq!(doc.find("a").unwrap().at, Mark { line: 1, column: 4 });
        assert_eq!(doc.find("list[0].bad").unwrap().at, Mark { line: 4, column: 10 });
        assert_eq!(doc.find("list[1].name").unwrap().as_str(), Some("y"));
        assert!(doc.find("list[2]").is_none());
    }

    #[test]
    fn duplicate_keys_and_syntax_errors_are_located() {
        let errs = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(errs[0].at, Some(Mark { line: 3, column: 1 }));
        assert!(errs[0].message.contains("duplicate key `a`"), "{}", errs[0].message);
        let errs = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(errs[0].at.is_some());
    }

    #[test]
    fn aliases_expand_within_a_budget() {
        let doc = parse("base: &b {x: 1}\ncopy: *b\n").unwrap();
        assert_eq!(doc.find("copy.x").unwrap().as_str(), Some("1"));
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            bomb.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n",
                p = i - 1
            ));
        }
        assert!(parse(&bomb).unwrap_err()[0].message.contains("too many nodes"));
    }

    #[test]
    fn removing_an_entry_by_where_it_is() {
        let mut doc = parse("a: 1\nb:\n  c: 2\n  d: 3\n").unwrap();
        let d = doc.find("b.d").unwrap().at;
        assert!(doc.remove_entry_at(d));
        assert!(doc.find("b.d").is_none() && doc.find("b.c").is_some());
    }
}

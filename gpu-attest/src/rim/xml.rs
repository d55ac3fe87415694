//! A small namespace-aware XML tree for RIMs, built on `quick-xml`'s tokenizer.
//!
//! The tree keeps what canonical XML needs and nothing else: element and attribute names as
//! written (prefix and local part) with their resolved namespace URIs, the namespace
//! declarations of each element, attribute values after XML 1.0 §3.3.3 normalisation, text
//! after §2.11 line-end normalisation with references resolved, and processing instructions.
//! Comments are dropped (the signatures here use canonicalisation without comments). DOCTYPE
//! is refused, so no entity beyond the five predefined ones and character references can
//! appear. Depth and node count are bounded.

use crate::error::RimError;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::Reader;

/// The namespace bound to the `xml` prefix (Namespaces in XML 1.0 §3).
pub(crate) const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";
/// Deepest element nesting accepted (RIMs nest 4 deep).
pub(crate) const MAX_DEPTH: usize = 32;
/// Most nodes accepted in one document (RIMs hold about 200).
pub(crate) const MAX_NODES: usize = 20_000;

/// An attribute (namespace declarations are kept apart, in [`Element::ns_decls`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attr {
    pub prefix: Option<String>,
    pub local: String,
    pub ns: Option<String>,
    pub value: String,
}

/// A node of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    Element(Element),
    Text(String),
    Pi { target: String, data: String },
}

/// An element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Element {
    pub prefix: Option<String>,
    pub local: String,
    pub ns: Option<String>,
    /// Declarations on this element: (prefix, `""` for the default namespace; URI).
    pub ns_decls: Vec<(String, String)>,
    pub attrs: Vec<Attr>,
    pub children: Vec<Node>,
}

/// A document: processing instructions around one root element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Document {
    pub before: Vec<Node>,
    pub root: Element,
    pub after: Vec<Node>,
}

impl Element {
    /// Whether this element is `{ns}local`.
    pub fn is(&self, ns: &str, local: &str) -> bool {
        self.local == local && self.ns.as_deref() == Some(ns)
    }

    /// Element children.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            _ => None,
        })
    }

    /// The first child element `{ns}local`.
    pub fn child(&self, ns: &str, local: &str) -> Option<&Element> {
        self.elements().find(|e| e.is(ns, local))
    }

    /// An attribute in no namespace.
    pub fn attr(&self, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns.is_none() && a.local == local)
            .map(|a| a.value.as_str())
    }

    /// An attribute in namespace `ns`.
    pub fn attr_ns(&self, ns: &str, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns.as_deref() == Some(ns) && a.local == local)
            .map(|a| a.value.as_str())
    }

    /// Concatenated text children.
    pub fn text(&self) -> String {
        self.children
            .iter()
            .filter_map(|n| match n {
                Node::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The name as written.
    pub fn qname(&self) -> String {
        match &self.prefix {
            Some(p) => format!("{p}:{}", self.local),
            None => self.local.clone(),
        }
    }
}

fn xml_err(detail: impl std::fmt::Display) -> RimError {
    RimError::Xml {
        detail: detail.to_string(),
    }
}

fn utf8(bytes: &[u8]) -> Result<&str, RimError> {
    std::str::from_utf8(bytes).map_err(|_| RimError::NotUtf8)
}

fn split_qname(name: &str) -> Result<(Option<String>, String), RimError> {
    match name.split_once(':') {
        None => Ok((None, name.to_owned())),
        Some((p, l)) if !p.is_empty() && !l.is_empty() && !l.contains(':') => {
            Ok((Some(p.to_owned()), l.to_owned()))
        }
        Some(_) => Err(xml_err(format!("bad qualified name `{name}`"))),
    }
}

/// Line-end normalisation (XML 1.0 §2.11).
fn normalize_eol(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n")
}

/// Attribute-value normalisation for CDATA attributes (XML 1.0 §3.3.3), then references.
fn attribute_value(raw: &str) -> Result<String, RimError> {
    if raw.contains('<') {
        return Err(xml_err("`<` in attribute value"));
    }
    let spaced = raw.replace("\r\n", " ").replace(['\r', '\n', '\t'], " ");
    quick_xml::escape::unescape(&spaced)
        .map(|c| c.into_owned())
        .map_err(xml_err)
}

fn reference(r: &BytesRef<'_>) -> Result<char, RimError> {
    if let Some(c) = r.resolve_char_ref().map_err(xml_err)? {
        return Ok(c);
    }
    match utf8(r)? {
        "lt" => Ok('<'),
        "gt" => Ok('>'),
        "amp" => Ok('&'),
        "apos" => Ok('\''),
        "quot" => Ok('"'),
        other => Err(xml_err(format!("undeclared entity `{other}`"))),
    }
}

/// Namespace scopes: one frame of bindings per open element.
struct Scopes(Vec<Vec<(String, String)>>);

impl Scopes {
    fn lookup(&self, prefix: &str) -> Option<&str> {
        if prefix == "xml" {
            return Some(XML_NS);
        }
        self.0
            .iter()
            .rev()
            .flat_map(|f| f.iter())
            .find(|(p, _)| p == prefix)
            .map(|(_, u)| u.as_str())
    }

    fn resolve(&self, prefix: Option<&str>, is_attr: bool) -> Result<Option<String>, RimError> {
        match prefix {
            None if is_attr => Ok(None),
            None => Ok(self.lookup("").filter(|u| !u.is_empty()).map(str::to_owned)),
            Some(p) => self
                .lookup(p)
                .filter(|u| !u.is_empty())
                .map(|u| Some(u.to_owned()))
                .ok_or_else(|| RimError::UnboundPrefix {
                    prefix: p.to_owned(),
                }),
        }
    }
}

/// Builds an element (no children yet) and pushes its namespace frame.
fn open(start: &BytesStart<'_>, scopes: &mut Scopes) -> Result<Element, RimError> {
    let (prefix, local) = split_qname(utf8(start.name().as_ref())?)?;
    let mut ns_decls = Vec::new();
    let mut raw_attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(xml_err)?;
        let key = utf8(attr.key.as_ref())?;
        let value = attribute_value(utf8(&attr.value)?)?;
        if key == "xmlns" {
            ns_decls.push((String::new(), value));
        } else if let Some(p) = key.strip_prefix("xmlns:") {
            if p == "xml" || p == "xmlns" || value.is_empty() || p.contains(':') {
                return Err(RimError::Unsupported {
                    feature: "reserved or empty prefixed namespace declaration",
                });
            }
            ns_decls.push((p.to_owned(), value));
        } else {
            raw_attrs.push((key.to_owned(), value));
        }
    }
    scopes.0.push(ns_decls.clone());
    if prefix.as_deref() == Some("xmlns") {
        return Err(xml_err("element in the xmlns namespace"));
    }
    let ns = scopes.resolve(prefix.as_deref(), false)?;
    let mut attrs: Vec<Attr> = Vec::with_capacity(raw_attrs.len());
    for (key, value) in raw_attrs {
        let (prefix, local) = split_qname(&key)?;
        let ns = scopes.resolve(prefix.as_deref(), true)?;
        if attrs.iter().any(|a| a.ns == ns && a.local == local) {
            return Err(xml_err(format!("attribute `{key}` appears twice")));
        }
        attrs.push(Attr {
            prefix,
            local,
            ns,
            value,
        });
    }
    Ok(Element {
        prefix,
        local,
        ns,
        ns_decls,
        attrs,
        children: Vec::new(),
    })
}

/// Appends text to the open element, merging adjacent text.
fn push_text(stack: &mut [Element], text: &str) -> Result<(), RimError> {
    match stack.last_mut() {
        Some(el) => {
            if let Some(Node::Text(t)) = el.children.last_mut() {
                t.push_str(text);
            } else {
                el.children.push(Node::Text(text.to_owned()));
            }
            Ok(())
        }
        None if text.chars().all(|c| matches!(c, ' ' | '\t' | '\n' | '\r')) => Ok(()),
        None => Err(xml_err("text outside the root element")),
    }
}

/// Parses a whole document.
pub(crate) fn parse(text: &str) -> Result<Document, RimError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(false);
    reader.config_mut().check_end_names = true;
    reader.config_mut().expand_empty_elements = false;
    let mut scopes = Scopes(Vec::new());
    let mut stack: Vec<Element> = Vec::new();
    let mut before = Vec::new();
    let mut after = Vec::new();
    let mut root: Option<Element> = None;
    let mut nodes = 0usize;
    loop {
        let event = reader.read_event().map_err(xml_err)?;
        nodes = nodes.saturating_add(1);
        if nodes > MAX_NODES {
            return Err(RimError::Limit {
                limit: "node count",
            });
        }
        match event {
            Event::Decl(_) if root.is_none() && stack.is_empty() && before.is_empty() => {}
            Event::Decl(_) => return Err(xml_err("misplaced xml declaration")),
            Event::DocType(_) => return Err(RimError::Doctype),
            Event::Comment(_) => {}
            Event::PI(pi) => {
                let node = Node::Pi {
                    target: utf8(pi.target())?.to_owned(),
                    data: normalize_eol(utf8(pi.content())?.trim_start()),
                };
                match (stack.last_mut(), &root) {
                    (Some(el), _) => el.children.push(node),
                    (None, None) => before.push(node),
                    (None, Some(_)) => after.push(node),
                }
            }
            Event::Start(start) => {
                if root.is_some() {
                    return Err(xml_err("second root element"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(RimError::Limit { limit: "depth" });
                }
                let el = open(&start, &mut scopes)?;
                stack.push(el);
            }
            Event::Empty(start) => {
                if root.is_some() {
                    return Err(xml_err("second root element"));
                }
                let el = open(&start, &mut scopes)?;
                scopes.0.pop();
                match stack.last_mut() {
                    Some(parent) => parent.children.push(Node::Element(el)),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                let el = stack.pop().ok_or_else(|| xml_err("unmatched end tag"))?;
                scopes.0.pop();
                match stack.last_mut() {
                    Some(parent) => parent.children.push(Node::Element(el)),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => push_text(&mut stack, &normalize_eol(utf8(&t)?))?,
            Event::CData(t) => {
                if stack.is_empty() {
                    return Err(xml_err("cdata outside the root element"));
                }
                push_text(&mut stack, &normalize_eol(utf8(&t)?))?;
            }
            Event::GeneralRef(r) => {
                if stack.is_empty() {
                    return Err(xml_err("reference outside the root element"));
                }
                push_text(&mut stack, reference(&r)?.encode_utf8(&mut [0u8; 4]))?;
            }
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(xml_err("document ends inside an element"));
    }
    let root = root.ok_or_else(|| xml_err("no root element"))?;
    Ok(Document {
        before,
        root,
        after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_references_and_normalisation() {
        let d = parse(
            "<?xml version=\"1.0\"?>\n<a xmlns=\"urn:d\" xmlns:p=\"urn:p\"><p:b p:x=\"1&#xA;\r\n2\" y='&lt;'>t&amp;\r\nu<![CDATA[<]]></p:b><!-- c --></a>\n",
        )
        .unwrap();
        assert_eq!(d.root.ns.as_deref(), Some("urn:d"));
        let b = d.root.child("urn:p", "b").unwrap();
        assert_eq!(b.attr_ns("urn:p", "x"), Some("1\n 2"));
        assert_eq!(b.attr("y"), Some("<"));
        assert_eq!(b.text(), "t&\nu<");
        assert_eq!(d.root.children.len(), 1);
    }

    #[test]
    fn refusals() {
        assert_eq!(
            parse("<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>"),
            Err(RimError::Doctype)
        );
        assert!(matches!(
            parse("<p:a/>"),
            Err(RimError::UnboundPrefix { .. })
        ));
        assert!(parse("<a><b></a>").is_err());
        assert!(parse("<a x='1' x='2'/>").is_err());
        assert!(parse("<a xmlns:p='u' xmlns:q='u' p:x='1' q:x='2'/>").is_err());
        assert!(parse("<a/><b/>").is_err());
        assert!(parse("<a>&bogus;</a>").is_err());
        assert!(parse("x<a/>").is_err());
        let deep = "<a>".repeat(MAX_DEPTH + 1);
        assert_eq!(parse(&deep), Err(RimError::Limit { limit: "depth" }));
    }
}

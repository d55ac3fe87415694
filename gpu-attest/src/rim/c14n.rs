//! Canonical XML 1.1 without comments (W3C REC xml-c14n11, 2008), for the two node-sets an
//! enveloped XML signature needs:
//!
//! - the whole document minus one element (the `ds:Signature`), for the reference digest
//!   (`URI=""` + enveloped-signature transform);
//! - the subtree of one element (`ds:SignedInfo`), for the signature value.
//!
//! Rules applied (§2.1 of the spec, which C14N 1.1 keeps from 1.0): UTF-8 output, no XML
//! declaration, empty elements as start/end pairs, namespace declarations before attributes,
//! the default namespace first then by prefix, attributes by (namespace URI, local name), a
//! namespace node rendered only where the nearest rendered ancestor lacks the same binding,
//! `xmlns=""` only to undo a non-empty default, the §2.3 escapes for text and attribute values,
//! processing instructions outside the root separated by line feeds.
//!
//! Not implemented, and refused where it would matter: `xml:*` attribute inheritance and
//! `xml:base` fix-up for a subtree whose ancestors carry `xml:*` attributes (C14N 1.1 §2.4);
//! such a RIM is rejected with [`RimError::Unsupported`].

use super::xml::{Document, Element, Node, XML_NS};
use crate::error::RimError;
use std::collections::BTreeMap;

/// In-scope namespace bindings: prefix (`""` = default) → URI.
type NsMap = BTreeMap<String, String>;

fn escape_text(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            _ => out.push(c),
        }
    }
}

fn escape_attr(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            _ => out.push(c),
        }
    }
}

fn pi(target: &str, data: &str, out: &mut String) {
    out.push_str("<?");
    out.push_str(target);
    if !data.is_empty() {
        out.push(' ');
        out.push_str(data);
    }
    out.push_str("?>");
}

/// Renders `el` and its descendants. `inherited` are the bindings in scope at the parent;
/// `ctx` those of the nearest rendered ancestor (empty at the apex of a subtree).
fn render(
    el: &Element,
    inherited: &NsMap,
    ctx: &NsMap,
    exclude: Option<&Element>,
    out: &mut String,
) {
    let mut in_scope = inherited.clone();
    for (p, u) in &el.ns_decls {
        in_scope.insert(p.clone(), u.clone());
    }
    out.push('<');
    out.push_str(&el.qname());
    // BTreeMap order: "" (default) first, then prefixes.
    for (p, u) in &in_scope {
        let parent = ctx.get(p).map(String::as_str);
        let render = if p.is_empty() {
            if u.is_empty() {
                parent.is_some_and(|pu| !pu.is_empty())
            } else {
                parent != Some(u.as_str())
            }
        } else {
            parent != Some(u.as_str())
        };
        if render {
            if p.is_empty() {
                out.push_str(" xmlns=\"");
            } else {
                out.push_str(" xmlns:");
                out.push_str(p);
                out.push_str("=\"");
            }
            escape_attr(u, out);
            out.push('"');
        }
    }
    let mut attrs: Vec<_> = el.attrs.iter().collect();
    attrs.sort_by(|a, b| {
        (a.ns.as_deref().unwrap_or(""), a.local.as_str())
            .cmp(&(b.ns.as_deref().unwrap_or(""), b.local.as_str()))
    });
    for a in attrs {
        out.push(' ');
        if let Some(p) = &a.prefix {
            out.push_str(p);
            out.push(':');
        }
        out.push_str(&a.local);
        out.push_str("=\"");
        escape_attr(&a.value, out);
        out.push('"');
    }
    out.push('>');
    for child in &el.children {
        match child {
            Node::Element(c) if exclude.is_some_and(|x| std::ptr::eq(x, c)) => {}
            Node::Element(c) => render(c, &in_scope, &in_scope, exclude, out),
            Node::Text(t) => escape_text(t, out),
            Node::Pi { target, data } => pi(target, data, out),
        }
    }
    out.push_str("</");
    out.push_str(&el.qname());
    out.push('>');
}

/// The document without `exclude` (and its subtree), canonicalised.
pub(crate) fn document(doc: &Document, exclude: Option<&Element>) -> Vec<u8> {
    let mut out = String::new();
    for node in &doc.before {
        if let Node::Pi { target, data } = node {
            pi(target, data, &mut out);
            out.push('\n');
        }
    }
    let empty = NsMap::new();
    render(&doc.root, &empty, &empty, exclude, &mut out);
    for node in &doc.after {
        if let Node::Pi { target, data } = node {
            out.push('\n');
            pi(target, data, &mut out);
        }
    }
    out.into_bytes()
}

/// The subtree of the last element of `path` canonicalised as a document subset with that
/// element as apex; `path` lists the elements from a child of the root down to the apex, so
/// the namespace declarations of the root and of every ancestor are inherited.
pub(crate) fn subtree(doc: &Document, path: &[&Element]) -> Result<Vec<u8>, RimError> {
    let (apex, ancestors) = path
        .split_last()
        .ok_or(RimError::Missing { what: "SignedInfo" })?;
    let mut inherited = NsMap::new();
    for a in std::iter::once(&&doc.root).chain(ancestors.iter()) {
        if a.attrs.iter().any(|at| at.ns.as_deref() == Some(XML_NS)) {
            return Err(RimError::Unsupported {
                feature: "xml:* attributes on ancestors of SignedInfo",
            });
        }
        for (p, u) in &a.ns_decls {
            inherited.insert(p.clone(), u.clone());
        }
    }
    let mut out = String::new();
    render(apex, &inherited, &NsMap::new(), None, &mut out);
    Ok(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::super::xml::parse;
    use super::*;

    fn c14n(s: &str) -> String {
        String::from_utf8(document(&parse(s).unwrap(), None)).unwrap()
    }

    #[test]
    fn w3c_c14n_examples() {
        // C14N 1.0 §3.3 "Start and End Tags" (without the DTD-dependent parts).
        assert_eq!(
            c14n("<doc><e1   /><e2   ></e2><e3   name = \"elem3\"   id=\"elem3\"   /><e5 a:attr=\"out\" b:attr=\"sorted\" attr2=\"all\" attr=\"I'm\" xmlns:b=\"http://www.ietf.org\" xmlns:a=\"http://www.w3.org\" xmlns=\"http://example.org\"/></doc>"),
            "<doc><e1></e1><e2></e2><e3 id=\"elem3\" name=\"elem3\"></e3><e5 xmlns=\"http://example.org\" xmlns:a=\"http://www.w3.org\" xmlns:b=\"http://www.ietf.org\" attr=\"I'm\" attr2=\"all\" b:attr=\"sorted\" a:attr=\"out\"></e5></doc>"
        );
        // §3.4 "Character Modifications and Character References" (subset).
        assert_eq!(
            c14n("<doc><text>First line&#x0d;&#10;Second line</text><value>&#x32;</value><compute><![CDATA[value>\"0\" && value<\"10\" ?\"valid\":\"error\"]]></compute><norm attr=' &apos;   &#x20;&#13;&#xa;&#9;   &apos; '/></doc>"),
            "<doc><text>First line&#xD;\nSecond line</text><value>2</value><compute>value&gt;\"0\" &amp;&amp; value&lt;\"10\" ?\"valid\":\"error\"</compute><norm attr=\" '    &#xD;&#xA;&#x9;   ' \"></norm></doc>"
        );
    }

    #[test]
    fn superfluous_and_undeclared_namespaces() {
        assert_eq!(
            c14n("<a xmlns='urn:x' xmlns:p='urn:p'><b xmlns='urn:x' xmlns:p='urn:p'><c xmlns=''/></b></a>"),
            "<a xmlns=\"urn:x\" xmlns:p=\"urn:p\"><b><c xmlns=\"\"></c></b></a>"
        );
    }

    #[test]
    fn subset_apex_renders_inherited_namespaces_and_exclusion_keeps_whitespace() {
        let d = parse(
            "<r xmlns='urn:r' xmlns:q='urn:q'>\n<s xmlns:ds='urn:ds'><ds:i a='1'/></s>\n</r>",
        )
        .unwrap();
        let s = d.root.elements().next().unwrap();
        let i = s.elements().next().unwrap();
        assert_eq!(
            String::from_utf8(subtree(&d, &[s, i]).unwrap()).unwrap(),
            "<ds:i xmlns=\"urn:r\" xmlns:ds=\"urn:ds\" xmlns:q=\"urn:q\" a=\"1\"></ds:i>"
        );
        assert_eq!(
            String::from_utf8(document(&d, Some(s))).unwrap(),
            "<r xmlns=\"urn:r\" xmlns:q=\"urn:q\">\n\n</r>"
        );
    }
}

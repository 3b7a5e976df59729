//! Zimbra's SOAP envelopes, in its three forms (dialects.md §4; `SoapEngine.java`,
//! `Soap12Protocol.java`, `Soap11Protocol.java`, `SoapJSProtocol.java`, `Element.java`):
//! SOAP 1.2 and SOAP 1.1 XML, and Zimbra's JSON form. A request is read into one
//! [`Element`] tree whatever its form — XML attributes and child elements alike, JSON
//! scalars and objects alike — and an answer is written back in the form asked.
//!
//! XML is read with quick-xml, which expands no entity but the five predefined ones and
//! character references: a document type declaration is refused outright (no DTD, so no
//! external entity and no entity expansion), as is nesting deeper than [`MAX_DEPTH`]. The
//! body limit bounds the size before parsing starts.

use quick_xml::NsReader;
use quick_xml::XmlVersion;
use quick_xml::escape::{escape, resolve_xml_entity};
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use serde_json::{Map, Value};
use std::fmt::Write as _;

/// SOAP 1.2's envelope namespace.
pub const SOAP12: &str = "http://www.w3.org/2003/05/soap-envelope";
/// SOAP 1.1's envelope namespace.
pub const SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// Zimbra's header and error namespace.
pub const URN_ZIMBRA: &str = "urn:zimbra";
/// The JSON envelope's namespace.
pub const URN_SOAP: &str = "urn:zimbraSoap";
/// Deepest element nesting read (an envelope, its body, a request and a few levels).
pub const MAX_DEPTH: usize = 32;

/// The form of a request, and of its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// SOAP 1.2 XML.
    Soap12,
    /// SOAP 1.1 XML.
    Soap11,
    /// Zimbra's JSON form.
    Json,
}

/// A scalar of an answer: written as text in XML, as its JSON type in JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// A string.
    Text(String),
    /// A whole number (JSON number).
    Number(i64),
    /// A boolean (JSON `true`/`false`).
    Bool(bool),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Scalar::Text(s) => s.clone(),
            Scalar::Number(n) => n.to_string(),
            Scalar::Bool(true) => "1".into(),
            Scalar::Bool(false) => "0".into(),
        }
    }

    fn json(&self) -> Value {
        match self {
            Scalar::Text(s) => s.clone().into(),
            Scalar::Number(n) => (*n).into(),
            Scalar::Bool(b) => (*b).into(),
        }
    }
}

/// How a value of an element is written: an XML attribute, or an XML child element with
/// text (Zimbra's `Disposition.CONTENT`); either way a scalar key in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// `name="value"`.
    Attribute,
    /// `<name>value</name>`.
    Content,
}

/// What an element holds, in order (Zimbra writes them in the order they were added).
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A value: an XML attribute or child element with text, a JSON scalar.
    Value(String, Scalar, Disposition),
    /// A child element, and whether it is the only one of its name (JSON: an object, else
    /// an array of objects).
    Child(Element, bool),
}

/// An element of a request or an answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Element {
    /// Local name.
    pub name: String,
    /// Namespace (XML `xmlns`, JSON `_jsns`), if any.
    pub ns: Option<String>,
    /// Values and child elements, in order.
    pub items: Vec<Item>,
    /// Text (`_content`).
    pub text: Option<String>,
}

impl Element {
    /// An element `name` in namespace `ns`.
    pub fn new(name: &str, ns: Option<&str>) -> Self {
        Element {
            name: name.to_owned(),
            ns: ns.map(str::to_owned),
            ..Element::default()
        }
    }

    /// Adds an attribute.
    pub fn attr(mut self, name: &str, value: Scalar) -> Self {
        self.items
            .push(Item::Value(name.to_owned(), value, Disposition::Attribute));
        self
    }

    /// Adds a value written as a child element in XML and a scalar in JSON.
    pub fn content(mut self, name: &str, value: Scalar) -> Self {
        self.items
            .push(Item::Value(name.to_owned(), value, Disposition::Content));
        self
    }

    /// Adds a child element that may repeat (JSON: an array of objects).
    pub fn child(mut self, child: Element) -> Self {
        self.items.push(Item::Child(child, false));
        self
    }

    /// Adds a child element that is the only one of its name (JSON: an object).
    pub fn unique_child(mut self, child: Element) -> Self {
        self.items.push(Item::Child(child, true));
        self
    }

    /// Sets the text.
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    /// The child elements.
    pub fn children(&self) -> impl Iterator<Item = &Element> {
        self.items.iter().filter_map(|item| match item {
            Item::Child(child, _) => Some(child),
            Item::Value(..) => None,
        })
    }

    /// The first child element named `name`.
    pub fn first(&self, name: &str) -> Option<&Element> {
        self.children().find(|c| c.name == name)
    }

    /// A value as Zimbra's `getAttribute` reads it: the attribute `name`, else the text of
    /// the child element `name`.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.items
            .iter()
            .find_map(|item| match item {
                Item::Value(n, Scalar::Text(s), _) if n == name => Some(s.as_str()),
                _ => None,
            })
            .or_else(|| self.first(name).and_then(|c| c.text.as_deref()))
    }
}

/// A request as read from its envelope.
#[derive(Debug)]
pub struct Envelope {
    /// The form the answer takes: the request's, unless its header's
    /// `<format type="js"|"xml">` asks for another.
    pub answer_form: Form,
    /// `<context><authToken>` of the header, if any.
    pub auth_token: Option<String>,
    /// The request: the body's first element.
    pub request: Element,
}

/// Why a request could not be read: Zimbra's `service.PARSE_ERROR` or
/// `service.INVALID_REQUEST`, with its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// `parse error: …`.
    Parse(String),
    /// `invalid request: …`, with the form the envelope was in when that is known.
    Invalid(String, Option<Form>),
}

/// Reads a request body: XML when its first non-blank byte is `<`, else JSON (as Zimbra
/// decides, whatever the `Content-Type`).
pub fn read(body: &[u8]) -> Result<Envelope, ReadError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let start = body.iter().position(|b| !b.is_ascii_whitespace());
    match start.map(|i| body[i]) {
        None => Err(ReadError::Parse("empty request payload".into())),
        Some(b'<') => read_xml(body),
        Some(_) => read_json(body),
    }
}

fn parse_error(e: impl std::fmt::Display) -> ReadError {
    ReadError::Parse(e.to_string())
}

/// Reads an XML document into its root element.
fn xml_tree(body: &[u8]) -> Result<Element, ReadError> {
    let text = std::str::from_utf8(body).map_err(|_| parse_error("the document is not UTF-8"))?;
    let mut reader = NsReader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let (ns, event) = reader.read_resolved_event().map_err(parse_error)?;
        let ns = match ns {
            ResolveResult::Bound(n) => Some(n.0.to_owned()),
            ResolveResult::Unbound => None,
            ResolveResult::Unknown(prefix) => {
                return Err(parse_error(format!("unbound namespace prefix {prefix}")));
            }
        };
        match event {
            Event::DocType(_) => {
                return Err(parse_error("document type declarations are not allowed"));
            }
            Event::Start(ref e) | Event::Empty(ref e) => {
                if root.is_some() {
                    return Err(parse_error("content after the root element"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(parse_error(format!(
                        "elements nested deeper than {MAX_DEPTH}"
                    )));
                }
                let mut element = Element {
                    name: e.local_name().as_ref().to_owned(),
                    ns,
                    ..Element::default()
                };
                for attribute in e.attributes() {
                    let attribute = attribute.map_err(parse_error)?;
                    let key = attribute.key;
                    if key.as_ref().starts_with("xmlns") {
                        continue;
                    }
                    let value = attribute
                        .normalized_value(XmlVersion::Implicit1_0)
                        .map_err(parse_error)?;
                    element.items.push(Item::Value(
                        key.local_name().as_ref().to_owned(),
                        Scalar::Text(value.into_owned()),
                        Disposition::Attribute,
                    ));
                }
                if matches!(event, Event::Empty(_)) {
                    close(&mut stack, &mut root, element);
                } else {
                    stack.push(element);
                }
            }
            Event::End(_) => {
                let element = stack
                    .pop()
                    .ok_or_else(|| parse_error("unbalanced end tag"))?;
                close(&mut stack, &mut root, element);
            }
            Event::Text(ref t) => append(&mut stack, &t.xml10_content())?,
            Event::CData(ref c) => {
                let text: &str = c.as_ref();
                append(&mut stack, text)?;
            }
            Event::GeneralRef(ref r) => {
                let resolved = match r.resolve_char_ref().map_err(parse_error)? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = r.xml10_content();
                        resolve_xml_entity(&name)
                            .ok_or_else(|| parse_error(format!("unknown entity &{name};")))?
                            .to_owned()
                    }
                };
                append(&mut stack, &resolved)?;
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(parse_error("the document ends inside an element"));
    }
    root.ok_or_else(|| parse_error("no root element"))
}

fn close(stack: &mut [Element], root: &mut Option<Element>, element: Element) {
    match stack.last_mut() {
        Some(parent) => parent.items.push(Item::Child(element, false)),
        None => *root = Some(element),
    }
}

/// Text between tags: kept on the element it is in (whitespace between elements is
/// dropped); text outside the root must be blank.
fn append(stack: &mut [Element], text: &str) -> Result<(), ReadError> {
    match stack.last_mut() {
        Some(element) => {
            element.text.get_or_insert_with(String::new).push_str(text);
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err(parse_error("text outside the root element")),
    }
}

fn read_xml(body: &[u8]) -> Result<Envelope, ReadError> {
    let root = xml_tree(body)?;
    if root.name != "Envelope" {
        return Err(ReadError::Invalid(
            "unable to determine SOAP version".into(),
            None,
        ));
    }
    let form = match root.ns.as_deref() {
        Some(SOAP12) => Form::Soap12,
        Some(SOAP11) => Form::Soap11,
        _ => {
            return Err(ReadError::Invalid(
                "unable to determine SOAP version".into(),
                None,
            ));
        }
    };
    let soap_ns = root.ns.clone();
    let in_soap = |e: &&Element, name: &str| e.name == name && e.ns == soap_ns;
    let header = root.children().find(|c| in_soap(c, "Header"));
    let body = root
        .children()
        .find(|c| in_soap(c, "Body"))
        .ok_or_else(|| ReadError::Invalid("no SOAP body".into(), Some(form)))?;
    let mut requests = body.children();
    let request = requests
        .next()
        .cloned()
        .ok_or_else(|| ReadError::Invalid("empty SOAP body".into(), Some(form)))?;
    if requests.next().is_some() {
        return Err(one_request(form));
    }
    let context = header.and_then(|h| h.first("context"));
    let (auth_token, format) = context_values(context);
    let answer_form = match format.as_deref() {
        Some("js") => Form::Json,
        _ => form,
    };
    Ok(Envelope {
        answer_form,
        auth_token,
        request,
    })
}

fn one_request(form: Form) -> ReadError {
    ReadError::Invalid(
        "one request per body (BatchRequest is not served)".into(),
        Some(form),
    )
}

/// The header context's `authToken` and `format type`.
fn context_values(context: Option<&Element>) -> (Option<String>, Option<String>) {
    let Some(context) = context else {
        return (None, None);
    };
    let token = context
        .value("authToken")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    let format = context
        .first("format")
        .and_then(|f| f.value("type"))
        .map(str::to_owned);
    (token, format)
}

fn read_json(body: &[u8]) -> Result<Envelope, ReadError> {
    let value: Value = crate::json::from_slice(body).map_err(parse_error)?;
    let Value::Object(mut envelope) = value else {
        return Err(parse_error("the document must be a JSON object"));
    };
    let Some(Value::Object(body)) = envelope.remove("Body") else {
        return Err(ReadError::Invalid("no Body".into(), Some(Form::Json)));
    };
    if body.len() > 1 {
        return Err(one_request(Form::Json));
    }
    let Some((name, request)) = body.into_iter().next() else {
        return Err(ReadError::Invalid("empty Body".into(), Some(Form::Json)));
    };
    let request = json_element(&name, request, 0)?;
    let context = match envelope.remove("Header") {
        Some(Value::Object(mut header)) => match header.remove("context") {
            Some(context) => Some(json_element("context", context, 0)?),
            None => None,
        },
        _ => None,
    };
    let (auth_token, format) = context_values(context.as_ref());
    let answer_form = match format.as_deref() {
        Some("xml") => Form::Soap12,
        _ => Form::Json,
    };
    Ok(Envelope {
        answer_form,
        auth_token,
        request,
    })
}

/// A JSON value as an element named `name`: an object's scalars are attributes, its
/// objects and arrays of objects child elements, `_content` its text and `_jsns` its
/// namespace; a scalar is an element with that text.
fn json_element(name: &str, value: Value, depth: usize) -> Result<Element, ReadError> {
    if depth >= MAX_DEPTH {
        return Err(parse_error(format!(
            "objects nested deeper than {MAX_DEPTH}"
        )));
    }
    let mut element = Element::new(name, None);
    let fields = match value {
        Value::Object(fields) => fields,
        scalar => {
            element.text = json_text(&scalar);
            return Ok(element);
        }
    };
    for (key, value) in fields {
        match (key.as_str(), value) {
            ("_content", value) => element.text = json_text(&value),
            ("_jsns", Value::String(ns)) => element.ns = Some(ns),
            (_, Value::Object(child)) => element.items.push(Item::Child(
                json_element(&key, Value::Object(child), depth + 1)?,
                true,
            )),
            (_, Value::Array(items)) => {
                for item in items {
                    element
                        .items
                        .push(Item::Child(json_element(&key, item, depth + 1)?, false));
                }
            }
            (_, scalar) => {
                if let Some(text) = json_text(&scalar) {
                    element.items.push(Item::Value(
                        key.clone(),
                        Scalar::Text(text),
                        Disposition::Attribute,
                    ));
                }
            }
        }
    }
    Ok(element)
}

fn json_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Writes an answer: `body` (a response or a `Fault`) in `form`, with the header context
/// Zimbra sends (`header`: whether there is one; faults of unreadable requests have none).
pub fn write(form: Form, body: &Element, header: bool) -> String {
    match form {
        Form::Json => {
            let mut envelope = Map::new();
            if header {
                envelope.insert(
                    "Header".into(),
                    serde_json::json!({"context": {"_jsns": URN_ZIMBRA}}),
                );
            }
            let mut inner = Map::new();
            inner.insert(json_name(&body.name), json_of(body, Some(URN_SOAP)));
            envelope.insert("Body".into(), Value::Object(inner));
            envelope.insert("_jsns".into(), URN_SOAP.into());
            Value::Object(envelope).to_string()
        }
        Form::Soap12 | Form::Soap11 => {
            let ns = if form == Form::Soap12 { SOAP12 } else { SOAP11 };
            let mut out = format!("<soap:Envelope xmlns:soap=\"{ns}\">");
            if header {
                out.push_str("<soap:Header><context xmlns=\"urn:zimbra\"/></soap:Header>");
            }
            out.push_str("<soap:Body>");
            xml_of(&mut out, body, None);
            out.push_str("</soap:Body></soap:Envelope>");
            out
        }
    }
}

/// Text as XML 1.0 may hold it: escaped, and every character XML 1.0 does not allow (C0
/// controls but tab, newline and carriage return; U+FFFE, U+FFFF) replaced by U+FFFD — a
/// request may carry them in as character references, and an answer echoes names.
fn xml_text(text: &str) -> String {
    let allowed = |c: char| {
        matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
    };
    let clean: String = text
        .chars()
        .map(|c| if allowed(c) { c } else { '\u{FFFD}' })
        .collect();
    escape(clean.as_str()).into_owned()
}

/// The element as compact XML (no whitespace between elements). Names that carry a
/// prefix (`soap:Fault`) are written as they are.
fn xml_of(out: &mut String, element: &Element, parent_ns: Option<&str>) {
    let _ = write!(out, "<{}", element.name);
    if let Some(ns) = element.ns.as_deref().filter(|ns| Some(*ns) != parent_ns) {
        let _ = write!(out, " xmlns=\"{}\"", xml_text(ns));
    }
    for item in &element.items {
        if let Item::Value(name, value, Disposition::Attribute) = item {
            let _ = write!(out, " {name}=\"{}\"", xml_text(&value.text()));
        }
    }
    let inner = element
        .items
        .iter()
        .any(|item| !matches!(item, Item::Value(_, _, Disposition::Attribute)));
    if !inner && element.text.is_none() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    let ns = element.ns.as_deref().or(parent_ns);
    for item in &element.items {
        match item {
            Item::Value(name, value, Disposition::Content) => {
                let _ = write!(out, "<{name}>{}</{name}>", xml_text(&value.text()));
            }
            Item::Child(child, _) => xml_of(out, child, ns),
            Item::Value(_, _, Disposition::Attribute) => {}
        }
    }
    if let Some(text) = &element.text {
        out.push_str(&xml_text(text));
    }
    let _ = write!(out, "</{}>", element.name);
}

/// A name in JSON: without the `soap:` prefix XML needs (`soap:Fault` is `Fault`).
fn json_name(name: &str) -> String {
    name.trim_start_matches("soap:").to_owned()
}

/// The element as Zimbra's JSON: attributes as scalars, a unique child as an object,
/// repeated children as an array of objects, text as `_content`, the namespace as
/// `_jsns` (last, and only where it differs from the parent's).
fn json_of(element: &Element, parent_ns: Option<&str>) -> Value {
    let mut fields = Map::new();
    let ns = element.ns.as_deref().or(parent_ns);
    for item in &element.items {
        match item {
            Item::Value(name, value, _) => {
                fields.insert(json_name(name), value.json());
            }
            Item::Child(child, unique) => {
                let value = json_of(child, ns);
                let name = json_name(&child.name);
                if *unique {
                    fields.insert(name, value);
                } else {
                    match fields
                        .entry(name)
                        .or_insert_with(|| Value::Array(Vec::new()))
                    {
                        Value::Array(items) => items.push(value),
                        other => *other = Value::Array(vec![other.take(), value]),
                    }
                }
            }
        }
    }
    if let Some(text) = &element.text {
        fields.insert("_content".into(), text.clone().into());
    }
    if let Some(ns) = element.ns.as_deref().filter(|ns| Some(*ns) != parent_ns) {
        fields.insert("_jsns".into(), ns.into());
    }
    Value::Object(fields)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn xml_requests_read_alike_as_attributes_or_children() {
        let one = br#"<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Header><context xmlns="urn:zimbra"><authToken>T1</authToken></context></soap:Header><soap:Body><AuthRequest xmlns="urn:zimbraAccount"><account by="name">a@b</account><password>p&amp;w</password></AuthRequest></soap:Body></soap:Envelope>"#;
        let two = br#"<?xml version="1.0"?>
            <s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
              <AuthRequest xmlns="urn:zimbraAccount" password="p&#38;w"><account by="name">a@b</account></AuthRequest>
            </s:Body></s:Envelope>"#;
        let a = read(one).unwrap();
        let b = read(two).unwrap();
        assert_eq!(a.answer_form, Form::Soap12);
        assert_eq!(b.answer_form, Form::Soap11);
        assert_eq!(a.auth_token.as_deref(), Some("T1"));
        for e in [&a, &b] {
            assert_eq!(e.request.name, "AuthRequest");
            assert_eq!(e.request.ns.as_deref(), Some("urn:zimbraAccount"));
            assert_eq!(e.request.value("password"), Some("p&w"));
            let account = e.request.first("account").unwrap();
            assert_eq!(account.value("by"), Some("name"));
            assert_eq!(account.text.as_deref(), Some("a@b"));
        }
    }

    #[test]
    fn json_requests_read_alike() {
        let body = br#"{"Header": {"context": {"_jsns": "urn:zimbra", "format": {"type": "js"}, "authToken": {"_content": "T"}}}, "Body": {"AuthRequest": {"account": {"by": "name", "_content": "a@b"}, "password": "pw", "twoFactorCode": [{"_content": "123456"}], "_jsns": "urn:zimbraAccount"}}}"#;
        let e = read(body).unwrap();
        assert_eq!(e.answer_form, Form::Json);
        assert_eq!(e.auth_token.as_deref(), Some("T"));
        assert_eq!(e.request.ns.as_deref(), Some("urn:zimbraAccount"));
        assert_eq!(e.request.value("password"), Some("pw"));
        assert_eq!(e.request.value("twoFactorCode"), Some("123456"));
        assert_eq!(
            e.request.first("account").unwrap().text.as_deref(),
            Some("a@b")
        );
    }

    #[test]
    fn hostile_xml_is_refused() {
        let doctype = br#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body><A>&e;</A></soap:Body></soap:Envelope>"#;
        assert!(matches!(read(doctype), Err(ReadError::Parse(_))));
        let unknown = br#"<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body><A>&e;</A></soap:Body></soap:Envelope>"#;
        assert!(matches!(read(unknown), Err(ReadError::Parse(_))));
        let deep = format!(
            "<soap:Envelope xmlns:soap=\"{SOAP12}\"><soap:Body>{}{}</soap:Body></soap:Envelope>",
            "<a>".repeat(100_000),
            "</a>".repeat(100_000)
        );
        assert!(matches!(read(deep.as_bytes()), Err(ReadError::Parse(_))));
        let deep_json = format!(
            "{}{}",
            "{\"a\":".repeat(100),
            "1".to_owned() + &"}".repeat(100)
        );
        assert!(read(deep_json.as_bytes()).is_err());
        assert!(matches!(read(b"  "), Err(ReadError::Parse(_))));
        assert!(matches!(read(b"<a/>"), Err(ReadError::Invalid(..))));
        let two = format!(
            "<soap:Envelope xmlns:soap=\"{SOAP12}\"><soap:Body><A/><B/></soap:Body></soap:Envelope>"
        );
        assert!(matches!(read(two.as_bytes()), Err(ReadError::Invalid(..))));
        assert!(matches!(
            read(br#"{"Body":{"A":{},"B":{}}}"#),
            Err(ReadError::Invalid(..))
        ));
    }

    #[test]
    fn answers_are_well_formed_whatever_they_echo() {
        let bom = [
            b"\xEF\xBB\xBF".as_slice(),
            format!(
                "<soap:Envelope xmlns:soap=\"{SOAP12}\"><soap:Body><A/></soap:Body></soap:Envelope>"
            )
            .as_bytes(),
        ]
        .concat();
        assert_eq!(read(&bom).unwrap().request.name, "A");
        let echo = Element::new("Fault", None).text("a\u{1}b\u{FFFE}c<d>");
        assert_eq!(
            write(Form::Soap12, &echo, false),
            format!(
                "<soap:Envelope xmlns:soap=\"{SOAP12}\"><soap:Body><Fault>a\u{FFFD}b\u{FFFD}c&lt;d&gt;</Fault></soap:Body></soap:Envelope>"
            )
        );
    }

    #[test]
    fn answers_are_compact_xml_or_zimbra_json() {
        let response = Element::new("AuthResponse", Some("urn:zimbraAccount"))
            .child(Element::new("authToken", None).text("T<1>"))
            .content("lifetime", Scalar::Number(3_600_000))
            .child(Element::new("skin", None).text("harmony"));
        let xml = write(Form::Soap12, &response, true);
        assert_eq!(
            xml,
            "<soap:Envelope xmlns:soap=\"http://www.w3.org/2003/05/soap-envelope\"><soap:Header><context xmlns=\"urn:zimbra\"/></soap:Header><soap:Body><AuthResponse xmlns=\"urn:zimbraAccount\"><authToken>T&lt;1&gt;</authToken><lifetime>3600000</lifetime><skin>harmony</skin></AuthResponse></soap:Body></soap:Envelope>"
        );
        let json: Value = serde_json::from_str(&write(Form::Json, &response, true)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "Header": {"context": {"_jsns": "urn:zimbra"}},
                "Body": {"AuthResponse": {"authToken": [{"_content": "T<1>"}], "lifetime": 3_600_000, "skin": [{"_content": "harmony"}], "_jsns": "urn:zimbraAccount"}},
                "_jsns": "urn:zimbraSoap",
            })
        );
    }
}

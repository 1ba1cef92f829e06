//! Parsing of the WS-Man request envelopes the test server understands.
//!
//! Elements are matched by (namespace URI, local name), never by prefix, as a real server does;
//! unknown headers and body elements are ignored.

use quick_xml::NsReader;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;

pub(crate) const NS_SOAP: &str = "http://www.w3.org/2003/05/soap-envelope";
pub(crate) const NS_ADDRESSING: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing";
pub(crate) const NS_ENUMERATION: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration";
pub(crate) const NS_WSMAN: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd";

/// The WQL filter dialect URI.
pub const DIALECT_WQL: &str = "http://schemas.microsoft.com/wbem/wsman/1/WQL";

/// A WS-Man operation, from the Action header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    Enumerate,
    Pull,
    Release,
    Get,
    /// Any other action (answered with an ActionNotSupported fault).
    Other,
}

impl Operation {
    fn from_action(action: &str) -> Operation {
        match action.trim() {
            "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate" => Operation::Enumerate,
            "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Pull" => Operation::Pull,
            "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Release" => Operation::Release,
            "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get" => Operation::Get,
            _ => Operation::Other,
        }
    }

    /// The short name used in the server's counters.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Enumerate => "Enumerate",
            Operation::Pull => "Pull",
            Operation::Release => "Release",
            Operation::Get => "Get",
            Operation::Other => "Other",
        }
    }
}

/// A `wsman:Filter`: its dialect and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub dialect: Option<String>,
    pub text: String,
}

/// The parts of a request envelope the server acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub action: String,
    pub operation: Operation,
    pub message_id: Option<String>,
    pub resource_uri: Option<String>,
    pub max_envelope_size: Option<u32>,
    pub operation_timeout: Option<String>,
    /// `wsman:SelectorSet` entries in order.
    pub selectors: Vec<(String, String)>,
    /// `wsman:OptimizeEnumeration` was present in an Enumerate.
    pub optimize: bool,
    /// `wsman:MaxElements` (Enumerate) or `wsen:MaxElements` (Pull).
    pub max_elements: Option<u32>,
    pub filter: Option<Filter>,
    /// `wsman:EnumerationMode` (`EnumerateEPR`, `EnumerateObjectAndEPR`).
    pub enumeration_mode: Option<String>,
    /// `wsen:EnumerationContext` of a Pull or Release.
    pub context: Option<String>,
}

/// Why a request envelope could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed request envelope: {0}")]
pub struct RequestError(pub String);

/// Nesting limit for request envelopes; WS-Man requests are a few levels deep.
const MAX_DEPTH: usize = 32;

/// Parses a SOAP 1.2 WS-Man request envelope.
pub fn parse(body: &[u8]) -> Result<Request, RequestError> {
    let mut reader = NsReader::from_reader(body);
    let mut p = Parser {
        stack: Vec::new(),
        text: String::new(),
        selector_name: None,
        filter_dialect: None,
        req: Request {
            action: String::new(),
            operation: Operation::Other,
            message_id: None,
            resource_uri: None,
            max_envelope_size: None,
            operation_timeout: None,
            selectors: Vec::new(),
            optimize: false,
            max_elements: None,
            filter: None,
            enumeration_mode: None,
            context: None,
        },
    };
    let err = |e: &dyn std::fmt::Display| RequestError(e.to_string());
    let mut saw_envelope = false;
    loop {
        let (ns, event) = reader.read_resolved_event().map_err(|e| err(&e))?;
        let ns = match ns {
            ResolveResult::Bound(n) => String::from_utf8_lossy(n.as_ref()).into_owned(),
            ResolveResult::Unbound => String::new(),
            ResolveResult::Unknown(prefix) => {
                return Err(RequestError(format!("undeclared prefix {}", String::from_utf8_lossy(&prefix))));
            }
        };
        match event {
            Event::Start(_) | Event::Empty(_) if p.stack.is_empty() && saw_envelope => {
                return Err(RequestError("content after the envelope".into()));
            }
            Event::Start(ref e) | Event::Empty(ref e) => {
                let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if p.stack.is_empty() {
                    if ns != NS_SOAP || local != "Envelope" {
                        return Err(RequestError(format!("root element is {{{ns}}}{local}, not a SOAP 1.2 Envelope")));
                    }
                    saw_envelope = true;
                }
                if p.stack.len() >= MAX_DEPTH {
                    return Err(RequestError("elements nested too deeply".into()));
                }
                if ns == NS_WSMAN && local == "Selector" {
                    p.selector_name = attribute(e, b"Name");
                }
                if ns == NS_WSMAN && local == "Filter" {
                    p.filter_dialect = attribute(e, b"Dialect");
                }
                p.stack.push((ns, local));
                p.text.clear();
                if matches!(event, Event::Empty(_)) {
                    p.end();
                }
            }
            Event::Text(t) => p.text.push_str(&t.decode().map_err(|e| err(&e))?),
            Event::CData(t) => p.text.push_str(&t.decode().map_err(|e| err(&e))?),
            Event::GeneralRef(r) => {
                if let Some(c) = r.resolve_char_ref().map_err(|e| err(&e))? {
                    p.text.push(c);
                } else {
                    let name = r.decode().map_err(|e| err(&e))?;
                    p.text.push(match name.as_ref() {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        other => return Err(RequestError(format!("unknown entity &{other};"))),
                    });
                }
            }
            Event::End(_) => p.end(),
            Event::DocType(_) => return Err(RequestError("DTDs are not allowed".into())),
            Event::Eof => break,
            _ => {}
        }
    }
    if !saw_envelope {
        return Err(RequestError("no envelope".into()));
    }
    if p.req.action.is_empty() {
        return Err(RequestError("no wsa:Action header".into()));
    }
    Ok(p.req)
}

struct Parser {
    stack: Vec<(String, String)>,
    text: String,
    selector_name: Option<String>,
    filter_dialect: Option<String>,
    req: Request,
}

impl Parser {
    /// Handles the end of the innermost open element, whose text is in `self.text`.
    fn end(&mut self) {
        let Some((ns, local)) = self.stack.pop() else { return };
        let parent = self.stack.last().map(|(n, l)| (n.as_str(), l.as_str()));
        let in_header = self.stack.len() == 2 && parent == Some((NS_SOAP, "Header"));
        let in_body_op = self.stack.len() == 3 && self.stack.get(1).is_some_and(|(n, l)| n == NS_SOAP && l == "Body");
        let text = std::mem::take(&mut self.text);
        let value = text.trim().to_string();
        match (ns.as_str(), local.as_str()) {
            (NS_ADDRESSING, "Action") if in_header => {
                self.req.operation = Operation::from_action(&value);
                self.req.action = value;
            }
            (NS_ADDRESSING, "MessageID") if in_header => self.req.message_id = Some(value),
            (NS_WSMAN, "ResourceURI") if in_header => self.req.resource_uri = Some(value),
            (NS_WSMAN, "MaxEnvelopeSize") if in_header => self.req.max_envelope_size = value.parse().ok(),
            (NS_WSMAN, "OperationTimeout") if in_header => self.req.operation_timeout = Some(value),
            (NS_WSMAN, "Selector") if parent == Some((NS_WSMAN, "SelectorSet")) => {
                if let Some(name) = self.selector_name.take() {
                    self.req.selectors.push((name, value));
                }
            }
            (NS_WSMAN, "OptimizeEnumeration") if in_body_op => self.req.optimize = true,
            (NS_WSMAN | NS_ENUMERATION, "MaxElements") if in_body_op => self.req.max_elements = value.parse().ok(),
            (NS_WSMAN, "Filter") if in_body_op => {
                // WQL is the text itself; the raw (untrimmed) text is kept as sent.
                self.req.filter = Some(Filter { dialect: self.filter_dialect.take(), text });
            }
            (NS_WSMAN, "EnumerationMode") if in_body_op => self.req.enumeration_mode = Some(value),
            (NS_ENUMERATION, "EnumerationContext") if in_body_op => self.req.context = Some(value),
            _ => {}
        }
    }
}

fn attribute(e: &quick_xml::events::BytesStart<'_>, name: &[u8]) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == name)
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Enumerate as PowerShell's WinRM client sends it (prefixes differ from ours on purpose).
    const ENUMERATE: &str = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd"><s:Header><a:To>http://host:5985/wsman</a:To><w:ResourceURI s:mustUnderstand="true">http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/*</w:ResourceURI><a:ReplyTo><a:Address s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo><a:Action s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate</a:Action><w:MaxEnvelopeSize s:mustUnderstand="true">512000</w:MaxEnvelopeSize><a:MessageID>uuid:0AB58087-C2C3-0005-0000-000000010000</a:MessageID><w:Locale xml:lang="en-US" s:mustUnderstand="false"/><w:OperationTimeout>PT60.000S</w:OperationTimeout></s:Header><s:Body><n:Enumerate><w:OptimizeEnumeration/><w:MaxElements>32000</w:MaxElements><w:Filter Dialect="http://schemas.microsoft.com/wbem/wsman/1/WQL">SELECT Name,State FROM Win32_Service WHERE Name &lt;&gt; 'x&amp;y'</w:Filter></n:Enumerate></s:Body></s:Envelope>"#;

    #[test]
    fn enumerate_with_wql_filter() {
        let r = parse(ENUMERATE.as_bytes()).unwrap();
        assert_eq!(r.operation, Operation::Enumerate);
        assert_eq!(r.message_id.as_deref(), Some("uuid:0AB58087-C2C3-0005-0000-000000010000"));
        assert_eq!(r.resource_uri.as_deref(), Some("http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/*"));
        assert_eq!(r.max_envelope_size, Some(512_000));
        assert_eq!(r.operation_timeout.as_deref(), Some("PT60.000S"));
        assert!(r.optimize);
        assert_eq!(r.max_elements, Some(32_000));
        let f = r.filter.unwrap();
        assert_eq!(f.dialect.as_deref(), Some(DIALECT_WQL));
        assert_eq!(f.text, "SELECT Name,State FROM Win32_Service WHERE Name <> 'x&y'");
    }

    #[test]
    fn pull_release_and_get_with_other_prefixes() {
        let pull = r#"<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:wsen="http://schemas.xmlsoap.org/ws/2004/09/enumeration"><env:Header><wsa:Action>http://schemas.xmlsoap.org/ws/2004/09/enumeration/Pull</wsa:Action><wsa:MessageID>uuid:1</wsa:MessageID></env:Header><env:Body><wsen:Pull><wsen:EnumerationContext>uuid:ctx</wsen:EnumerationContext><wsen:MaxElements>20</wsen:MaxElements></wsen:Pull></env:Body></env:Envelope>"#;
        let r = parse(pull.as_bytes()).unwrap();
        assert_eq!((r.operation, r.context.as_deref(), r.max_elements), (Operation::Pull, Some("uuid:ctx"), Some(20)));

        let get = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Header><Action xmlns="http://schemas.xmlsoap.org/ws/2004/08/addressing">http://schemas.xmlsoap.org/ws/2004/09/transfer/Get</Action><w:SelectorSet xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><w:Selector Name="Name">Win&amp;Rm</w:Selector><w:Selector Name="__cimnamespace">root/cimv2</w:Selector></w:SelectorSet></s:Header><s:Body/></s:Envelope>"#;
        let r = parse(get.as_bytes()).unwrap();
        assert_eq!(r.operation, Operation::Get);
        assert_eq!(r.selectors, vec![("Name".into(), "Win&Rm".into()), ("__cimnamespace".into(), "root/cimv2".into())]);
    }

    #[test]
    fn elements_outside_their_place_are_ignored() {
        // A MaxElements in the header and an Action in the body do not count.
        let x = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><s:Header><a:Action>http://schemas.xmlsoap.org/ws/2004/09/enumeration/Release</a:Action><w:MaxElements>5</w:MaxElements></s:Header><s:Body><a:Action>x</a:Action></s:Body></s:Envelope>"#;
        let r = parse(x.as_bytes()).unwrap();
        assert_eq!(r.operation, Operation::Release);
        assert_eq!(r.max_elements, None);
    }

    #[test]
    fn malformed_envelopes_are_errors() {
        for bad in [
            "",
            "not xml",
            "<a/>",
            "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"><s:Header>",
            "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"><x:y/></s:Envelope>",
            "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"></s:Envelope>",
            "<!DOCTYPE x [<!ENTITY a \"b\">]><s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"/>",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
        let deep = format!(
            "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\">{}{}</s:Envelope>",
            "<a>".repeat(100),
            "</a>".repeat(100)
        );
        assert!(parse(deep.as_bytes()).is_err());
    }

    proptest::proptest! {
        /// Any bytes, and any mangling of a valid envelope, give a request or an error, never a panic.
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400), cut in 0usize..2000, flip in 0usize..2000) {
            let _ = parse(&bytes);
            let mut valid = ENUMERATE.as_bytes().to_vec();
            if let Some(b) = valid.get_mut(flip) {
                *b ^= 0x5a;
            }
            valid.truncate(cut);
            let _ = parse(&valid);
        }
    }
}

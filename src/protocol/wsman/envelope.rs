//! Request envelopes: Enumerate, Pull, Release and Get, with the headers Windows expects.
//!
//! The header set and order follow what Windows' own client and pypsrp send (MS-WSMV 3.1.4):
//! Action, DataLocale, Locale, MaxEnvelopeSize, MessageID, OperationTimeout, ReplyTo,
//! ResourceURI, To, then the SelectorSet. No OperationID is sent: it would ask the server to
//! keep state for robust connections, which inventory queries do not use.

use std::fmt::Write as _;
use std::time::Duration;

use crate::protocol::{Category, Error};

/// SOAP 1.2 envelope namespace.
pub const NS_SOAP: &str = "http://www.w3.org/2003/05/soap-envelope";
/// WS-Addressing (2004/08), as WS-Man 1.x uses it.
pub const NS_ADDRESSING: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing";
/// WS-Enumeration.
pub const NS_ENUMERATION: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration";
/// WS-Transfer.
pub const NS_TRANSFER: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer";
/// DMTF WS-Management (DSP0226).
pub const NS_WSMAN: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd";
/// Microsoft's WS-Man extensions (MS-WSMV): DataLocale.
pub const NS_WSMV: &str = "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd";
/// The anonymous reply address.
pub const ANONYMOUS: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous";
/// The WQL filter dialect.
pub const WQL_DIALECT: &str = "http://schemas.microsoft.com/wbem/wsman/1/WQL";

const ACTION_ENUMERATE: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate";
const ACTION_PULL: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Pull";
const ACTION_RELEASE: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Release";
const ACTION_GET: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get";

/// The headers shared by every request of a session, plus the resource addressed.
#[derive(Debug, Clone, PartialEq)]
pub struct Headers {
    /// The listener URL (`http://host:5985/wsman`), sent as wsa:To.
    pub to: String,
    pub resource_uri: String,
    /// Selectors (`__cimnamespace` for DMTF URIs, keys for Get), in order.
    pub selectors: Vec<(String, String)>,
    /// Largest response the server may send, in bytes.
    pub max_envelope_size: u32,
    pub operation_timeout: Duration,
    /// wsman:Locale (messages), e.g. `en-US`.
    pub locale: String,
    /// wsmv:DataLocale (data formatting), e.g. `en-US`.
    pub data_locale: String,
}

/// A request ready to send, with the MessageID its response must relate to.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub message_id: String,
    pub xml: String,
}

/// What an Enumerate asks for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EnumerateBody {
    /// Items per response the server may return (wsman:MaxElements).
    pub max_elements: u32,
    /// WQL text sent as a wsman:Filter in the WQL dialect.
    pub filter: Option<String>,
    /// Ask for endpoint references only (EnumerationMode EnumerateEPR).
    pub key_only: bool,
}

/// A fresh `uuid:…` MessageID, uppercase as Windows writes them.
pub fn new_message_id() -> String {
    format!("uuid:{}", uuid::Uuid::new_v4().to_string().to_ascii_uppercase())
}

/// An Enumerate with OptimizeEnumeration, so the first items come back in the response.
pub fn enumerate(h: &Headers, message_id: &str, body: &EnumerateBody) -> Result<Message, Error> {
    // The order Windows' own client (the MI/WinRM stack) writes: OptimizeEnumeration,
    // MaxElements, EnumerationMode, Filter.
    let mut b = format!("<n:Enumerate><w:OptimizeEnumeration/><w:MaxElements>{}</w:MaxElements>", body.max_elements);
    if body.key_only {
        b.push_str("<w:EnumerationMode>EnumerateEPR</w:EnumerationMode>");
    }
    if let Some(f) = &body.filter {
        write!(b, "<w:Filter Dialect=\"{WQL_DIALECT}\">{}</w:Filter>", escape(f, "filter")?).ok();
    }
    b.push_str("</n:Enumerate>");
    build(h, ACTION_ENUMERATE, message_id, &b)
}

/// A Pull of the next page of an enumeration.
pub fn pull(h: &Headers, message_id: &str, context: &str, max_elements: u32) -> Result<Message, Error> {
    let b = format!(
        "<n:Pull><n:EnumerationContext>{}</n:EnumerationContext><n:MaxElements>{max_elements}</n:MaxElements></n:Pull>",
        escape(context, "enumeration context")?
    );
    build(h, ACTION_PULL, message_id, &b)
}

/// A Release of an enumeration abandoned before its end.
pub fn release(h: &Headers, message_id: &str, context: &str) -> Result<Message, Error> {
    let b = format!(
        "<n:Release><n:EnumerationContext>{}</n:EnumerationContext></n:Release>",
        escape(context, "enumeration context")?
    );
    build(h, ACTION_RELEASE, message_id, &b)
}

/// A WS-Transfer Get of one instance, addressed by the selectors of `h`.
pub fn get(h: &Headers, message_id: &str) -> Result<Message, Error> {
    build(h, ACTION_GET, message_id, "")
}

fn build(h: &Headers, action: &str, message_id: &str, body: &str) -> Result<Message, Error> {
    let mut x = String::with_capacity(1500 + body.len());
    write!(
        x,
        "<s:Envelope xmlns:s=\"{NS_SOAP}\" xmlns:a=\"{NS_ADDRESSING}\" xmlns:n=\"{NS_ENUMERATION}\" \
         xmlns:w=\"{NS_WSMAN}\" xmlns:p=\"{NS_WSMV}\"><s:Header>\
         <a:Action s:mustUnderstand=\"true\">{action}</a:Action>\
         <p:DataLocale s:mustUnderstand=\"false\" xml:lang=\"{}\"/>\
         <w:Locale s:mustUnderstand=\"false\" xml:lang=\"{}\"/>\
         <w:MaxEnvelopeSize s:mustUnderstand=\"true\">{}</w:MaxEnvelopeSize>\
         <a:MessageID>{}</a:MessageID>\
         <w:OperationTimeout>{}</w:OperationTimeout>\
         <a:ReplyTo><a:Address s:mustUnderstand=\"true\">{ANONYMOUS}</a:Address></a:ReplyTo>\
         <w:ResourceURI s:mustUnderstand=\"true\">{}</w:ResourceURI>\
         <a:To>{}</a:To>",
        escape(&h.data_locale, "data locale")?,
        escape(&h.locale, "locale")?,
        h.max_envelope_size,
        escape(message_id, "message id")?,
        duration(h.operation_timeout),
        escape(&h.resource_uri, "resource URI")?,
        escape(&h.to, "endpoint URL")?,
    )
    .ok();
    if !h.selectors.is_empty() {
        x.push_str("<w:SelectorSet>");
        for (name, value) in &h.selectors {
            write!(
                x,
                "<w:Selector Name=\"{}\">{}</w:Selector>",
                escape(name, "selector name")?,
                escape(value, "selector value")?
            )
            .ok();
        }
        x.push_str("</w:SelectorSet>");
    }
    write!(x, "</s:Header><s:Body>{body}</s:Body></s:Envelope>").ok();
    Ok(Message { message_id: message_id.to_string(), xml: x })
}

/// `PT60.000S`: xs:duration in seconds with milliseconds, as Windows writes OperationTimeout.
pub fn duration(d: Duration) -> String {
    format!("PT{}.{:03}S", d.as_secs(), d.subsec_millis())
}

/// Escapes text for element content and double-quoted attributes. Characters XML 1.0 cannot
/// carry at all (most C0 controls) are refused rather than silently changed.
pub fn escape(s: &str, what: &str) -> Result<String, Error> {
    if let Some(c) = s.chars().find(|&c| !is_xml_char(c)) {
        return Err(Error::new(
            Category::InvalidQuery,
            format!("the {what} contains U+{:04X}, which XML cannot carry", c as u32),
        ));
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // A literal CR would be normalized to LF by the server's parser.
            '\r' => out.push_str("&#13;"),
            _ => out.push(c),
        }
    }
    Ok(out)
}

fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quick_xml::NsReader;
    use quick_xml::events::Event;
    use quick_xml::name::ResolveResult;

    fn headers() -> Headers {
        Headers {
            to: "http://srv:5985/wsman".into(),
            resource_uri: "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/*".into(),
            selectors: Vec::new(),
            max_envelope_size: 512000,
            operation_timeout: Duration::from_secs(60),
            locale: "en-US".into(),
            data_locale: "en-US".into(),
        }
    }

    /// (namespace, local name, mustUnderstand, text) of every header element, in order.
    fn header_shape(xml: &str) -> Vec<(String, String, Option<String>, String)> {
        let mut r = NsReader::from_str(xml);
        let mut out = Vec::new();
        let mut depth = 0;
        let mut in_header = false;
        loop {
            let (ns, ev) = r.read_resolved_event().unwrap();
            let ns = match ns {
                ResolveResult::Bound(n) => String::from_utf8_lossy(n.as_ref()).into_owned(),
                _ => String::new(),
            };
            match ev {
                Event::Start(ref e) | Event::Empty(ref e) => {
                    let empty = matches!(ev, Event::Empty(_));
                    let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                    if depth == 1 && local == "Header" {
                        in_header = true;
                    } else if in_header && depth == 2 {
                        let mu = e
                            .attributes()
                            .flatten()
                            .find(|a| a.key.local_name().as_ref() == b"mustUnderstand")
                            .map(|a| String::from_utf8_lossy(&a.value).into_owned());
                        out.push((ns, local, mu, String::new()));
                    }
                    if !empty {
                        depth += 1;
                    }
                }
                Event::Text(t) if in_header && depth == 3 => {
                    if let Some(last) = out.last_mut() {
                        last.3.push_str(&t.decode().unwrap());
                    }
                }
                Event::End(_) => {
                    depth -= 1;
                    if depth == 1 {
                        in_header = false;
                    }
                }
                Event::Eof => return out,
                _ => {}
            }
        }
    }

    #[test]
    fn headers_match_what_pypsrp_and_windows_send() {
        // pypsrp's WSMan._create_header: Action(mU=true), DataLocale(mU=false), Locale(mU=false),
        // MaxEnvelopeSize(mU=true), MessageID, OperationTimeout, ReplyTo/Address(mU=true),
        // ResourceURI(mU=true), [SessionId], To, [SelectorSet].
        let mut h = headers();
        h.selectors = vec![("__cimnamespace".into(), "root/cimv2".into())];
        let m = enumerate(&h, "uuid:ABC", &EnumerateBody { max_elements: 32000, ..Default::default() }).unwrap();
        let shape = header_shape(&m.xml);
        let names: Vec<_> = shape.iter().map(|s| (s.0.as_str(), s.1.as_str(), s.2.as_deref())).collect();
        assert_eq!(
            names,
            vec![
                (NS_ADDRESSING, "Action", Some("true")),
                (NS_WSMV, "DataLocale", Some("false")),
                (NS_WSMAN, "Locale", Some("false")),
                (NS_WSMAN, "MaxEnvelopeSize", Some("true")),
                (NS_ADDRESSING, "MessageID", None),
                (NS_WSMAN, "OperationTimeout", None),
                (NS_ADDRESSING, "ReplyTo", None),
                (NS_WSMAN, "ResourceURI", Some("true")),
                (NS_ADDRESSING, "To", None),
                (NS_WSMAN, "SelectorSet", None),
            ]
        );
        assert_eq!(shape[0].3, ACTION_ENUMERATE);
        assert_eq!(shape[3].3, "512000");
        assert_eq!(shape[4].3, "uuid:ABC");
        assert_eq!(shape[5].3, "PT60.000S");
        assert!(!m.xml.contains("OperationID"));
    }

    #[test]
    fn enumerate_body_matches_ms_wsmv_example() {
        let h = headers();
        let m = enumerate(
            &h,
            "uuid:1",
            &EnumerateBody {
                max_elements: 32000,
                filter: Some("select * from Win32_Service where Name = 'a<b'".into()),
                key_only: true,
            },
        )
        .unwrap();
        assert!(m.xml.contains(
            "<s:Body><n:Enumerate><w:OptimizeEnumeration/><w:MaxElements>32000</w:MaxElements>\
             <w:EnumerationMode>EnumerateEPR</w:EnumerationMode>\
             <w:Filter Dialect=\"http://schemas.microsoft.com/wbem/wsman/1/WQL\">\
             select * from Win32_Service where Name = &apos;a&lt;b&apos;</w:Filter></n:Enumerate></s:Body>"
        ));
    }

    #[test]
    fn pull_release_get_bodies() {
        let h = headers();
        let p = pull(&h, "uuid:2", "uuid:CTX", 50).unwrap();
        assert!(p.xml.contains(
            "<n:Pull><n:EnumerationContext>uuid:CTX</n:EnumerationContext><n:MaxElements>50</n:MaxElements></n:Pull>"
        ));
        assert_eq!(header_shape(&p.xml)[0].3, ACTION_PULL);
        let r = release(&h, "uuid:3", "uuid:CTX").unwrap();
        assert!(r.xml.contains("<n:Release><n:EnumerationContext>uuid:CTX</n:EnumerationContext></n:Release>"));
        let g = get(&h, "uuid:4").unwrap();
        assert!(g.xml.ends_with("<s:Body></s:Body></s:Envelope>"));
        assert_eq!(header_shape(&g.xml)[0].3, ACTION_GET);
    }

    #[test]
    fn message_ids_are_uppercase_uuids() {
        let id = new_message_id();
        assert!(id.starts_with("uuid:"));
        assert_eq!(id.len(), 41);
        assert_eq!(id, id.to_ascii_uppercase().replacen("UUID:", "uuid:", 1));
        assert_ne!(id, new_message_id());
    }

    #[test]
    fn durations_and_invalid_characters() {
        assert_eq!(duration(Duration::from_millis(1500)), "PT1.500S");
        let e = escape("a\u{1}b", "filter").unwrap_err();
        assert_eq!(e.category, Category::InvalidQuery);
        assert_eq!(escape("x\r\"y", "f").unwrap(), "x&#13;&quot;y");
    }
}

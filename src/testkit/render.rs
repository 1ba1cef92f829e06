//! Response envelopes in the exact shapes Windows Server 2012 sends.
//!
//! See `shared/testdata/wsman/txwinrm/data/server_2012`: typed class elements with `xsi:type`
//! for `SELECT *`, `w:XmlFragment` with unqualified children for property lists, `xsi:nil` for
//! NULL, repeated elements for arrays (empty arrays omitted), `cim:Datetime` wrappers (bare
//! `Datetime` in fragments), Items/EndOfSequence in the wsman namespace in an
//! EnumerateResponse and in the enumeration namespace in a PullResponse.

use std::fmt::Write as _;

use quick_xml::escape::escape;

use crate::cim::{DateTime, Instance, Value};

const NS_XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
const NS_CIM: &str = "http://schemas.dmtf.org/wbem/wscim/1/common";
const ANONYMOUS: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous";

/// The namespace prefix of WMI class resource URIs.
pub const WMI_URI_PREFIX: &str = "http://schemas.microsoft.com/wbem/wsman/1/wmi/";

/// How an enumeration item is rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemShape {
    /// `<p:Class xsi:type="p:Class_Type">` in the class's resource namespace (`SELECT *`).
    Typed { resource_uri: String },
    /// `<w:XmlFragment>` with unqualified children (a property list).
    Fragment,
    /// `<a:EndpointReference>` with the key selectors (EnumerationMode EnumerateEPR), and a
    /// `__cimnamespace` selector for a DMTF resource URI, as OMI sends.
    Epr { resource_uri: String, keys: Vec<String>, namespace: Option<String> },
}

/// Appends one item.
pub fn item(out: &mut String, inst: &Instance, shape: &ItemShape) {
    match shape {
        ItemShape::Typed { resource_uri } => {
            let class = escape(inst.class_name.as_str());
            let _ = write!(
                out,
                "<p:{class} xmlns:xsi=\"{NS_XSI}\" xmlns:p=\"{}\" xmlns:cim=\"{NS_CIM}\" xsi:type=\"p:{class}_Type\">",
                escape(resource_uri)
            );
            properties(out, inst, "p:", "cim:");
            let _ = write!(out, "</p:{class}>");
        }
        ItemShape::Fragment => {
            let _ =
                write!(out, "<w:XmlFragment xmlns:xsi=\"{NS_XSI}\" xmlns:w=\"{}\">", crate::testkit::request::NS_WSMAN);
            properties(out, inst, "", "");
            out.push_str("</w:XmlFragment>");
        }
        ItemShape::Epr { resource_uri, keys, namespace } => {
            let _ = write!(
                out,
                "<a:EndpointReference><a:Address>{ANONYMOUS}</a:Address><a:ReferenceParameters><w:ResourceURI>{}</w:ResourceURI><w:SelectorSet>",
                escape(resource_uri)
            );
            for k in keys {
                let v = inst.get(k).map(|v| v.to_string()).unwrap_or_default();
                let _ = write!(out, "<w:Selector Name=\"{}\">{}</w:Selector>", escape(k), escape(&v));
            }
            if let Some(ns) = namespace {
                let _ = write!(out, "<w:Selector Name=\"__cimnamespace\">{}</w:Selector>", escape(ns));
            }
            out.push_str("</w:SelectorSet></a:ReferenceParameters></a:EndpointReference>");
        }
    }
}

fn properties(out: &mut String, inst: &Instance, prefix: &str, cim_prefix: &str) {
    for p in &inst.properties {
        let name = escape(p.name.as_str());
        match &p.value {
            // An empty array is omitted, as WMI does; one element looks like a scalar.
            Value::Array(items) => {
                for v in items {
                    scalar(out, prefix, &name, cim_prefix, v);
                }
            }
            v => scalar(out, prefix, &name, cim_prefix, v),
        }
    }
}

fn scalar(out: &mut String, prefix: &str, name: &str, cim_prefix: &str, v: &Value) {
    match v {
        Value::Null => {
            let _ = write!(out, "<{prefix}{name} xsi:nil=\"true\"/>");
        }
        Value::DateTime(d) => {
            let tag = if cim_prefix.is_empty() { "Datetime".to_string() } else { format!("{cim_prefix}Datetime") };
            let _ = write!(out, "<{prefix}{name}><{tag}>{}</{tag}></{prefix}{name}>", datetime(d));
        }
        Value::Interval(i) => {
            let tag = if cim_prefix.is_empty() { "Interval".to_string() } else { format!("{cim_prefix}Interval") };
            let _ = write!(out, "<{prefix}{name}><{tag}>{i}</{tag}></{prefix}{name}>");
        }
        other => {
            let _ = write!(out, "<{prefix}{name}>{}</{prefix}{name}>", escape(text(other)));
        }
    }
}

/// The texts a value is sent as: one per repeated element (none for an empty array), `None`
/// for `xsi:nil`, the inner text of a `cim:Datetime`/`cim:Interval` wrapper. Clients under
/// test compare what they parsed with this.
pub fn wire_texts(v: &Value) -> Vec<Option<String>> {
    match v {
        Value::Array(items) => items.iter().flat_map(wire_texts).collect(),
        Value::Null => vec![None],
        Value::DateTime(d) => vec![Some(datetime(d))],
        other => vec![Some(text(other))],
    }
}

/// The text form of a scalar: `true`/`false` for booleans, as WS-Man (not WMI's `True`) spells them.
fn text(v: &Value) -> String {
    match v {
        Value::Bool(b) => if *b { "true" } else { "false" }.to_string(),
        Value::Real32(f) if f.is_infinite() => if *f > 0.0 { "INF" } else { "-INF" }.to_string(),
        Value::Real64(f) if f.is_infinite() => if *f > 0.0 { "INF" } else { "-INF" }.to_string(),
        other => other.to_string(),
    }
}

/// xs:dateTime as Windows writes it: fraction without trailing zeros, `Z` for UTC.
pub fn datetime(d: &DateTime) -> String {
    let mut s = format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", d.year, d.month, d.day, d.hour, d.minute, d.second);
    if d.microsecond != 0 {
        let frac = format!("{:06}", d.microsecond);
        let _ = write!(s, ".{}", frac.trim_end_matches('0'));
    }
    if d.offset_minutes == 0 {
        s.push('Z');
    } else {
        let m = d.offset_minutes.unsigned_abs();
        let _ = write!(s, "{}{:02}:{:02}", if d.offset_minutes < 0 { '-' } else { '+' }, m / 60, m % 60);
    }
    s
}

/// A new `uuid:` message ID in Windows' upper-case form.
pub fn message_id() -> String {
    crate::protocol::wsman::envelope::new_message_id()
}

/// The envelope around a response body.
pub fn envelope(action: &str, relates_to: Option<&str>, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 800);
    let _ = write!(
        out,
        "<s:Envelope xml:lang=\"en-US\" xmlns:s=\"{}\" xmlns:a=\"{}\" xmlns:n=\"{}\" xmlns:w=\"{}\">",
        crate::testkit::request::NS_SOAP,
        crate::testkit::request::NS_ADDRESSING,
        crate::testkit::request::NS_ENUMERATION,
        crate::testkit::request::NS_WSMAN,
    );
    let _ = write!(
        out,
        "<s:Header><a:Action>{action}</a:Action><a:MessageID>{}</a:MessageID><a:To>{ANONYMOUS}</a:To>",
        message_id()
    );
    if let Some(r) = relates_to {
        let _ = write!(out, "<a:RelatesTo>{}</a:RelatesTo>", escape(r));
    }
    let _ = write!(out, "</s:Header><s:Body>{body}</s:Body></s:Envelope>");
    out
}

/// The body of an EnumerateResponse or PullResponse.
///
/// `context` is `None` once the sequence ended (a PullResponse then omits it; an optimized
/// EnumerateResponse that holds everything sends it empty, as Windows does).
pub fn enumeration_body(pull: bool, context: Option<&str>, items: &str, end: bool) -> String {
    let (op, items_prefix) = if pull { ("PullResponse", "n") } else { ("EnumerateResponse", "w") };
    let mut out = format!("<n:{op}>");
    match (context, pull) {
        (Some(c), _) => {
            let _ = write!(out, "<n:EnumerationContext>{}</n:EnumerationContext>", escape(c));
        }
        (None, false) => out.push_str("<n:EnumerationContext></n:EnumerationContext>"),
        (None, true) => {}
    }
    if !items.is_empty() || !pull {
        let _ = write!(out, "<{items_prefix}:Items>{items}</{items_prefix}:Items>");
    }
    if end {
        let _ = write!(out, "<{items_prefix}:EndOfSequence/>");
    }
    let _ = write!(out, "</n:{op}>");
    out
}

/// A SOAP fault as WinRM words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// `s:Sender` or `s:Receiver`.
    pub code: &'static str,
    /// Qualified subcode, e.g. `w:AccessDenied`.
    pub subcode: &'static str,
    pub reason: String,
    /// `WSManFault/@Code`.
    pub wsman_code: u32,
    pub message: String,
    /// A nested WMI provider fault: (WMI error code, message).
    pub provider: Option<(u32, String)>,
}

/// The whole fault envelope.
pub fn fault(f: &Fault, relates_to: Option<&str>, machine: &str) -> String {
    let mut body = format!(
        "<s:Fault><s:Code><s:Value>{}</s:Value><s:Subcode><s:Value>{}</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang=\"en-US\">{}</s:Text></s:Reason><s:Detail>",
        f.code,
        f.subcode,
        escape(&f.reason)
    );
    let machine = escape(machine);
    let _ = write!(
        body,
        "<f:WSManFault xmlns:f=\"http://schemas.microsoft.com/wbem/wsman/1/wsmanfault\" Code=\"{}\" Machine=\"{machine}\"><f:Message>",
        f.wsman_code
    );
    match &f.provider {
        Some((code, msg)) => {
            let _ = write!(
                body,
                "<f:ProviderFault provider=\"WMI Provider\" path=\"%systemroot%\\system32\\WsmWmiPl.dll\"><f:WSManFault Code=\"{code}\" Machine=\"{machine}\"><f:Message>{}</f:Message></f:WSManFault></f:ProviderFault>",
                escape(msg)
            );
        }
        None => body.push_str(&escape(&f.message)),
    }
    body.push_str("</f:Message></f:WSManFault></s:Detail></s:Fault>");
    envelope("http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", relates_to, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_item_matches_windows_shape() {
        let inst = Instance::new("Win32_Service")
            .with("AcceptStop", Value::Bool(false))
            .with("InstallDate", Value::Null)
            .with("Name", Value::String("a<b".into()))
            .with("Roles", Value::Array(vec![Value::String("NT".into()), Value::String("LM".into())]))
            .with("Empty", Value::Array(vec![]))
            .with("Since", Value::DateTime(DateTime::from_unix(1_365_006_523, 488_170)));
        let uri = format!("{WMI_URI_PREFIX}root/cimv2/Win32_Service");
        let mut out = String::new();
        item(&mut out, &inst, &ItemShape::Typed { resource_uri: uri });
        assert_eq!(
            out,
            "<p:Win32_Service xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:p=\"http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/Win32_Service\" xmlns:cim=\"http://schemas.dmtf.org/wbem/wscim/1/common\" xsi:type=\"p:Win32_Service_Type\"><p:AcceptStop>false</p:AcceptStop><p:InstallDate xsi:nil=\"true\"/><p:Name>a&lt;b</p:Name><p:Roles>NT</p:Roles><p:Roles>LM</p:Roles><p:Since><cim:Datetime>2013-04-03T16:28:43.48817Z</cim:Datetime></p:Since></p:Win32_Service>"
        );
        let mut frag = String::new();
        item(&mut frag, &inst, &ItemShape::Fragment);
        assert!(frag.starts_with("<w:XmlFragment xmlns:xsi="));
        assert!(frag.contains("<Since><Datetime>2013-04-03T16:28:43.48817Z</Datetime></Since>"));
        assert!(frag.contains("<InstallDate xsi:nil=\"true\"/>"));
    }

    #[test]
    fn enumeration_bodies_use_windows_namespaces() {
        assert_eq!(
            enumeration_body(false, None, "<x/>", true),
            "<n:EnumerateResponse><n:EnumerationContext></n:EnumerationContext><w:Items><x/></w:Items><w:EndOfSequence/></n:EnumerateResponse>"
        );
        assert_eq!(
            enumeration_body(true, None, "<x/>", true),
            "<n:PullResponse><n:Items><x/></n:Items><n:EndOfSequence/></n:PullResponse>"
        );
        assert_eq!(
            enumeration_body(true, Some("uuid:C"), "<x/>", false),
            "<n:PullResponse><n:EnumerationContext>uuid:C</n:EnumerationContext><n:Items><x/></n:Items></n:PullResponse>"
        );
    }

    #[test]
    fn fault_carries_codes_and_relates_to() {
        let f = Fault {
            code: "s:Receiver",
            subcode: "w:InternalError",
            reason: "quota".into(),
            wsman_code: 2_150_859_174,
            message: "max 15 & more".into(),
            provider: None,
        };
        let x = fault(&f, Some("uuid:REQ"), "H1");
        assert!(x.contains("<a:RelatesTo>uuid:REQ</a:RelatesTo>"));
        assert!(x.contains("Code=\"2150859174\" Machine=\"H1\"><f:Message>max 15 &amp; more</f:Message>"));
        assert!(x.contains("<s:Value>w:InternalError</s:Value>"));
    }
}

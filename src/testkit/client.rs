//! Minimal request envelopes and response probes for tests that drive the test server or a
//! transport directly, below the WS-Man message layer.

const WMI: &str = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/";

/// The resource URI of a root/cimv2 class (`*` for WQL queries).
pub fn wmi_uri(class: &str) -> String {
    format!("{WMI}{class}")
}

/// A request envelope with the headers Windows clients send.
pub fn envelope(action: &str, uri: &str, message_id: &str, extra_header: &str, body: &str) -> String {
    format!(
        r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><s:Header><a:To>http://localhost/wsman</a:To><w:ResourceURI s:mustUnderstand="true">{uri}</w:ResourceURI><a:ReplyTo><a:Address s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo><a:Action s:mustUnderstand="true">{action}</a:Action><a:MessageID>{message_id}</a:MessageID>{extra_header}<w:OperationTimeout>PT20S</w:OperationTimeout></s:Header><s:Body>{body}</s:Body></s:Envelope>"#
    )
}

pub const ENUMERATE: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate";
pub const PULL: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Pull";
pub const RELEASE: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Release";
pub const GET: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get";

/// An optimized Enumerate of a class (message ID `uuid:E-1`).
pub fn enumerate(class: &str, max: u32) -> String {
    let body = format!("<n:Enumerate><w:OptimizeEnumeration/><w:MaxElements>{max}</w:MaxElements></n:Enumerate>");
    envelope(ENUMERATE, &wmi_uri(class), "uuid:E-1", "", &body)
}

/// An Enumerate with any resource URI, extra headers and Enumerate children (`uuid:E-2`).
pub fn enumerate_with(uri: &str, extra_header: &str, body: &str) -> String {
    envelope(ENUMERATE, uri, "uuid:E-2", extra_header, &format!("<n:Enumerate>{body}</n:Enumerate>"))
}

/// A Pull (`uuid:P-1`).
pub fn pull(class: &str, context: &str, max: u32) -> String {
    let body = format!(
        "<n:Pull><n:EnumerationContext>{context}</n:EnumerationContext><n:MaxElements>{max}</n:MaxElements></n:Pull>"
    );
    envelope(PULL, &wmi_uri(class), "uuid:P-1", "", &body)
}

/// A Release (`uuid:R-1`).
pub fn release(class: &str, context: &str) -> String {
    let body = format!("<n:Release><n:EnumerationContext>{context}</n:EnumerationContext></n:Release>");
    envelope(RELEASE, &wmi_uri(class), "uuid:R-1", "", &body)
}

fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = s.find(open)? + open.len();
    let end = s.get(start..)?.find(close)? + start;
    s.get(start..end)
}

/// The (non-empty) enumeration context of a response, as the server's own prefixes write it.
pub fn context(body: &str) -> Option<&str> {
    between(body, "<n:EnumerationContext>", "</n:EnumerationContext>").filter(|c| !c.is_empty())
}

/// The outer `WSManFault/@Code` of a fault response.
pub fn wsman_code(body: &str) -> Option<u32> {
    between(body, "<f:WSManFault xmlns:f=\"http://schemas.microsoft.com/wbem/wsman/1/wsmanfault\" Code=\"", "\"")?
        .parse()
        .ok()
}

//! SOAP faults: what the server said went wrong, mapped to the shared error taxonomy.
//!
//! A Windows fault carries its meaning at several depths: the SOAP subcode (`w:TimedOut`),
//! the `WSManFault/@Code` (a WinRM error such as 2150859174), and, when WMI failed, a nested
//! `ProviderFault` with the WMI HRESULT (`0x80041010`) or an `MSFT_WmiError/error_Code`.
//! OMI and Windows' MI stack also send a CIM error instance (`MSFT_WmiError`, `OMI_Error`)
//! whose `CIMStatusCode` (DSP0004 status codes) names the failure. The most specific code
//! decides the category: provider HRESULTs, then the CIM status, then the WinRM code, then
//! the SOAP subcode.
//!
//! Codes below were checked against the wsmerror.h constants (as published in the Windows
//! SDK metadata) and MS-WMI 2.2.11 (WBEMSTATUS).

use super::response::{Elem, Node};
use crate::protocol::{Category, Error};

const NS_WSMANFAULT: &str = "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault";
const NS_SOAP: &str = super::envelope::NS_SOAP;

/// A parsed SOAP fault.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Fault {
    /// s:Code/s:Value, e.g. `s:Receiver`.
    pub code: Option<String>,
    /// s:Subcode/s:Value, e.g. `w:TimedOut`.
    pub subcode: Option<String>,
    /// s:Reason/s:Text.
    pub reason: Option<String>,
    /// The outer `WSManFault/@Code`.
    pub wsman_code: Option<u32>,
    /// Machine the fault came from (`WSManFault/@Machine`).
    pub machine: Option<String>,
    /// The WSManFault message text (provider faults' text included).
    pub message: Option<String>,
    /// Every other HRESULT or Win32 code found inside: nested WSManFault codes,
    /// MSFT_WmiError/error_Code, __ExtendedStatus/StatusCode, innermost last.
    pub provider_codes: Vec<u32>,
    /// The CIM status code of an error instance (`CIMStatusCode`, or `error_Code` when its
    /// `error_Type` is `MI`), innermost last.
    pub cim_status: Option<u32>,
}

/// Reads a fault from its collected `s:Fault` element.
pub(crate) fn from_tree(f: &Elem) -> Fault {
    let mut out = Fault::default();
    if let Some(code) = f.child(NS_SOAP, "Code") {
        out.code = code.child(NS_SOAP, "Value").map(|v| v.text().trim().to_string());
        // Subcodes nest; the innermost is the most specific.
        let mut sub = code.child(NS_SOAP, "Subcode");
        while let Some(s) = sub {
            if let Some(v) = s.child(NS_SOAP, "Value") {
                out.subcode = Some(v.text().trim().to_string());
            }
            sub = s.child(NS_SOAP, "Subcode");
        }
    }
    out.reason = f.child(NS_SOAP, "Reason").and_then(|r| r.child(NS_SOAP, "Text")).map(|t| t.text().trim().to_string());
    if let Some(detail) = f.child(NS_SOAP, "Detail") {
        if let Some(wf) = find(detail, &|e| e.is(NS_WSMANFAULT, "WSManFault")) {
            out.wsman_code = wf.attr_unqualified("Code").and_then(parse_code);
            out.machine = wf.attr_unqualified("Machine").map(str::to_string);
            out.message = wf.child(NS_WSMANFAULT, "Message").map(|m| collapse(&all_text(m))).filter(|m| !m.is_empty());
        }
        // An error instance may sit beside the WSManFault as well as inside it.
        let outer = find(detail, &|e| e.is(NS_WSMANFAULT, "WSManFault"));
        collect_codes(detail, outer, &mut out);
    }
    out
}

/// Gathers codes below `e` in document order (so the innermost comes last), leaving out the
/// `Code` of the outer WSManFault, which is kept as [`Fault::wsman_code`].
fn collect_codes(e: &Elem, outer: Option<&Elem>, out: &mut Fault) {
    if e.is(NS_WSMANFAULT, "WSManFault") && !outer.is_some_and(|o| std::ptr::eq(o, e)) {
        out.provider_codes.extend(e.attr_unqualified("Code").and_then(parse_code));
    }
    let field = |name: &str| e.elements().find(|c| c.local == name).map(|c| c.text());
    if let Some(status) = field("CIMStatusCode").and_then(|t| parse_code(&t)) {
        out.cim_status = Some(status);
    }
    if out.message.is_none() && (field("CIMStatusCode").is_some() || field("error_Code").is_some()) {
        out.message = field("Message").map(|m| collapse(&m)).filter(|m| !m.is_empty());
    }
    if let Some(code) = field("error_Code").and_then(|t| parse_code(&t)) {
        // OMI_Error carries an MI_Result (a CIM status) there; MSFT_WmiError an HRESULT.
        if field("error_Type").is_some_and(|t| t.trim().eq_ignore_ascii_case("MI")) {
            out.cim_status = Some(code);
        } else {
            out.provider_codes.push(code);
        }
    }
    if let Some(code) = field("StatusCode").and_then(|t| parse_code(&t)) {
        out.provider_codes.push(code);
    }
    for c in e.elements() {
        collect_codes(c, outer, out);
    }
}

fn find<'e>(e: &'e Elem, pred: &dyn Fn(&Elem) -> bool) -> Option<&'e Elem> {
    if pred(e) {
        return Some(e);
    }
    e.elements().find_map(|c| find(c, pred))
}

fn all_text(e: &Elem) -> String {
    let mut s = String::new();
    for c in &e.children {
        match c {
            Node::Text(t) => s.push_str(t),
            Node::Elem(el) => {
                s.push(' ');
                s.push_str(&all_text(el));
            }
        }
    }
    s
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A code as decimal (`2150859174`) or hex (`0x80041010`).
fn parse_code(s: &str) -> Option<u32> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => s.parse::<u32>().ok().or_else(|| s.parse::<i32>().ok().map(|v| v as u32)),
    }
}

/// The category a numeric code means, when it has one: WS-Man's own codes, then WMI's.
fn category_of_code(code: u32) -> Option<Category> {
    Some(match code {
        // ERROR_WSMAN_ENUMERATE_CANNOT_PROCESS_FILTER, ERROR_WSMAN_ENUMERATE_FILTER_DIALECT_REQUESTED_UNAVAILABLE
        2_150_858_778 | 2_150_858_777 => Category::InvalidQuery,
        // ERROR_WSMAN_RESOURCE_NOT_FOUND
        2_150_858_752 => Category::NotFound,
        // ERROR_WSMAN_OPERATION_TIMEDOUT, ERROR_WSMAN_ENUMERATE_TIMED_OUT
        2_150_858_793 | 2_150_858_780 => Category::TimedOut,
        // ERROR_WSMAN_QUOTA_MAX_OPERATIONS, _QUOTA_LIMIT, _QUOTA_USER, _QUOTA_SYSTEM,
        // _QUOTA_MAX_OPERATIONS_USER_PPQ
        2_150_859_174 | 2_150_858_815 | 2_150_859_175 | 2_150_859_176 | 2_150_859_240 => Category::QuotaExceeded,
        // ERROR_WSMAN_MAX_ENVELOPE_SIZE_EXCEEDED, ERROR_WSMAN_ENVELOPE_TOO_LARGE
        2_150_858_824 | 2_150_858_790 => Category::EnvelopeTooLarge,
        // ERROR_WSMAN_ENUMERATE_INVALID_ENUMERATION_CONTEXT, ERROR_WSMAN_ENUMERATION_CLOSED
        2_150_858_779 | 2_150_858_759 => Category::InvalidEnumerationContext,
        _ => return crate::protocol::wbem::category(code),
    })
}

/// The category a CIM status code (DSP0004 / DSP0200 CIM_ERR_*) means.
fn category_of_cim_status(code: u32) -> Option<Category> {
    Some(match code {
        2 => Category::AccessDenied,
        3 => Category::InvalidNamespace,
        5 => Category::InvalidClass,
        6 => Category::NotFound,
        7 | 25 => Category::Unsupported,
        // QUERY_LANGUAGE_NOT_SUPPORTED, INVALID_QUERY
        14 | 15 => Category::InvalidQuery,
        21 => Category::InvalidEnumerationContext,
        27 => Category::QuotaExceeded,
        _ => return None,
    })
}

/// The category a SOAP subcode means (compared by local part: the prefixes are the server's).
fn category_of_subcode(sub: &str) -> Option<Category> {
    let local = sub.rsplit(':').next().unwrap_or(sub);
    Some(match local {
        "AccessDenied" => Category::AccessDenied,
        "TimedOut" => Category::TimedOut,
        "QuotaLimit" => Category::QuotaExceeded,
        "EncodingLimit" => Category::EnvelopeTooLarge,
        "InvalidEnumerationContext" | "InvalidContext" => Category::InvalidEnumerationContext,
        "CannotProcessFilter" | "FilterDialectRequestedUnavailable" => Category::InvalidQuery,
        // Windows answers an enumeration of a class it does not have with these.
        "DestinationUnreachable" | "InvalidSelectors" => Category::InvalidClass,
        "ActionNotSupported" | "UnsupportedFeature" => Category::Unsupported,
        _ => return None,
    })
}

impl Fault {
    /// The shared error for this fault: provider codes first, then the WSManFault code, then the subcode.
    pub fn to_error(&self) -> Error {
        let provider = self.provider_codes.iter().rev().find_map(|&c| Some((c, category_of_code(c)?)));
        let category = provider
            .map(|(_, cat)| cat)
            .or_else(|| self.cim_status.and_then(category_of_cim_status))
            .or_else(|| self.wsman_code.and_then(category_of_code))
            .or_else(|| self.subcode.as_deref().and_then(category_of_subcode))
            .unwrap_or(Category::ServerFault);
        let mut message = self.message.clone().or_else(|| self.reason.clone()).unwrap_or_default();
        if let Some((inner, _)) = provider {
            // The provider's HRESULT is what users search for; keep it visible.
            message = format!("{message} (0x{inner:08X})");
        }
        if message.is_empty() {
            message = "the server returned a SOAP fault without a reason".into();
        }
        let code = match (self.wsman_code, &self.subcode) {
            (Some(c), _) => Some(c.to_string()),
            (None, Some(s)) => Some(s.clone()),
            (None, None) => self.code.clone(),
        };
        Error { category, code, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::wsman::response::{Expect, Reply, parse};

    fn fault(xml: &str) -> Fault {
        match parse(xml.as_bytes(), None, &Expect::default()).unwrap() {
            Reply::Fault(f) => f,
            Reply::Page(p) => panic!("not a fault: {p:?}"),
        }
    }

    fn envelope(sub: &str, detail: &str) -> String {
        format!(
            r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><s:Body><s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>{sub}</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">reason text</s:Text></s:Reason><s:Detail>{detail}</s:Detail></s:Fault></s:Body></s:Envelope>"#
        )
    }

    #[test]
    fn recorded_quota_fault() {
        // `shared/` sits beside the crate in CI and two levels up from a worktree.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let rel = "shared/testdata/wsman/txwinrm/data_error/max_concurrent.xml";
        let path = [root.join("..").join(rel), root.join("../..").join(rel)].into_iter().find(|p| p.exists());
        let xml = std::fs::read_to_string(path.expect("shared/testdata beside the crate")).unwrap();
        let f = fault(&xml);
        assert_eq!(f.code.as_deref(), Some("s:Receiver"));
        assert_eq!(f.subcode.as_deref(), Some("w:InternalError"));
        assert_eq!(f.wsman_code, Some(2_150_859_174));
        assert_eq!(f.machine.as_deref(), Some("103040106"));
        let e = f.to_error();
        assert_eq!(e.category, Category::QuotaExceeded);
        assert_eq!(e.code.as_deref(), Some("2150859174"));
        assert!(e.message.starts_with(
            "The WS-Management service cannot process the request. This user is allowed a maximum number of 15"
        ));
    }

    #[test]
    fn provider_fault_with_wmi_error_decides() {
        let detail = r#"<f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="2150858752" Machine="h"><f:Message><f:ProviderFault provider="WMI Provider" path="x"><f:WSManFault Code="2147749902" Machine="h"><f:Message>Invalid namespace </f:Message></f:WSManFault><f:ExtendedError><p:__ExtendedStatus xmlns:p="urn:x"><p:StatusCode>2147749902</p:StatusCode></p:__ExtendedStatus></f:ExtendedError></f:ProviderFault></f:Message></f:WSManFault>"#;
        let e = fault(&envelope("w:InvalidSelectors", detail)).to_error();
        assert_eq!(e.category, Category::InvalidNamespace);
        assert_eq!(e.code.as_deref(), Some("2150858752"));
        assert!(e.message.contains("Invalid namespace"), "{}", e.message);
        assert!(e.message.contains("0x8004100E"));

        let wmi = r#"<p:MSFT_WmiError xmlns:p="urn:y"><p:CIMStatusCode>5</p:CIMStatusCode><p:error_Code>2147749904</p:error_Code><p:Message>Invalid class </p:Message></p:MSFT_WmiError>"#;
        let e = fault(&envelope("w:DestinationUnreachable", wmi)).to_error();
        assert_eq!(e.category, Category::InvalidClass);
        assert_eq!(e.code.as_deref(), Some("w:DestinationUnreachable"));
    }

    #[test]
    fn subcodes_and_wsman_codes_map() {
        let wf = |code: u32| {
            format!(
                r#"<f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="{code}"><f:Message>m</f:Message></f:WSManFault>"#
            )
        };
        let cases = [
            ("w:TimedOut", wf(2_150_858_793), Category::TimedOut),
            ("w:EncodingLimit", wf(2_150_858_824), Category::EnvelopeTooLarge),
            ("w:AccessDenied", String::new(), Category::AccessDenied),
            ("n:InvalidEnumerationContext", String::new(), Category::InvalidEnumerationContext),
            ("w:CannotProcessFilter", wf(2_150_858_778), Category::InvalidQuery),
            ("w:InternalError", wf(5), Category::AccessDenied),
            ("w:InternalError", wf(2_150_858_780), Category::TimedOut),
            ("w:InternalError", wf(1), Category::ServerFault),
            // WMI's codes in a WSManFault: the table DCOM's results use too.
            ("w:InternalError", wf(0x8004_3001), Category::QuotaExceeded),
            ("w:InternalError", wf(0x8004_1011), Category::ServerFault),
        ];
        for (sub, detail, want) in cases {
            assert_eq!(fault(&envelope(sub, &detail)).to_error().category, want, "{sub} {detail}");
        }
        let e = fault(&envelope("w:Weird", "")).to_error();
        assert_eq!(
            (e.category, e.code.as_deref(), e.message.as_str()),
            (Category::ServerFault, Some("w:Weird"), "reason text")
        );
    }

    #[test]
    fn cim_error_instances_beside_or_without_a_wsman_fault() {
        // Windows' MI stack: MSFT_WmiError beside the WSManFault, HRESULT in error_Code.
        let both = r#"<f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="2150858752"><f:Message>m</f:Message></f:WSManFault><p:MSFT_WmiError xmlns:p="urn:w"><p:CIMStatusCode>3</p:CIMStatusCode><p:error_Code>2147749902</p:error_Code><p:error_Type>HRESULT</p:error_Type></p:MSFT_WmiError>"#;
        let f = fault(&envelope("w:InternalError", both));
        assert_eq!(
            (f.wsman_code, f.provider_codes.clone(), f.cim_status),
            (Some(2_150_858_752), vec![0x8004_100E], Some(3))
        );
        assert_eq!(f.to_error().category, Category::InvalidNamespace);
        // OMI: error_Code is an MI_Result when error_Type is MI; 5 is an invalid class, not access denied.
        let omi = r#"<p:OMI_Error xmlns:p="urn:o"><p:error_Code>5</p:error_Code><p:error_Type>MI</p:error_Type><p:Message>no such class</p:Message></p:OMI_Error>"#;
        let f = fault(&envelope("w:InternalError", omi));
        assert!(f.provider_codes.is_empty());
        assert_eq!(f.to_error().category, Category::InvalidClass);
        assert_eq!(f.to_error().message, "no such class");
        let query = r#"<p:OMI_Error xmlns:p="urn:o"><p:CIMStatusCode>15</p:CIMStatusCode></p:OMI_Error>"#;
        assert_eq!(fault(&envelope("w:InternalError", query)).to_error().category, Category::InvalidQuery);
    }

    #[test]
    fn codes_in_hex_and_negative_decimal() {
        assert_eq!(parse_code("0x80041010"), Some(0x8004_1010));
        assert_eq!(parse_code("-2147217392"), Some(0x8004_1010));
        assert_eq!(parse_code("nope"), None);
    }
}

//! The SOAP faults the test server sends, with WinRM's subcodes, `WSManFault` codes and wording.

use super::render::Fault;

// ERROR_WSMAN_* and WBEM_E_* codes, as Windows puts them in WSManFault/@Code.
pub(crate) const RESOURCE_NOT_FOUND: u32 = 2_150_858_752;
pub(crate) const INVALID_ENUMERATION_CONTEXT: u32 = 2_150_858_779;
pub(crate) const OPERATION_TIMEDOUT: u32 = 2_150_858_793;
pub(crate) const MAX_ENVELOPE_SIZE_EXCEEDED: u32 = 2_150_858_824;
pub(crate) const QUOTA_MAX_OPERATIONS: u32 = 2_150_859_174;
pub(crate) const ACTION_NOT_SUPPORTED: u32 = 2_150_858_753;
pub(crate) const INVALID_SOAP_BODY: u32 = 2_150_858_791;
const WBEM_E_NOT_FOUND: u32 = 2_147_749_890;
const WBEM_E_INVALID_NAMESPACE: u32 = 2_147_749_902;
const WBEM_E_INVALID_CLASS: u32 = 2_147_749_904;
const WBEM_E_INVALID_QUERY: u32 = 2_147_749_911;
const E_ACCESSDENIED: u32 = 5;

const CANNOT_PROCESS: &str = "The WS-Management service cannot process the request.";

fn wmi(subcode: &'static str, reason: &str, code: u32, message: &str) -> Fault {
    Fault {
        code: "s:Sender",
        subcode,
        reason: reason.to_string(),
        wsman_code: RESOURCE_NOT_FOUND,
        message: String::new(),
        provider: Some((code, message.to_string())),
    }
}

/// The class does not exist (WMI 0x80041010 inside a provider fault).
pub fn invalid_class() -> Fault {
    let reason =
        format!("{CANNOT_PROCESS} The WMI service or the WMI provider returned an unknown error: HRESULT 0x80041010 ");
    wmi("w:DestinationUnreachable", &reason, WBEM_E_INVALID_CLASS, "Invalid class ")
}

/// The namespace does not exist (WMI 0x8004100E).
pub fn invalid_namespace() -> Fault {
    let reason =
        format!("{CANNOT_PROCESS} The WMI service or the WMI provider returned an unknown error: HRESULT 0x8004100e ");
    wmi("w:DestinationUnreachable", &reason, WBEM_E_INVALID_NAMESPACE, "Invalid namespace ")
}

/// The WQL query was rejected (WMI 0x80041017).
pub fn invalid_query(detail: &str) -> Fault {
    let reason =
        format!("{CANNOT_PROCESS} The WMI service or the WMI provider returned an unknown error: HRESULT 0x80041017 ");
    let mut f = wmi("w:CannotProcessFilter", &reason, WBEM_E_INVALID_QUERY, &format!("Invalid query {detail}"));
    f.wsman_code = RESOURCE_NOT_FOUND;
    f
}

/// WS-Transfer Get for an instance that does not exist (WMI 0x80041002).
pub fn not_found() -> Fault {
    let reason =
        format!("{CANNOT_PROCESS} The service cannot find the resource identified by the resource URI and selectors.");
    wmi("w:InvalidSelectors", &reason, WBEM_E_NOT_FOUND, "Not found ")
}

fn plain(code: &'static str, subcode: &'static str, wsman_code: u32, message: &str) -> Fault {
    Fault { code, subcode, reason: message.to_string(), wsman_code, message: message.to_string(), provider: None }
}

/// The account may not use WinRM (authenticated, not authorized).
pub fn access_denied() -> Fault {
    plain("s:Sender", "w:AccessDenied", E_ACCESSDENIED, "Access is denied. ")
}

/// The per-user operation quota was exceeded (the recorded `max_concurrent.xml` fault).
pub fn quota_exceeded() -> Fault {
    let mut f = plain(
        "s:Receiver",
        "w:InternalError",
        QUOTA_MAX_OPERATIONS,
        "The WS-Management service cannot process the request. This user is allowed a maximum number of 15 concurrent operations, which has been exceeded. Close existing operations for this user, or raise the quota for this user. ",
    );
    f.reason = "The WS-Management service cannot process the request. The maximum number of concurrent operations for this user has been exceeded. Close existing operations for this user, or raise the quota for this user. ".into();
    f
}

/// The operation did not complete within OperationTimeout; retrying is expected.
pub fn timed_out() -> Fault {
    plain(
        "s:Receiver",
        "w:TimedOut",
        OPERATION_TIMEDOUT,
        "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.  ",
    )
}

/// The response would exceed the request's MaxEnvelopeSize.
pub fn envelope_too_large() -> Fault {
    plain(
        "s:Receiver",
        "w:EncodingLimit",
        MAX_ENVELOPE_SIZE_EXCEEDED,
        "The WS-Management service cannot process the request because the response would exceed the maximum envelope size (MaxEnvelopeSize). ",
    )
}

/// Pull or Release with a context the server does not know (expired, released or made up).
pub fn invalid_enumeration_context() -> Fault {
    plain(
        "s:Sender",
        "n:InvalidEnumerationContext",
        INVALID_ENUMERATION_CONTEXT,
        "The WS-Management service cannot process the request because the enumeration context supplied in the message is not valid. ",
    )
}

/// An action other than Enumerate, Pull, Release and Get.
pub fn action_not_supported(action: &str) -> Fault {
    plain(
        "s:Sender",
        "a:ActionNotSupported",
        ACTION_NOT_SUPPORTED,
        &format!("The WS-Management service cannot process the request. The action {action} is not supported. "),
    )
}

/// The envelope is not a WS-Man request this server understands.
pub fn invalid_request(detail: &str) -> Fault {
    plain("s:Sender", "w:SchemaValidationError", INVALID_SOAP_BODY, &format!("{CANNOT_PROCESS} {detail}"))
}

//! WMI status codes and what they mean to a run: one table for every protocol that carries
//! them (DCOM returns them as call results, WS-Man puts them in a fault's provider detail).
//!
//! Codes from wbemcli.h (WBEMSTATUS, WBEM_EXTRA_RETURN_CODES) and MS-WMI 2.2.11, plus the
//! Win32 and COM access-denied codes Windows reports beside them.

use super::Category;

/// WBEM_E_NOT_FOUND
const NOT_FOUND: u32 = 0x8004_1002;
/// WBEM_E_ACCESS_DENIED
const ACCESS_DENIED: u32 = 0x8004_1003;
/// WBEM_E_NOT_SUPPORTED
const NOT_SUPPORTED: u32 = 0x8004_100C;
/// WBEM_E_INVALID_NAMESPACE
const INVALID_NAMESPACE: u32 = 0x8004_100E;
/// WBEM_E_INVALID_CLASS
const INVALID_CLASS: u32 = 0x8004_1010;
/// WBEM_E_INVALID_QUERY
const INVALID_QUERY: u32 = 0x8004_1017;
/// WBEM_E_INVALID_QUERY_TYPE (a query language the server does not know)
const INVALID_QUERY_TYPE: u32 = 0x8004_1018;
/// WBEM_E_INVALID_SYNTAX
const INVALID_SYNTAX: u32 = 0x8004_1021;
/// WBEM_E_PROVIDER_NOT_CAPABLE (the provider cannot run this kind of query)
const PROVIDER_NOT_CAPABLE: u32 = 0x8004_1024;
/// WBEM_E_QUOTA_VIOLATION
const QUOTA_VIOLATION: u32 = 0x8004_106C;
/// WBEM_E_RETRY_LATER
const RETRY_LATER: u32 = 0x8004_3001;
/// WBEM_E_RESOURCE_CONTENTION
const RESOURCE_CONTENTION: u32 = 0x8004_3002;
/// E_ACCESSDENIED (HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED))
const E_ACCESSDENIED: u32 = 0x8007_0005;
/// ERROR_ACCESS_DENIED, as WS-Man's provider detail sometimes gives it.
const ERROR_ACCESS_DENIED: u32 = 5;

/// The category a WMI status code means; `None` for codes that fit no category better than a
/// plain server fault (provider failures, WBEM_E_FAILED, a call the server cancelled).
pub fn category(code: u32) -> Option<Category> {
    Some(match code {
        ACCESS_DENIED | E_ACCESSDENIED | ERROR_ACCESS_DENIED => Category::AccessDenied,
        INVALID_NAMESPACE => Category::InvalidNamespace,
        INVALID_CLASS => Category::InvalidClass,
        INVALID_QUERY | INVALID_QUERY_TYPE | INVALID_SYNTAX => Category::InvalidQuery,
        NOT_FOUND => Category::NotFound,
        NOT_SUPPORTED | PROVIDER_NOT_CAPABLE => Category::Unsupported,
        // The server is busy: worth another attempt, as a quota is.
        QUOTA_VIOLATION | RETRY_LATER | RESOURCE_CONTENTION => Category::QuotaExceeded,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_their_categories() {
        assert_eq!(category(0x8004_1010), Some(Category::InvalidClass));
        assert_eq!(category(0x8004_100E), Some(Category::InvalidNamespace));
        assert_eq!(category(0x8007_0005), Some(Category::AccessDenied));
        assert_eq!(category(5), Some(Category::AccessDenied));
        assert_eq!(category(0x8004_1021), Some(Category::InvalidQuery));
        // A busy server is retried; a missing provider or a failed one is not.
        assert!(category(0x8004_3001).is_some_and(Category::is_retryable));
        assert!(category(0x8004_3002).is_some_and(Category::is_retryable));
        // WBEM_E_PROVIDER_NOT_FOUND, WBEM_E_FAILED, WBEM_E_PROVIDER_FAILURE, WBEM_E_CALL_CANCELLED
        for code in [0x8004_1011, 0x8004_1001, 0x8004_1004, 0x8004_1032] {
            assert_eq!(category(code), None, "0x{code:08x}");
        }
    }
}

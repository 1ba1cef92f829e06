//! Resource URIs: which WS-Man resource a query addresses, and the WQL filter it sends.
//!
//! Windows addresses WMI classes as `…/wmi/<namespace>/<Class>`; a filtered or projected
//! query goes to `…/wmi/<namespace>/*` with the WQL as a filter. OMI (and Windows for CIM_
//! classes) addresses DMTF classes as `…/cim-schema/2/<Class>` with the namespace in a
//! `__cimnamespace` selector.

use crate::protocol::{QuerySpec, normalize_namespace};

/// Prefix of WMI resource URIs.
pub const WMI_BASE: &str = "http://schemas.microsoft.com/wbem/wsman/1/wmi/";
/// Prefix of DMTF CIM class resource URIs.
pub const DMTF_BASE: &str = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/";
/// The selector carrying the namespace with DMTF URIs.
pub const CIM_NAMESPACE_SELECTOR: &str = "__cimnamespace";

/// How resource URIs are formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheme {
    /// `…/wmi/<namespace>/<Class>`, as Windows expects.
    #[default]
    Wmi,
    /// `…/cim-schema/2/<Class>` + `__cimnamespace`, as OMI expects.
    Dmtf,
}

/// What an Enumerate addresses: the resource URI, its selectors and an optional WQL filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub uri: String,
    pub selectors: Vec<(String, String)>,
    /// WQL text for a wsman:Filter in the WQL dialect.
    pub filter: Option<String>,
}

/// The resource a query enumerates.
pub fn resource(query: &QuerySpec, scheme: Scheme) -> Resource {
    let ns = normalize_namespace(&query.namespace);
    let class = query.class_name();
    let filtered = query.needs_filter || !query.wql.properties.is_empty() || query.wql.filter.is_some();
    let filter = filtered.then(|| query.wql.to_string());
    if let Some(uri) = &query.resource_uri {
        return Resource { uri: uri.clone(), selectors: Vec::new(), filter };
    }
    match scheme {
        Scheme::Wmi if filter.is_some() => Resource { uri: format!("{WMI_BASE}{ns}/*"), selectors: Vec::new(), filter },
        Scheme::Wmi => Resource { uri: format!("{WMI_BASE}{ns}/{class}"), selectors: Vec::new(), filter: None },
        Scheme::Dmtf => Resource {
            uri: format!("{DMTF_BASE}{class}"),
            selectors: vec![(CIM_NAMESPACE_SELECTOR.to_string(), ns)],
            filter,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wql::Expr;

    fn spec(class: &str) -> QuerySpec {
        QuerySpec::class(class)
    }

    #[test]
    fn plain_class_uses_the_class_uri() {
        let r = resource(&spec("Win32_Service"), Scheme::Wmi);
        assert_eq!(r.uri, "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/Win32_Service");
        assert_eq!(r.filter, None);
        assert!(r.selectors.is_empty());
    }

    #[test]
    fn property_list_or_filter_uses_star_and_wql() {
        let mut q = spec("Win32_Service");
        q.namespace = "root\\CIMV2".into();
        q.wql.properties = vec!["Name".into(), "State".into()];
        let r = resource(&q, Scheme::Wmi);
        assert_eq!(r.uri, "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/CIMV2/*");
        assert_eq!(r.filter.as_deref(), Some("SELECT Name, State FROM Win32_Service"));

        // A class with a WHERE filter, or WQL text from the job, also goes through `*`.
        let mut q = spec("Win32_Service");
        q.wql.filter = Some(Expr::IsNull { property: "PathName".into(), negated: true });
        assert_eq!(resource(&q, Scheme::Wmi).uri, "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/*");
        let mut q = spec("Win32_Service");
        q.needs_filter = true;
        let r = resource(&q, Scheme::Wmi);
        assert_eq!(r.uri, "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/*");
        assert_eq!(r.filter.as_deref(), Some("SELECT * FROM Win32_Service"));
    }

    #[test]
    fn dmtf_scheme_uses_cimnamespace_selector() {
        let mut q = spec("CIM_OperatingSystem");
        q.namespace = "root/cimv2/".into();
        let r = resource(&q, Scheme::Dmtf);
        assert_eq!(r.uri, "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_OperatingSystem");
        assert_eq!(r.selectors, vec![("__cimnamespace".to_string(), "root/cimv2".to_string())]);
        assert_eq!(r.filter, None);
    }

    #[test]
    fn explicit_uri_overrides() {
        let mut q = spec("X");
        q.resource_uri = Some("http://example/r".into());
        q.wql.filter = Some(Expr::Like { property: "N".into(), pattern: "a%".into(), negated: false });
        let r = resource(&q, Scheme::Dmtf);
        assert_eq!(r.uri, "http://example/r");
        assert!(r.selectors.is_empty());
        assert_eq!(r.filter, Some(q.wql.to_string()));
    }
}

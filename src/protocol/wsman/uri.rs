//! Resource URIs: which WS-Man resource a query addresses, and the WQL filter it sends.
//!
//! Windows addresses WMI classes as `…/wmi/<namespace>/<Class>`; a filtered or projected
//! query goes to `…/wmi/<namespace>/*` with the WQL as a filter. OMI (and Windows for CIM_
//! classes) addresses DMTF classes as `…/cim-schema/2/<Class>` with the namespace in a
//! `__cimnamespace` selector.

use std::fmt::Write as _;

use crate::protocol::QuerySpec;
use crate::wql::{CmpOp, Expr, Literal, Query};

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
    let filter = filtered.then(|| wql_text(&query.wql));
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

/// `root\CIMV2`, `/root/cimv2/` → `root/CIMV2`, `root/cimv2`: the form a URI path takes.
pub fn normalize_namespace(ns: &str) -> String {
    let ns = ns.replace('\\', "/");
    let trimmed = ns.trim_matches('/');
    if trimmed.is_empty() { "root/cimv2".to_string() } else { trimmed.to_string() }
}

/// The WQL text of a query, as sent to the server.
///
/// Kept behind this one function so it can defer to `wql::Query`'s own rendering once that
/// exists; it quotes strings with `'` and escapes `\` and `'` as WMI's parser expects.
pub fn wql_text(q: &Query) -> String {
    let mut s = String::from("SELECT ");
    if q.properties.is_empty() {
        s.push('*');
    } else {
        s.push_str(&q.properties.join(","));
    }
    write!(s, " FROM {}", q.class).ok();
    if let Some(f) = &q.filter {
        s.push_str(" WHERE ");
        expr(&mut s, f);
    }
    s
}

fn expr(s: &mut String, e: &Expr) {
    match e {
        Expr::And(a, b) | Expr::Or(a, b) => {
            s.push('(');
            expr(s, a);
            s.push_str(if matches!(e, Expr::And(..)) { " AND " } else { " OR " });
            expr(s, b);
            s.push(')');
        }
        Expr::Not(a) => {
            s.push_str("NOT (");
            expr(s, a);
            s.push(')');
        }
        Expr::Compare { property, op, value } => {
            let op = match op {
                CmpOp::Eq => "=",
                CmpOp::Ne => "<>",
                CmpOp::Lt => "<",
                CmpOp::Le => "<=",
                CmpOp::Gt => ">",
                CmpOp::Ge => ">=",
            };
            write!(s, "{property} {op} ").ok();
            literal(s, value);
        }
        Expr::Like { property, pattern, negated } => {
            write!(s, "{property} {}LIKE ", if *negated { "NOT " } else { "" }).ok();
            quoted(s, pattern);
        }
        Expr::IsNull { property, negated } => {
            write!(s, "{property} IS {}NULL", if *negated { "NOT " } else { "" }).ok();
        }
        Expr::Isa { property, class } => {
            write!(s, "{property} ISA ").ok();
            quoted(s, class);
        }
    }
}

fn literal(s: &mut String, l: &Literal) {
    match l {
        Literal::String(v) => quoted(s, v),
        Literal::Integer(v) => write!(s, "{v}").unwrap_or(()),
        Literal::Real(v) => write!(s, "{v:?}").unwrap_or(()),
        Literal::Bool(v) => s.push_str(if *v { "TRUE" } else { "FALSE" }),
        Literal::Null => s.push_str("NULL"),
    }
}

fn quoted(s: &mut String, v: &str) {
    s.push('\'');
    for c in v.chars() {
        if c == '\'' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('\'');
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(r.filter, Some(wql_text(&q.wql)));

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

    /// The stand-in formatter (see [`wql_text`]): quoting and escaping as WMI reads them.
    #[test]
    fn wql_text_quotes_and_groups() {
        let q = Query {
            properties: vec!["Name".into(), "State".into()],
            class: "Win32_Service".into(),
            filter: Some(Expr::And(
                Box::new(Expr::Compare {
                    property: "Name".into(),
                    op: CmpOp::Ne,
                    value: Literal::String("it's \\".into()),
                }),
                Box::new(Expr::Not(Box::new(Expr::IsNull { property: "PathName".into(), negated: true }))),
            )),
        };
        assert_eq!(
            wql_text(&q),
            "SELECT Name,State FROM Win32_Service WHERE (Name <> 'it\\'s \\\\' AND NOT (PathName IS NOT NULL))"
        );
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
        assert_eq!(r.filter, Some(wql_text(&q.wql)));
    }

    #[test]
    fn literals_render_as_wql() {
        let cmp = |v| Expr::Compare { property: "P".into(), op: CmpOp::Ge, value: v };
        let q = |e| Query { properties: vec![], class: "C".into(), filter: Some(e) };
        assert_eq!(wql_text(&q(cmp(Literal::Integer(-5)))), "SELECT * FROM C WHERE P >= -5");
        assert_eq!(wql_text(&q(cmp(Literal::Real(1.5)))), "SELECT * FROM C WHERE P >= 1.5");
        assert_eq!(wql_text(&q(cmp(Literal::Bool(true)))), "SELECT * FROM C WHERE P >= TRUE");
        assert_eq!(
            wql_text(&q(Expr::Isa { property: "P".into(), class: "Win32_X".into() })),
            "SELECT * FROM C WHERE P ISA 'Win32_X'"
        );
    }
}

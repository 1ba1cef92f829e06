//! The WS-Man operations of a simulated host: Enumerate, Pull, Release and Get over its
//! dataset, paged and shaped as Windows Server 2012 does.

use std::collections::HashMap;

use super::dataset;
use super::faults;
use super::render::{self, ItemShape, WMI_URI_PREFIX};
use super::request::{DIALECT_WQL, Request};
use super::server::HostConfig;
use crate::cim::Instance;

/// A class of the host, generated for this request: a fleet keeps nothing per host.
fn class_of(host: &HostConfig, class: &str) -> Result<Vec<Instance>, render::Fault> {
    dataset::generate_class(&host.name, host.seed, class).ok_or_else(faults::invalid_class)
}

/// MaxEnvelopeSize when the request gives none (DSP0226's default).
const DEFAULT_MAX_ENVELOPE: usize = 153_600;
/// WinRM's MaxEnvelopeSizekb default (500 KB): the cap on any page.
const SERVER_MAX_ENVELOPE: usize = 512_000;

/// One open enumeration.
struct Enumeration {
    items: Vec<Instance>,
    pos: usize,
    shape: ItemShape,
    pulls: u32,
}

/// A host's open enumeration contexts.
#[derive(Default)]
pub(crate) struct Enumerations(HashMap<String, Enumeration>);

impl Enumerations {
    /// How many are open.
    pub(crate) fn open(&self) -> usize {
        self.0.len()
    }

    /// Pulls answered so far for a context, if it is open.
    pub(crate) fn pulls(&self, context: &str) -> Option<u32> {
        self.0.get(context).map(|e| e.pulls)
    }
}

/// What an Enumerate or Get addresses: a class, and the properties of a WQL select list.
#[derive(Debug, Clone, PartialEq)]
struct Target {
    class: String,
    /// `None` for `*` (typed items); a list means `w:XmlFragment` items.
    properties: Option<Vec<String>>,
    /// The WHERE condition, if any.
    condition: Option<crate::wql::Expr>,
    /// The `__cimnamespace` of a DMTF resource URI (OMI's addressing), `None` for a WMI one.
    dmtf_namespace: Option<String>,
}

pub(crate) const DMTF_URI_PREFIX: &str = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/";

fn target(request: &Request) -> Result<Target, render::Fault> {
    let uri = request.resource_uri.as_deref().unwrap_or_default();
    let (namespace, class, dmtf) = if let Some(rest) = uri.strip_prefix(WMI_URI_PREFIX) {
        match rest.rsplit_once('/') {
            Some((ns, class)) => (ns.to_string(), class.to_string(), false),
            None => return Err(faults::invalid_namespace()),
        }
    } else if let Some(class) = uri.strip_prefix(DMTF_URI_PREFIX) {
        let ns = request
            .selectors
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("__cimnamespace"))
            .map_or("root/cimv2".to_string(), |(_, v)| v.clone());
        (ns, class.to_string(), true)
    } else {
        return Err(faults::invalid_request(&format!("unknown resource URI {uri}")));
    };
    if !namespace.eq_ignore_ascii_case("root/cimv2") {
        return Err(faults::invalid_namespace());
    }
    let dmtf_namespace = dmtf.then_some(namespace);
    let Some(filter) = &request.filter else {
        if class == "*" {
            return Err(faults::invalid_request("the * resource URI needs a WQL filter"));
        }
        return Ok(Target { class, properties: None, condition: None, dmtf_namespace });
    };
    if filter.dialect.as_deref() != Some(DIALECT_WQL) {
        return Err(faults::invalid_request("only the WQL filter dialect is supported"));
    }
    let target = parse_select(&filter.text).map_err(|e| faults::invalid_query(&e))?;
    // A filter on a class URI (as OMI takes one) must select from that class.
    if class != "*" && !class.eq_ignore_ascii_case(&target.class) {
        return Err(faults::invalid_query(&format!("(the filter selects from {}, not {class})", target.class)));
    }
    Ok(Target { dmtf_namespace, ..target })
}

fn parse_select(text: &str) -> Result<Target, String> {
    let query = crate::wql::parse(text).map_err(|e| format!("({e} at offset {})", e.offset))?;
    let properties = (!query.properties.is_empty()).then_some(query.properties);
    Ok(Target { class: query.class, properties, condition: query.filter, dmtf_namespace: None })
}

/// The instances a target selects, projected to its property list.
fn select(host: &HostConfig, target: &Target) -> Result<Vec<Instance>, render::Fault> {
    let instances = class_of(host, &target.class)?;
    // WMI rejects a query naming a property the class does not have.
    let mut named: Vec<&str> = target.properties.iter().flatten().map(String::as_str).collect();
    if let Some(cond) = &target.condition {
        named.extend(cond.properties());
    }
    let sample = instances.first();
    let unknown = |n: &&str| !n.eq_ignore_ascii_case("__CLASS") && sample.is_some_and(|i| i.get(n).is_none());
    if let Some(missing) = named.iter().find(|n| unknown(n)) {
        return Err(faults::invalid_query(&format!("(no property {missing})")));
    }
    let selected = instances.into_iter().filter(|i| target.condition.as_ref().is_none_or(|c| c.matches(i)));
    Ok(match &target.properties {
        None => selected.collect(),
        Some(names) => selected.map(|i| i.project(names)).collect(),
    })
}

fn item_shape(request: &Request, target: &Target) -> ItemShape {
    // Items and references are addressed the way the request addressed the class.
    let resource_uri = match target.dmtf_namespace {
        Some(_) => format!("{DMTF_URI_PREFIX}{}", target.class),
        None => format!("{WMI_URI_PREFIX}root/cimv2/{}", target.class),
    };
    let epr = request.enumeration_mode.as_deref().is_some_and(|m| m.eq_ignore_ascii_case("EnumerateEPR"));
    if epr {
        let keys = dataset::key_properties(&target.class).iter().map(|k| k.to_string()).collect();
        ItemShape::Epr { resource_uri, keys, namespace: target.dmtf_namespace.clone() }
    } else if target.properties.is_some() {
        ItemShape::Fragment
    } else {
        ItemShape::Typed { resource_uri }
    }
}

/// Room left for the envelope around the items.
const ENVELOPE_OVERHEAD: usize = 1024;

/// Renders up to `max_items` items from `pos` that fit in `max_envelope`; returns the XML and
/// how many were taken. Zero items fit only when the next one alone is too large.
fn page(items: &[Instance], pos: usize, max_items: usize, max_envelope: usize, shape: &ItemShape) -> (String, usize) {
    let budget = max_envelope.saturating_sub(ENVELOPE_OVERHEAD);
    let mut out = String::new();
    let mut taken = 0;
    for inst in items.iter().skip(pos).take(max_items) {
        let before = out.len();
        render::item(&mut out, inst, shape);
        if out.len() > budget {
            out.truncate(before);
            break;
        }
        taken += 1;
    }
    (out, taken)
}

fn max_envelope(request: &Request) -> usize {
    request.max_envelope_size.map_or(DEFAULT_MAX_ENVELOPE, |n| n as usize).min(SERVER_MAX_ENVELOPE)
}

pub(crate) fn enumerate(
    host: &HostConfig,
    contexts: &mut Enumerations,
    request: &Request,
) -> Result<String, render::Fault> {
    let target = target(request)?;
    let items = select(host, &target)?;
    let shape = item_shape(request, &target);
    let action = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/EnumerateResponse";
    // Windows answers an optimized Enumerate with the first item only and leaves the rest to Pull.
    let first = if request.optimize { request.max_elements.unwrap_or(1).min(1) as usize } else { 0 };
    let (xml, taken) = page(&items, 0, first, max_envelope(request), &shape);
    if taken < first && !items.is_empty() {
        return Err(faults::envelope_too_large());
    }
    let relates = request.message_id.as_deref();
    if request.optimize && taken >= items.len() {
        return Ok(render::envelope(action, relates, &render::enumeration_body(false, None, &xml, true)));
    }
    let context = render::message_id();
    contexts.0.insert(context.clone(), Enumeration { items, pos: taken, shape, pulls: 0 });
    let items_xml = if request.optimize { xml.as_str() } else { "" };
    let body = if request.optimize {
        render::enumeration_body(false, Some(&context), items_xml, false)
    } else {
        format!("<n:EnumerateResponse><n:EnumerationContext>{context}</n:EnumerationContext></n:EnumerateResponse>")
    };
    Ok(render::envelope(action, relates, &body))
}

/// Answers a Pull with up to MaxElements items, at most `max_page`.
pub(crate) fn pull(contexts: &mut Enumerations, request: &Request, max_page: u32) -> Result<String, render::Fault> {
    let ctx = request.context.as_deref().unwrap_or_default();
    let Some(mut en) = contexts.0.remove(ctx) else {
        return Err(faults::invalid_enumeration_context());
    };
    let max_items = request.max_elements.unwrap_or(1).clamp(1, max_page.max(1)) as usize;
    let (xml, taken) = page(&en.items, en.pos, max_items, max_envelope(request), &en.shape);
    if taken == 0 && en.pos < en.items.len() {
        contexts.0.insert(ctx.to_string(), en);
        return Err(faults::envelope_too_large());
    }
    en.pos += taken;
    en.pulls += 1;
    let relates = request.message_id.as_deref();
    let action = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/PullResponse";
    if en.pos >= en.items.len() {
        return Ok(render::envelope(action, relates, &render::enumeration_body(true, None, &xml, true)));
    }
    // Windows hands out a new context with every page; the old one is no longer valid.
    let next = render::message_id();
    let body = render::enumeration_body(true, Some(&next), &xml, false);
    contexts.0.insert(next, en);
    Ok(render::envelope(action, relates, &body))
}

pub(crate) fn release(contexts: &mut Enumerations, request: &Request) -> Result<String, render::Fault> {
    let ctx = request.context.as_deref().unwrap_or_default();
    if contexts.0.remove(ctx).is_none() {
        return Err(faults::invalid_enumeration_context());
    }
    let action = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/ReleaseResponse";
    Ok(render::envelope(action, request.message_id.as_deref(), ""))
}

pub(crate) fn get(host: &HostConfig, request: &Request) -> Result<String, render::Fault> {
    let target = target(request)?;
    if target.properties.is_some() || target.condition.is_some() {
        return Err(faults::invalid_request("Get addresses a class, not a query"));
    }
    let instances = class_of(host, &target.class)?;
    let selectors: Vec<&(String, String)> =
        request.selectors.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("__cimnamespace")).collect();
    let keys = dataset::key_properties(&target.class);
    // A singleton-like class with one instance may be fetched without selectors, as on Windows.
    let found = instances.iter().find(|inst| {
        (selectors.is_empty() && instances.len() == 1)
            || (!selectors.is_empty()
                && selectors.iter().all(|(k, v)| {
                    keys.iter().any(|key| key.eq_ignore_ascii_case(k))
                        && inst.get(k).is_some_and(|iv| iv.to_string().eq_ignore_ascii_case(v))
                }))
    });
    let inst = found.ok_or_else(faults::not_found)?;
    let mut xml = String::new();
    // Typed as the request addressed the class (WMI or DMTF), as Enumerate's items are.
    render::item(&mut xml, inst, &item_shape(request, &target));
    let action = "http://schemas.xmlsoap.org/ws/2004/09/transfer/GetResponse";
    Ok(render::envelope(action, request.message_id.as_deref(), &xml))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::request::Filter;

    fn request(uri: &str, filter: Option<(&str, &str)>) -> Request {
        let mut r = crate::testkit::request::parse(
            br#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"><s:Header><a:Action>http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate</a:Action></s:Header><s:Body/></s:Envelope>"#,
        )
        .unwrap();
        r.resource_uri = Some(uri.to_string());
        r.filter = filter.map(|(d, t)| Filter { dialect: Some(d.to_string()), text: t.to_string() });
        r
    }

    #[test]
    fn get_types_the_instance_as_the_request_addressed_its_class() {
        let host = HostConfig::new("h1");
        let wmi = get(&host, &request(&format!("{WMI_URI_PREFIX}root/cimv2/Win32_BIOS"), None)).unwrap();
        assert!(wmi.contains(&format!("xmlns:p=\"{WMI_URI_PREFIX}root/cimv2/Win32_BIOS\"")), "{wmi}");
        let dmtf = get(&host, &request(&format!("{DMTF_URI_PREFIX}Win32_BIOS"), None)).unwrap();
        assert!(dmtf.contains(&format!("xmlns:p=\"{DMTF_URI_PREFIX}Win32_BIOS\"")), "{dmtf}");
    }

    #[test]
    fn targets_from_resource_uris_and_filters() {
        let t = target(&request(&format!("{WMI_URI_PREFIX}root/CIMV2/Win32_BIOS"), None)).unwrap();
        assert_eq!((t.class.as_str(), t.properties, t.condition), ("Win32_BIOS", None, None));

        let q = request(
            &format!("{WMI_URI_PREFIX}root/cimv2/*"),
            Some((DIALECT_WQL, "SELECT Name FROM Win32_Service WHERE State='Running'")),
        );
        let t = target(&q).unwrap();
        assert_eq!(t.properties, Some(vec!["Name".to_string()]));
        assert!(t.condition.is_some());

        let mut dmtf = request(&format!("{DMTF_URI_PREFIX}Win32_Process"), None);
        assert_eq!(target(&dmtf).unwrap().class, "Win32_Process");
        dmtf.selectors.push(("__cimnamespace".into(), "root/other".into()));
        assert_eq!(target(&dmtf).unwrap_err().provider.map(|p| p.0), Some(2_147_749_902));

        let star_without_filter = request(&format!("{WMI_URI_PREFIX}root/cimv2/*"), None);
        assert_eq!(target(&star_without_filter).unwrap_err().subcode, "w:SchemaValidationError");
        let other_dialect = request(&format!("{WMI_URI_PREFIX}root/cimv2/*"), Some(("urn:x", "SELECT * FROM A")));
        assert_eq!(target(&other_dialect).unwrap_err().subcode, "w:SchemaValidationError");
        assert_eq!(target(&request("urn:nothing", None)).unwrap_err().subcode, "w:SchemaValidationError");
    }

    #[test]
    fn a_filter_on_a_class_uri_selects_from_that_class() {
        let wql = "SELECT Name FROM Win32_Process WHERE ProcessId < 100";
        let t = target(&request(&format!("{DMTF_URI_PREFIX}Win32_Process"), Some((DIALECT_WQL, wql)))).unwrap();
        assert_eq!((t.class.as_str(), t.properties), ("Win32_Process", Some(vec!["Name".to_string()])));
        assert!(t.condition.is_some());
        assert_eq!(t.dmtf_namespace.as_deref(), Some("root/cimv2"));
        let other = request(&format!("{WMI_URI_PREFIX}root/cimv2/Win32_Service"), Some((DIALECT_WQL, wql)));
        let fault = target(&other).unwrap_err();
        assert_eq!(fault.subcode, "w:CannotProcessFilter");
        let detail = fault.provider.map(|(_, text)| text).unwrap_or_default();
        assert!(detail.contains("selects from Win32_Process"), "{detail}");
    }

    #[test]
    fn pages_stop_at_the_envelope_budget() {
        let data = dataset::Host::generate("p1", 0);
        let services = data.class("Win32_Service").unwrap();
        let shape = ItemShape::Fragment;
        let (all, n) = page(services, 0, 10, SERVER_MAX_ENVELOPE, &shape);
        assert_eq!(n, 10);
        let (some, m) = page(services, 0, 10, all.len() / 2 + ENVELOPE_OVERHEAD, &shape);
        assert!(m > 0 && m < 10 && some.len() <= all.len() / 2, "{m}");
        let (none, z) = page(services, 0, 10, ENVELOPE_OVERHEAD + 10, &shape);
        assert_eq!((none.as_str(), z), ("", 0));
        let (_, past_end) = page(services, services.len(), 10, SERVER_MAX_ENVELOPE, &shape);
        assert_eq!(past_end, 0);
    }
}

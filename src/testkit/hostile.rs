//! Replies built to break a client's parser: larger than any limit, nested too deep, too
//! many properties, strings too long, arrays too long, or XML entities that would expand.
//! Each is a well-formed EnumerateResponse in every other respect, so the limit is what trips.

use std::fmt::Write as _;

use super::render::{self, WMI_URI_PREFIX};

/// A hostile answer to Enumerate (see [`super::Fault::Hostile`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hostile {
    /// A body of 64 MiB and 1 KiB of whitespace inside the item.
    OversizedBody,
    /// A property nested 200 elements deep.
    DeepNesting,
    /// An instance with 5000 distinct properties.
    ManyProperties,
    /// One property of 9 MiB of text.
    LongString,
    /// One array property of 2,000,000 elements.
    LongArray,
    /// A DOCTYPE declaring entities that would expand to gigabytes ("billion laughs").
    EntityExpansion,
}

const CLASS: &str = "Win32_Service";
const ENUMERATE_RESPONSE: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/EnumerateResponse";

/// The whole reply to an Enumerate whose MessageID is `relates_to`.
pub(crate) fn reply(kind: Hostile, relates_to: Option<&str>) -> String {
    let mut props = String::from("<p:Name>hostile</p:Name>");
    match kind {
        Hostile::OversizedBody => props.push_str(&" ".repeat((64 << 20) + 1024)),
        Hostile::DeepNesting => {
            props.push_str(&"<p:Deep>".repeat(200));
            props.push_str(&"</p:Deep>".repeat(200));
        }
        Hostile::ManyProperties => {
            for i in 0..5000 {
                let _ = write!(props, "<p:P{i}>{i}</p:P{i}>");
            }
        }
        Hostile::LongString => {
            props.push_str("<p:Description>");
            props.push_str(&"A".repeat(9 << 20));
            props.push_str("</p:Description>");
        }
        Hostile::LongArray => props.push_str(&"<p:A>1</p:A>".repeat(2_000_000)),
        Hostile::EntityExpansion => props.push_str("<p:Description>&lol9;</p:Description>"),
    }
    let item = format!(
        "<p:{CLASS} xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:p=\"{WMI_URI_PREFIX}root/cimv2/{CLASS}\" xsi:type=\"p:{CLASS}_Type\">{props}</p:{CLASS}>"
    );
    let body = render::enumeration_body(false, None, &item, true);
    let envelope = render::envelope(ENUMERATE_RESPONSE, relates_to, &body);
    if kind == Hostile::EntityExpansion { format!("{}{envelope}", billion_laughs()) } else { envelope }
}

/// Ten levels of ten references each: 10^9 copies of "lol" if a parser expanded them.
fn billion_laughs() -> String {
    let mut dtd = String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE s:Envelope [\n<!ENTITY lol \"lol\">\n");
    for level in 1..10 {
        let prev = if level == 1 { "lol".to_string() } else { format!("lol{}", level - 1) };
        let _ = writeln!(dtd, "<!ENTITY lol{level} \"{}\">", format!("&{prev};").repeat(10));
    }
    dtd.push_str("]>\n");
    dtd
}

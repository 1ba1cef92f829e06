//! Checks the built-in class table (src/cim/classes.txt) against real Windows responses.
//!
//! The recordings in shared/testdata/wsman/txwinrm/data/server_2012 come from a Windows Server
//! 2012 host: `<Class>.properties` lists every property that host returned, and the
//! `<Class>_star_NNN.xml` pages carry the values in the order WS-Man lists them.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use cimrun::cim::schema::{self, CimType};
use quick_xml::Reader;
use quick_xml::events::Event;

const RECORDINGS: &str = "shared/testdata/wsman/txwinrm/data";

/// The Server 2012 recordings, whose property lists the table follows.
fn data_dir() -> PathBuf {
    version_dir("server_2012")
}

/// A recordings directory: `shared/` beside the crate (as CI clones it), or beside the
/// directory holding a git worktree of the crate.
fn version_dir(version: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rel = Path::new(RECORDINGS).join(version);
    let candidates = [root.join("..").join(&rel), root.join("../..").join(&rel)];
    candidates
        .iter()
        .find(|p| p.is_dir())
        .cloned()
        .unwrap_or_else(|| panic!("recordings not found at {}", candidates[0].display()))
}

/// The classes that have a recording, found by listing the directory.
fn recorded_classes() -> Vec<String> {
    recorded_classes_in(&data_dir())
}

fn recorded_classes_in(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".properties").map(str::to_string))
        .collect();
    out.sort();
    out
}

fn star_pages(dir: &Path, class: &str) -> Vec<PathBuf> {
    let mut pages: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{class}_star_")) && n.ends_with(".xml"))
        })
        .collect();
    pages.sort();
    pages
}

/// One property element of one item: its name, its text (the inner `Datetime` text for
/// wrapped datetimes), and whether it was `xsi:nil`.
struct Element {
    name: String,
    text: String,
    nil: bool,
}

/// The items of a class in one page, each as its property elements in document order.
fn items(path: &Path, class: &str) -> Vec<Vec<Element>> {
    let xml = fs::read_to_string(path).unwrap();
    let mut reader = Reader::from_str(&xml);
    let mut out = Vec::new();
    let mut item: Option<Vec<Element>> = None;
    // Depth below the item element: 1 = a property element, 2 = a cim:Datetime wrapper.
    let mut depth = 0usize;
    loop {
        match reader.read_event().unwrap() {
            Event::Start(e) => {
                let local = String::from_utf8(e.local_name().as_ref().to_vec()).unwrap();
                if let Some(props) = item.as_mut() {
                    depth += 1;
                    if depth == 1 {
                        props.push(Element { name: local, text: String::new(), nil: false });
                    }
                } else if local == class {
                    item = Some(Vec::new());
                    depth = 0;
                }
            }
            Event::Empty(e) => {
                if let Some(props) = item.as_mut()
                    && depth == 0
                {
                    let local = String::from_utf8(e.local_name().as_ref().to_vec()).unwrap();
                    let nil = e
                        .attributes()
                        .filter_map(|a| a.ok())
                        .any(|a| a.key.local_name().as_ref() == b"nil" && a.value.as_ref() == b"true");
                    props.push(Element { name: local, text: String::new(), nil });
                }
            }
            Event::Text(t) => {
                if let Some(last) = item.as_mut().and_then(|p| p.last_mut())
                    && depth >= 1
                {
                    last.text.push_str(&t.xml_content().unwrap());
                }
            }
            Event::GeneralRef(r) => {
                if let Some(last) = item.as_mut().and_then(|p| p.last_mut())
                    && depth >= 1
                {
                    let c = match r.as_ref() {
                        b"amp" => '&',
                        b"lt" => '<',
                        b"gt" => '>',
                        b"quot" => '"',
                        b"apos" => '\'',
                        other => panic!("unexpected entity {}", String::from_utf8_lossy(other)),
                    };
                    last.text.push(c);
                }
            }
            Event::End(_) if item.is_some() => {
                if depth == 0 {
                    out.extend(item.take());
                } else {
                    depth -= 1;
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    out
}

#[test]
fn every_recorded_class_is_in_the_table() {
    let classes = recorded_classes();
    assert_eq!(classes.len(), 14, "the recordings cover 14 classes: {classes:?}");
    for c in &classes {
        assert!(schema::class(c).is_some(), "{c} is missing from classes.txt");
    }
}

/// The table's scalar properties are exactly the names Windows returned; arrays may be extra
/// only because WS-Man omits an empty array, so a name absent from the recording must be one.
#[test]
fn table_names_match_the_recorded_property_lists() {
    for c in recorded_classes() {
        let text = fs::read_to_string(data_dir().join(format!("{c}.properties"))).unwrap();
        let recorded: BTreeSet<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        let class = schema::class(&c).unwrap();
        let table: BTreeSet<&str> = class.properties.iter().map(|p| p.name.as_str()).collect();
        let missing: Vec<_> = recorded.difference(&table).collect();
        assert!(missing.is_empty(), "{c}: recorded but not in the table: {missing:?}");
        let extra_scalars: Vec<_> = class
            .properties
            .iter()
            .filter(|p| !recorded.contains(p.name.as_str()) && !p.is_array)
            .map(|p| &p.name)
            .collect();
        assert!(extra_scalars.is_empty(), "{c}: scalars Windows did not return: {extra_scalars:?}");
    }
}

/// Every element of every recorded Server 2012 item appears in the table, in the table's
/// order, and every value parses as the table's type; repeated elements are arrays.
#[test]
fn recorded_values_fit_the_table_types_and_order() {
    let checked = check_values(&data_dir(), &[]);
    // Thousands of typed values across the 14 classes; a broken reader would see none.
    assert!(checked > 1000, "only {checked} typed values checked");
}

/// Older Windows versions agree with the table's types and order too. Server 2003 also
/// returned two properties later versions dropped.
#[test]
fn older_windows_values_fit_the_table() {
    let dropped = ["Win32_OperatingSystem.QuantumLength", "Win32_OperatingSystem.QuantumType"];
    for version in ["server_2008", "server_2003"] {
        let checked = check_values(&version_dir(version), &dropped);
        assert!(checked > 500, "{version}: only {checked} typed values checked");
    }
}

/// Checks every star page in `dir`; `absent` lists `Class.Property` names allowed to be
/// missing from the table. Returns how many typed values were parsed.
fn check_values(dir: &Path, absent: &[&str]) -> usize {
    let mut checked = 0usize;
    for c in recorded_classes_in(dir) {
        let class = schema::class(&c).unwrap();
        let pages = star_pages(dir, &c);
        assert!(!pages.is_empty(), "{c} has no star pages in {}", dir.display());
        for page in pages {
            for item in items(&page, &c) {
                let mut last_index = None;
                for el in &item {
                    let Some(idx) = class.properties.iter().position(|p| p.name == el.name) else {
                        let full = format!("{c}.{}", el.name);
                        assert!(absent.contains(&full.as_str()), "{full} is not in the table ({})", page.display());
                        continue;
                    };
                    let prop = &class.properties[idx];
                    if last_index == Some(idx) {
                        assert!(prop.is_array, "{c}.{} repeats but is not an array", prop.name);
                    } else {
                        assert!(last_index < Some(idx), "{c}.{} is out of order", prop.name);
                    }
                    last_index = Some(idx);
                    if el.nil || prop.cim_type == CimType::String {
                        continue;
                    }
                    let parsed = prop.cim_type.parse_text(&el.text);
                    assert!(parsed.is_some(), "{c}.{} = {:?} is not a {:?}", prop.name, el.text, prop.cim_type);
                    checked += 1;
                }
            }
        }
    }
    checked
}

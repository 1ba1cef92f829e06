//! The fixed columns of a CSV file or a table, and how each instance maps onto them.

use crate::cim::{Instance, Name, Property, Value};

use super::scan;
use super::value::{COMPUTER_COLUMN, listed};

/// Property columns (after `PSComputerName`), fixed by the first row of a file.
#[derive(Debug, Clone)]
pub(crate) struct Columns {
    names: Vec<String>,
    /// Where each column's property is in the instance being written (`ABSENT` when it lacks
    /// it); kept between rows so a row costs no allocation.
    at: Vec<usize>,
    /// The name each column matched in a recent row. Rows of a page can share their names,
    /// and the same name again (the same allocation, held here so it cannot be reused for
    /// another) matches without comparing text.
    seen: Vec<Option<Name>>,
    /// The previous row's first property name: when this row's is the same allocation, its
    /// names are shared and worth remembering in `seen`; when not (each instance has its own
    /// names), remembering them would cost two atomic counts per cell for nothing.
    first: Option<Name>,
    warned_extra: bool,
    /// Where the output goes, for the one warning about dropped properties.
    label: String,
}

const ABSENT: usize = usize::MAX;

impl Columns {
    /// The query's property list if it has one, otherwise the first instance's properties; a
    /// name is spelled as the instance spells it when it has the property (WMI is
    /// case-insensitive, and its own spelling is the canonical one).
    pub(crate) fn from_first(properties: &[String], first: &Instance, label: &str) -> Columns {
        let source: Vec<String> = if properties.is_empty() {
            first.properties.iter().map(|p| p.name.to_string()).collect()
        } else {
            properties.to_vec()
        };
        let names = listed(&source)
            .iter()
            .map(|n| match first.properties.iter().find(|p| same_name(&p.name, n)) {
                Some(p) => p.name.to_string(),
                None => n.clone(),
            })
            .collect();
        Columns::fixed(names, label)
    }

    /// Columns already fixed, e.g. read back from the header of a file being continued.
    pub(crate) fn fixed(names: Vec<String>, label: &str) -> Columns {
        Columns {
            at: vec![ABSENT; names.len()],
            seen: vec![None; names.len()],
            first: None,
            names,
            warned_extra: false,
            label: label.to_string(),
        }
    }

    /// Every column name, `PSComputerName` first.
    pub(crate) fn header(&self) -> impl Iterator<Item = &str> {
        std::iter::once(COMPUTER_COLUMN).chain(self.names.iter().map(String::as_str))
    }

    /// The number of columns, `PSComputerName` included.
    pub(crate) fn len(&self) -> usize {
        self.names.len() + 1
    }

    /// The instance's value for each property column, in column order (`None` when it lacks
    /// the property). Properties that have no column are dropped, with one warning per file:
    /// a CSV row cannot grow columns after its header is written.
    pub(crate) fn row<'i>(&mut self, instance: &'i Instance) -> impl Iterator<Item = Option<&'i Value>> {
        self.locate(instance);
        let props = &instance.properties;
        self.at.iter().map(move |&i| props.get(i).map(|p| &p.value))
    }

    fn locate(&mut self, instance: &Instance) {
        let props = &instance.properties;
        let mut matched = 0usize;
        // Rows of one class usually list properties in the same order as the columns, so look
        // where the previous match ended first, then where this column was in the previous row
        // (a property list in an order of its own), and only then scan.
        let mut hint = 0usize;
        let shared = match (props.first(), &self.first) {
            (Some(p), Some(first)) if same_allocation(first, &p.name) => true,
            (p, _) => {
                self.first = p.map(|p| p.name.clone());
                false
            }
        };
        for ((name, at), seen) in self.names.iter().zip(self.at.iter_mut()).zip(self.seen.iter_mut()) {
            let is_this = |p: &Property| seen.as_ref().is_some_and(|s| same_allocation(s, &p.name)) || same_name(&p.name, name);
            let last = *at;
            *at = if props.get(hint).is_some_and(is_this) {
                hint
            } else if props.get(last).is_some_and(is_this) {
                last
            } else {
                props.iter().position(|p| same_name(&p.name, name)).unwrap_or(ABSENT)
            };
            if let Some(p) = props.get(*at) {
                matched += 1;
                hint = *at + 1;
                if shared && !seen.as_ref().is_some_and(|s| same_allocation(s, &p.name)) {
                    *seen = Some(p.name.clone());
                }
            }
        }
        // Fewer properties than matched columns leaves none without a column.
        if !self.warned_extra && props.len() > matched {
            let own = props.iter().filter(|p| !p.name.eq_ignore_ascii_case(COMPUTER_COLUMN)).count();
            if own > matched {
                self.warned_extra = true;
                let extra: Vec<&str> = props
                    .iter()
                    .map(|p| p.name.as_str())
                    .filter(|n| !n.eq_ignore_ascii_case(COMPUTER_COLUMN))
                    .filter(|n| !self.names.iter().any(|c| c.eq_ignore_ascii_case(n)))
                    .collect();
                tracing::warn!(
                    output = %self.label,
                    dropped = ?extra,
                    "properties not in the columns fixed by the first row are left out of this output"
                );
            }
        }
    }
}

/// Whether two names are one shared allocation (so certainly equal).
fn same_allocation(a: &Name, b: &Name) -> bool {
    std::ptr::eq(a.as_str(), b.as_str())
}

/// WMI's case-insensitive name comparison, with the usual case (the same spelling) first: a
/// byte comparison is far cheaper than folding case byte by byte.
pub(crate) fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len() && (scan::equal(a.as_bytes(), b.as_bytes()) || a.eq_ignore_ascii_case(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(names: &[&str]) -> Instance {
        let mut i = Instance::new("C");
        for (n, name) in names.iter().enumerate() {
            i.push(*name, Value::UInt32(n as u32));
        }
        i
    }

    #[test]
    fn first_instance_fixes_columns() {
        let c = Columns::from_first(&[], &inst(&["B", "A", "PSComputerName"]), "t");
        assert_eq!(c.header().collect::<Vec<_>>(), ["PSComputerName", "B", "A"]);
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn query_list_wins_and_takes_instance_spelling() {
        let props = ["name".to_string(), "Gone".into(), "NAME".into()];
        let c = Columns::from_first(&props, &inst(&["Other", "Name"]), "t");
        assert_eq!(c.header().collect::<Vec<_>>(), ["PSComputerName", "Name", "Gone"]);
    }

    #[test]
    fn rows_map_by_name_in_any_order() {
        let mut c = Columns::from_first(&[], &inst(&["A", "B", "C"]), "t");
        let later = inst(&["c", "X", "a"]);
        let row: Vec<_> = c.row(&later).collect();
        assert_eq!(row, vec![Some(&Value::UInt32(2)), None, Some(&Value::UInt32(0))]);
        assert!(c.warned_extra, "X has no column");
        let mut quiet = Columns::from_first(&[], &inst(&["A", "B"]), "t");
        quiet.row(&inst(&["B", "PSComputerName"])).for_each(drop);
        assert!(!quiet.warned_extra);
    }

    #[test]
    fn a_listed_order_of_its_own_maps_right_row_after_row() {
        // Columns C, A, B: each is looked for where the previous row had it.
        let list = ["C".to_string(), "A".into(), "B".into()];
        let mut c = Columns::from_first(&list, &inst(&["A", "B", "C"]), "t");
        for order in [&["A", "B", "C"][..], &["A", "B", "C"], &["C", "B", "A"], &["B"], &["A", "C", "B"], &["a", "b", "c"]] {
            let instance = inst(order);
            let got: Vec<Option<&Value>> = c.row(&instance).collect();
            let want: Vec<Option<Value>> = list
                .iter()
                .map(|col| order.iter().position(|n| n.eq_ignore_ascii_case(col)).map(|at| Value::UInt32(at as u32)))
                .collect();
            assert_eq!(got, want.iter().map(Option::as_ref).collect::<Vec<_>>(), "{order:?}");
        }
    }

    #[test]
    fn shared_names_map_right_in_any_order() {
        let names: Vec<Name> = ["A", "B", "C"].iter().map(|n| Name::from(*n)).collect();
        let row = |order: &[usize]| {
            let mut i = Instance::new("C");
            for &n in order {
                i.push(names[n].clone(), Value::UInt32(n as u32));
            }
            i
        };
        let mut c = Columns::from_first(&[], &row(&[0, 1, 2]), "t");
        for order in [&[0, 1, 2][..], &[0, 1, 2], &[0, 2, 1], &[2, 1, 0], &[1, 2], &[0, 1, 2], &[0, 1], &[2, 0]] {
            let instance = row(order);
            let got: Vec<Option<&Value>> = c.row(&instance).collect();
            let want: Vec<Option<Value>> =
                (0..3).map(|n| order.contains(&n).then_some(Value::UInt32(n as u32))).collect();
            assert_eq!(got, want.iter().map(Option::as_ref).collect::<Vec<_>>(), "{order:?}");
        }
    }
}

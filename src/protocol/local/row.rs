//! Builds instances that have every property of their class, in the class table's order.

use crate::cim::schema::{self, CimType, ClassSchema, PropertySchema};
use crate::cim::{DateTime, Instance, Text, Value};

/// An instance under construction: every property of the class starts null.
pub struct Row {
    class: &'static ClassSchema,
    values: Vec<Value>,
}

impl Row {
    /// A row of a class of the table. The local provider only builds classes it knows are in the
    /// table (a test covers each), so a miss yields an empty class rather than a panic.
    pub fn new(class: &str) -> Row {
        let class = schema::class(class).unwrap_or_else(|| empty_class());
        Row { class, values: vec![Value::Null; class.properties.len()] }
    }

    /// Sets a property; `None` leaves it null.
    pub fn set(&mut self, name: &str, value: impl Into<Option<Value>>) -> &mut Row {
        let Some(value) = value.into() else { return self };
        let index = self.class.properties.iter().position(|p| p.name == name);
        debug_assert!(index.is_some(), "{}.{name} is not in the class table", self.class.name);
        if let Some(i) = index {
            debug_assert!(
                self.class.properties.get(i).is_some_and(|p| conforms(&value, p)),
                "{}.{name} = {value:?} does not have the table's type",
                self.class.name
            );
            if let Some(slot) = self.values.get_mut(i) {
                *slot = value;
            }
        }
        self
    }

    /// Sets a string property.
    pub fn text(&mut self, name: &str, value: Option<impl Into<Text>>) -> &mut Row {
        self.set(name, value.map(|v| Value::String(v.into())))
    }

    /// Sets a string array property; `None` leaves it null.
    pub fn texts(&mut self, name: &str, values: Option<Vec<String>>) -> &mut Row {
        self.set(name, values.map(|v| Value::Array(v.into_iter().map(|s| Value::String(s.into())).collect())))
    }

    /// Sets a datetime property.
    pub fn datetime(&mut self, name: &str, value: Option<DateTime>) -> &mut Row {
        self.set(name, value.map(Value::DateTime))
    }

    pub fn finish(self) -> Instance {
        let mut inst = Instance::new(self.class.name.clone());
        for (p, v) in self.class.properties.iter().zip(self.values) {
            inst.push(p.name.clone(), v);
        }
        inst
    }
}

fn empty_class() -> &'static ClassSchema {
    static EMPTY: std::sync::OnceLock<ClassSchema> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| ClassSchema { name: String::new(), superclass: None, properties: Vec::new() })
}

/// Whether a value has the type the table gives the property (null fits every property).
pub fn conforms(value: &Value, prop: &PropertySchema) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => prop.is_array && items.iter().all(|v| scalar_conforms(v, prop.cim_type)),
        v => !prop.is_array && scalar_conforms(v, prop.cim_type),
    }
}

fn scalar_conforms(value: &Value, ty: CimType) -> bool {
    matches!(
        (value, ty),
        (Value::Bool(_), CimType::Boolean)
            | (Value::SInt8(_), CimType::SInt8)
            | (Value::UInt8(_), CimType::UInt8)
            | (Value::SInt16(_), CimType::SInt16)
            | (Value::UInt16(_), CimType::UInt16)
            | (Value::SInt32(_), CimType::SInt32)
            | (Value::UInt32(_), CimType::UInt32)
            | (Value::SInt64(_), CimType::SInt64)
            | (Value::UInt64(_), CimType::UInt64)
            | (Value::Real32(_), CimType::Real32)
            | (Value::Real64(_), CimType::Real64)
            | (Value::Char16(_), CimType::Char16)
            | (Value::String(_), CimType::String)
            | (Value::DateTime(_), CimType::DateTime)
            | (Value::Interval(_), CimType::DateTime)
            | (Value::Reference(_), CimType::Reference)
            | (Value::Instance(_), CimType::Instance)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_have_every_property_in_table_order() {
        let mut r = Row::new("Win32_QuickFixEngineering");
        r.text("HotFixID", Some("KB1")).text("Caption", None::<String>);
        let inst = r.finish();
        let names: Vec<&str> = inst.properties.iter().map(|p| p.name.as_str()).collect();
        let table: Vec<&str> =
            schema::class("Win32_QuickFixEngineering").unwrap().properties.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, table);
        assert_eq!(inst.get("HotFixID"), Some(&Value::String("KB1".into())));
        assert_eq!(inst.get("Caption"), Some(&Value::Null));
    }

    #[test]
    fn conformance() {
        let p = |t, a| PropertySchema { name: "P".into(), cim_type: t, is_array: a };
        assert!(conforms(&Value::UInt32(1), &p(CimType::UInt32, false)));
        assert!(!conforms(&Value::UInt64(1), &p(CimType::UInt32, false)));
        assert!(conforms(&Value::Null, &p(CimType::UInt32, true)));
        assert!(conforms(&Value::Array(vec![Value::String("a".into())]), &p(CimType::String, true)));
        assert!(!conforms(&Value::Array(vec![Value::String("a".into())]), &p(CimType::String, false)));
        assert!(!conforms(&Value::String("a".into()), &p(CimType::String, true)));
        assert!(!conforms(&Value::Array(vec![Value::UInt8(1)]), &p(CimType::String, true)));
    }
}

//! Fuzz targets for cimrun's parsers; see `targets.rs`.

mod targets;
pub use targets::*;

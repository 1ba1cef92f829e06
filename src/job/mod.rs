//! Loading a job file: parse the YAML, validate it, report every error with its position.

pub mod model;
mod yaml;

pub use model::*;

//! Test tooling: a WS-Man server with fault injection and a dataset of realistic hosts.
//! Compiled only with the `testkit` feature; never part of the user-facing CLI.

pub mod dataset;
pub mod request;
pub mod render;

//! Test tooling: a WS-Man server with fault injection and a dataset of realistic hosts.
//! Compiled only with the `testkit` feature; never part of the user-facing CLI.
//!
//! [`server::TestServer`] serves any number of simulated Windows hosts ([`dataset::Host`]) from
//! one process, each on its own listener, each with its own latency and [`server::Fault`].

pub mod client;
pub mod dataset;
mod faults;
mod ntlm;
mod ops;
pub mod render;
pub mod request;
pub mod server;
mod tls;

pub use server::{Fault, HostConfig, fleet_address, HostStats, ServerBuilder, StartError, TestServer};

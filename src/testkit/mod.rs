//! Test tooling: a WS-Man server with fault injection and a dataset of realistic hosts.
//! Compiled only with the `testkit` feature; never part of the user-facing CLI.
//!
//! [`server::TestServer`] serves any number of simulated Windows hosts ([`dataset::Host`]) from
//! one process, each on its own listener, each with its own latency and [`server::Fault`].
//!
//! ```no_run
//! use std::time::Duration;
//! use cimrun::testkit::{Fault, HostConfig, TestServer, fleet_address};
//!
//! // Three hosts on their own loopback addresses: healthy, slow, and one that resets mid-Pull.
//! let server = TestServer::builder()
//!     .host(HostConfig::new("web01").bind((fleet_address(1), 5985).into()))
//!     .host(HostConfig::new("web02").bind((fleet_address(2), 5985).into()).latency(Duration::from_millis(50)))
//!     .host(HostConfig::new("web03").bind((fleet_address(3), 5985).into()).fault(Fault::ResetAfterPulls(2)))
//!     .lifetime(Duration::from_secs(60))
//!     .start()?;
//! let expected = server.config(0).map(HostConfig::dataset);
//! let releases = server.stats(2).map(|s| s.releases);
//! # Ok::<(), cimrun::testkit::StartError>(())
//! ```

pub mod client;
pub mod dataset;
mod faults;
mod hostile;
mod ntlm;
mod ops;
pub mod render;
pub mod request;
pub mod server;
mod tls;

pub use server::{Fault, HostConfig, Hostile, HostStats, ServerBuilder, StartError, TestServer, fleet_address};

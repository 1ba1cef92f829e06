//! cimrun: CIM/WMI inventory across a fleet, declared in a job file.
//!
//! Data flows one way:
//! [`job`] (parse + validate the YAML) → [`plan`] (expand sessions × queries into tasks) →
//! [`run`] (scheduler, deadlines, retries, progress) → [`protocol`] (WS-Man, DCOM, local) →
//! [`cim`] (the instance/value model every protocol produces) → [`sink`] + [`report`].

pub mod cim;
pub mod cli;
pub mod job;
pub mod merge;
pub mod plan;
pub mod protocol;
pub mod report;
pub mod run;
pub mod sink;
mod swar;
pub mod wql;
#[cfg(feature = "testkit")]
#[doc(hidden)]
pub mod testkit;

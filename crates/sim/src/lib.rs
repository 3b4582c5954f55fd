//! Simulators of N-able N-central and NinjaOne, faithful to their public specs and known quirks,
//! over a seeded MSP data generator. Used in-process by tests, benchmarks and the demo, and
//! standalone through `rmmbridge sim`.
#![forbid(unsafe_code)]

pub mod fleet;
pub mod ncentral;
pub mod ninjaone;
pub mod script;
pub mod server;
pub mod universe;

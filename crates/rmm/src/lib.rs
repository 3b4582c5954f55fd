//! rmmbridge connectors: how the hub talks to N-able N-central and NinjaOne. Each connector
//! authenticates, verifies its settings with named checks, lists the RMM's clients and streams its
//! devices page by page, in the hub's vocabulary (`rmmbridge_core::rmm`).
#![forbid(unsafe_code)]

pub mod connector;
pub mod error;
pub mod http;
pub mod ncentral;
pub mod ninjaone;

pub use connector::{Connector, DevicePages, ScriptRequest, TokenReport};
pub use error::{Check, CheckStatus, RmmError};

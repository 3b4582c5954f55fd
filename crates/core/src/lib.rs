//! Domain types and pure logic of rmmbridge. Nothing in this crate does IO, so all of it is tested directly.
#![forbid(unsafe_code)]

pub mod domain;
pub mod identify;
pub mod names;
pub mod plan;
pub mod rmm;
pub mod secret;
pub mod totp;

pub use domain::{IntegrationKind, Role, Timestamp};

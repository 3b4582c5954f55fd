//! The rmmbridge server: REST API (`/api/v1`, OpenAPI at `/api/openapi.json`), HTML UI, authentication,
//! metrics. Handlers are thin: they parse input, call `services`, and render; storage is `rmmbridge-store`.
#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod keys;
pub mod routes;
pub mod services;
pub mod startup;
pub mod state;
pub mod ui;
pub mod vault;

pub use config::Settings;
pub use startup::Application;

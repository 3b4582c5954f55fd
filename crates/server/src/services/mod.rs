//! Use cases shared by the HTTP API, the UI and the CLI. Handlers stay thin: parse, call a service, render.

pub mod audit;
pub mod dashboard;
pub mod decisions;
pub mod integrations;
pub mod mapping;
pub mod sync;
pub mod tenants;
pub mod tokens;
pub mod users;
pub mod why;

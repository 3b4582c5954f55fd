//! One integration-test binary (faster linking), a module per feature. Every test runs the real server on
//! 127.0.0.1:0 against a real database, on SQLite and on PostgreSQL.

mod access;
mod helpers;
mod integrations;
mod keys;
mod login;
mod mapping;
mod read;
mod secrets;
mod sync;
mod ui;
mod ui_computers;
mod ui_mapping;
mod users_tokens;

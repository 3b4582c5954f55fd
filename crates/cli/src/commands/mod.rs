pub mod bench;
pub mod clients;
pub mod demo;
pub mod integration;
pub mod serve;
pub mod sim;
pub mod sync;
pub mod token;
pub mod totp;
pub mod user;

use std::io::BufRead;

/// Reads one line (a password) from standard input, so it never appears in shell history or `ps`.
pub fn read_stdin_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

//! What a simulated device does when an RMM runs a script on it. Documented and deterministic, so
//! script runs can be tested end to end:
//!
//! - The script's parameters (N-central: the `CommandLine` parameter; NinjaOne: `parameters`) may
//!   carry `rmmbridge:<payload>`, where the payload is base64url (no padding) of a JSON object
//!   `{"echo": string?, "exit": int?, "callback": url?, "sleep_ms": int?, "run": string?}`.
//! - Output: `ran <script> on <hostname>`, then the `echo` text on its own line, if any.
//! - Exit status: `exit`, default 0. A payload that does not decode gives exit 2 and says why.
//! - With a `callback`, the device POSTs `{"run","device_id","hostname","exit_code","output"}` as
//!   JSON to that URL when it finishes (as a script that phones home would).
//! - Offline devices do not run anything: the run stays pending.
use base64::Engine;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Payload {
    pub echo: Option<String>,
    pub exit: Option<i32>,
    pub callback: Option<String>,
    pub sleep_ms: Option<u64>,
    pub run: Option<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Outcome {
    pub exit_code: i32,
    pub output: String,
}

/// Encodes a payload the way a caller puts it into the script parameters.
pub fn encode_payload(json: &serde_json::Value) -> String {
    format!(
        "rmmbridge:{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json.to_string())
    )
}

/// Finds and decodes a payload in the parameters; `Ok(None)` when there is none.
pub fn parse_payload(parameters: &str) -> Result<Option<Payload>, String> {
    let Some(start) = parameters.find("rmmbridge:") else {
        return Ok(None);
    };
    let token: String = parameters[start + "rmmbridge:".len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.as_bytes())
        .map_err(|e| format!("the rmmbridge payload is not base64url: {e}"))?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| format!("the rmmbridge payload is not the expected JSON: {e}"))
}

/// Runs `script` with `parameters` on the device called `hostname`.
pub fn run(script: &str, hostname: &str, parameters: &str) -> (Outcome, Payload) {
    match parse_payload(parameters) {
        Ok(p) => {
            let p = p.unwrap_or_default();
            let mut output = format!("ran {script} on {hostname}");
            if let Some(echo) = &p.echo {
                output.push('\n');
                output.push_str(echo);
            }
            (
                Outcome {
                    exit_code: p.exit.unwrap_or(0),
                    output,
                },
                p,
            )
        }
        Err(why) => (
            Outcome {
                exit_code: 2,
                output: format!("ran {script} on {hostname}\n{why}"),
            },
            Payload::default(),
        ),
    }
}

/// Delivers the result to the payload's callback URL, if it has one; failures are logged, not retried.
pub async fn call_back(p: &Payload, device_id: i64, hostname: &str, outcome: &Outcome) {
    let Some(url) = &p.callback else { return };
    let body = serde_json::json!({
        "run": p.run, "device_id": device_id, "hostname": hostname,
        "exit_code": outcome.exit_code, "output": outcome.output,
    });
    let client = reqwest::Client::new();
    if let Err(e) = client
        .post(url)
        .json(&body)
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
    {
        tracing::warn!(%url, error = %e, "simulated device could not deliver its script callback");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_shape_the_outcome() {
        let p = encode_payload(&serde_json::json!({"echo": "hello", "exit": 3, "run": "r1"}));
        let (out, payload) = run("Collect", "ACME-WS-001", &format!("-Mode Full {p}"));
        assert_eq!(
            out,
            Outcome {
                exit_code: 3,
                output: "ran Collect on ACME-WS-001\nhello".into()
            }
        );
        assert_eq!(payload.run.as_deref(), Some("r1"));
        let (plain, _) = run("Collect", "H", "-Mode Full");
        assert_eq!(plain.exit_code, 0);
        let (bad, _) = run("Collect", "H", "rmmbridge:!!!");
        assert_eq!(bad.exit_code, 2);
        let (bad_json, _) = run(
            "Collect",
            "H",
            &format!(
                "rmmbridge:{}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("[1]")
            ),
        );
        assert!(
            bad_json.output.contains("expected JSON"),
            "{}",
            bad_json.output
        );
    }
}

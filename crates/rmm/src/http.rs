//! The HTTP layer both connectors share: TLS policy, timeouts, a cap on requests in flight,
//! retries with jittered backoff that honour `Retry-After`, and a clear User-Agent.
use crate::error::RmmError;
use rand::Rng;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use url::Url;

pub const USER_AGENT: &str = concat!(
    "rmmbridge/",
    env!("CARGO_PKG_VERSION"),
    " (+https://example.invalid/rmmbridge)"
);

/// How to trust the RMM server's certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsTrust {
    /// SHA-256 of the server certificate (DER), hex with or without colons: accepts exactly that
    /// certificate, for self-signed on-premise servers.
    pub pinned_sha256: Option<String>,
    /// A private CA in PEM, trusted in addition to the system roots.
    pub ca_pem: Option<String>,
}

#[derive(Clone, Debug)]
pub struct HttpSettings {
    pub timeout: Duration,
    /// Requests in flight per integration (N-central allows 3 to 50 per endpoint).
    pub max_in_flight: usize,
    /// Attempts per request, the first included.
    pub attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            timeout: Duration::from_secs(60),
            max_in_flight: 4,
            attempts: 6,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
        }
    }
}

/// One RMM server: its base URL, a client configured for its TLS, and the in-flight cap.
#[derive(Clone, Debug)]
pub struct Transport {
    pub base: Url,
    client: reqwest::Client,
    permits: Arc<Semaphore>,
    settings: HttpSettings,
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Parses the server URL of an integration, refusing what would be unsafe.
pub fn parse_base_url(text: &str) -> Result<Url, RmmError> {
    let text = text.trim();
    let with_scheme = if text.contains("://") {
        text.to_owned()
    } else {
        format!("https://{text}")
    };
    let url = Url::parse(&with_scheme)
        .map_err(|e| RmmError::Config(format!("the server address {text:?} is not a URL: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(RmmError::Config(format!(
                "plain http:// is allowed only for loopback addresses; use https://{} (the RMM credentials would travel unencrypted)",
                url.host_str().unwrap_or_default()
            )));
        }
        other => {
            return Err(RmmError::Config(format!(
                "unsupported scheme {other:?} in {text:?}; use https://"
            )));
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(RmmError::Config(format!(
            "the server address {text:?} has no host"
        )));
    }
    let mut url = url;
    url.set_query(None);
    url.set_fragment(None);
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&path);
    Ok(url)
}

fn parse_pin(pin: &str) -> Result<[u8; 32], RmmError> {
    let clean: String = pin.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    let bytes = hex::decode(&clean)
        .map_err(|_| RmmError::Config("the certificate fingerprint must be hex".into()))?;
    bytes.try_into().map_err(|_| {
        RmmError::Config(
            "the certificate fingerprint must be a SHA-256 (64 hex digits, colons allowed)".into(),
        )
    })
}

impl Transport {
    pub fn new(base: Url, tls: &TlsTrust, settings: HttpSettings) -> Result<Transport, RmmError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(settings.timeout)
            .connect_timeout(Duration::from_secs(15).min(settings.timeout))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pin) = &tls.pinned_sha256 {
            builder = builder.tls_backend_preconfigured(pinning::client_config(parse_pin(pin)?)?);
        } else if let Some(pem) = &tls.ca_pem {
            let cert = reqwest::Certificate::from_pem(pem.as_bytes()).map_err(|e| {
                RmmError::Config(format!("the CA certificate is not valid PEM: {e}"))
            })?;
            builder = builder.add_root_certificate(cert);
        }
        let client = builder
            .build()
            .map_err(|e| RmmError::Config(format!("cannot set up HTTPS: {e}")))?;
        Ok(Transport {
            base,
            client,
            permits: Arc::new(Semaphore::new(settings.max_in_flight.max(1))),
            settings,
        })
    }

    /// `base` joined with an absolute path such as `/api/devices`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base.as_str().trim_end_matches('/'))
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// Sends with the in-flight cap and retries: 429 always (the server did not act on it);
    /// 5xx, timeouts and connection errors only when `idempotent`.
    pub async fn send(&self, req: RequestBuilder, idempotent: bool) -> Result<Response, RmmError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let this = req
                .try_clone()
                .ok_or_else(|| RmmError::Config("a streaming request cannot be retried".into()))?;
            let result = {
                let _permit =
                    self.permits.acquire().await.map_err(|_| {
                        RmmError::Transport("the connector is shutting down".into())
                    })?;
                this.send().await
            };
            let last = attempt >= self.settings.attempts;
            match result {
                Ok(resp) if resp.status() == StatusCode::TOO_MANY_REQUESTS && !last => {
                    let wait = retry_after(&resp).unwrap_or_else(|| self.backoff(attempt));
                    tracing::debug!(url = %resp.url(), wait_ms = wait.as_millis() as u64, "rate limited; retrying");
                    tokio::time::sleep(wait).await;
                }
                Ok(resp) if resp.status().is_server_error() && idempotent && !last => {
                    let wait = retry_after(&resp).unwrap_or_else(|| self.backoff(attempt));
                    tracing::debug!(url = %resp.url(), status = resp.status().as_u16(), "server error; retrying");
                    tokio::time::sleep(wait).await;
                }
                Ok(resp) if resp.status() == StatusCode::TOO_MANY_REQUESTS => {
                    return Err(RmmError::RateLimited { attempts: attempt });
                }
                Ok(resp) => return Ok(resp),
                Err(e)
                    if idempotent
                        && !last
                        && (e.is_connect() || e.is_timeout() || e.is_request() || e.is_body()) =>
                {
                    tracing::debug!(error = %e, "transport error; retrying");
                    tokio::time::sleep(self.backoff(attempt)).await;
                }
                Err(e) => return Err(RmmError::from_reqwest(&e)),
            }
        }
    }

    /// Full jitter: a random wait up to `base * 2^attempt`, capped.
    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .settings
            .backoff_base
            .saturating_mul(1 << attempt.min(16))
            .min(self.settings.backoff_max);
        let ms = ceiling.as_millis().max(1) as u64;
        Duration::from_millis(rand::rng().random_range(ms / 2..=ms))
    }
}

/// `Retry-After` in seconds or as an HTTP date, capped at five minutes.
fn retry_after(resp: &Response) -> Option<Duration> {
    let v = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs.min(300)));
    }
    let fmt = time::format_description::well_known::Rfc2822;
    let at = time::OffsetDateTime::parse(v, &fmt).ok()?;
    let wait = at - time::OffsetDateTime::now_utc();
    Some(Duration::from_secs(
        wait.whole_seconds().clamp(0, 300) as u64
    ))
}

/// Reads a body as JSON, naming what was being read when it is not.
pub async fn json_body(resp: Response, what: &str) -> Result<serde_json::Value, RmmError> {
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| RmmError::Transport(format!("reading {what}: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| RmmError::Malformed {
        what: what.to_owned(),
        detail: format!(
            "HTTP {status}, {} bytes, not the JSON expected: {e}",
            bytes.len()
        ),
    })
}

mod pinning {
    //! Accepts exactly one certificate, by the SHA-256 of its DER encoding; signatures are still
    //! verified, so the peer must hold that certificate's private key.
    use crate::error::RmmError;
    use rustls::DigitallySignedStruct;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use sha2::Digest;
    use std::sync::Arc;

    #[derive(Debug)]
    struct Pinned {
        sha256: [u8; 32],
        provider: Arc<CryptoProvider>,
    }

    impl ServerCertVerifier for Pinned {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            let got: [u8; 32] = sha2::Sha256::digest(end_entity.as_ref()).into();
            if got == self.sha256 {
                Ok(ServerCertVerified::assertion())
            } else {
                Err(rustls::Error::General(format!(
                    "the server certificate's SHA-256 is {}, not the pinned fingerprint",
                    hex::encode(got)
                )))
            }
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    }

    pub fn client_config(sha256: [u8; 32]) -> Result<rustls::ClientConfig, RmmError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| RmmError::Config(format!("TLS setup failed: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned { sha256, provider }))
            .with_no_client_auth();
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_are_checked() {
        assert_eq!(
            parse_base_url("ncentral.example.com").unwrap().as_str(),
            "https://ncentral.example.com/"
        );
        assert_eq!(
            parse_base_url("https://eu.ninjarmm.com/").unwrap().as_str(),
            "https://eu.ninjarmm.com/"
        );
        assert!(parse_base_url("http://127.0.0.1:8080").is_ok());
        assert!(parse_base_url("http://localhost:8080").is_ok());
        let err = parse_base_url("http://ncentral.example.com")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("loopback") && err.contains("https://ncentral.example.com"),
            "{err}"
        );
        assert!(parse_base_url("ftp://x").is_err());
        assert!(parse_base_url("https://").is_err());
    }

    #[test]
    fn fingerprints_are_read_with_or_without_colons() {
        let hex64 = "ab".repeat(32);
        assert_eq!(parse_pin(&hex64).unwrap(), [0xab; 32]);
        let colons: Vec<String> = (0..32).map(|_| "AB".to_owned()).collect();
        assert_eq!(parse_pin(&colons.join(":")).unwrap(), [0xab; 32]);
        assert!(parse_pin("abcd").is_err());
    }
}

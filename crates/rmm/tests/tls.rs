//! A self-signed N-central is refused, then accepted once its certificate is pinned.
use rmmbridge_core::secret::SecretString;
use rmmbridge_rmm::http::{HttpSettings, TlsTrust};
use rmmbridge_rmm::ncentral::{NcentralConnector, NcentralCredentials, NcentralSettings};
use sha2::Digest;
use std::sync::Arc;
use std::time::Duration;

const VERSION_XML: &str = r#"<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body><ns2:versionInfoGetResponse xmlns:ns2="http://ei2.nobj.nable.com/"><return><key>Installation: Deployment Product Version</key><value>2024.6.0.19</value></return></ns2:versionInfoGetResponse></soap:Body></soap:Envelope>"#;

/// An HTTPS server on 127.0.0.1 with a freshly generated self-signed certificate; returns its
/// URL and the certificate's SHA-256.
async fn self_signed_server() -> (String, String) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let der = cert.cert.der().clone();
    let fingerprint = hex::encode(sha2::Sha256::digest(der.as_ref()));
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let app = axum::Router::new().route(
        "/dms2/services2/ServerEI2",
        axum::routing::post(|| async { VERSION_XML }),
    );
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (url, fingerprint)
}

fn connector(url: &str, tls: TlsTrust) -> NcentralConnector {
    let mut s = NcentralSettings::new(url);
    s.tls = tls;
    s.http = HttpSettings {
        attempts: 1,
        timeout: Duration::from_secs(5),
        ..Default::default()
    };
    NcentralConnector::new(&s, NcentralCredentials::jwt(SecretString::new("eyJ"))).unwrap()
}

#[tokio::test]
async fn a_self_signed_certificate_is_refused_then_accepted_when_pinned() {
    let (url, fingerprint) = self_signed_server().await;
    let err = connector(&url, TlsTrust::default())
        .server_version()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("certificate"), "{err}");
    assert!(
        err.contains("fingerprint"),
        "the error says what to do: {err}"
    );
    let checks = connector(&url, TlsTrust::default()).verify().await;
    let tls = checks.iter().find(|c| c.id == "tls_certificate").unwrap();
    assert_eq!(tls.status, rmmbridge_rmm::CheckStatus::Fail, "{checks:#?}");
    assert!(tls.remedy.as_deref().unwrap().contains("fingerprint"));

    let pinned = TlsTrust {
        pinned_sha256: Some(fingerprint.clone()),
        ca_pem: None,
    };
    assert_eq!(
        connector(&url, pinned).server_version().await.unwrap(),
        "2024.6.0.19"
    );

    // A different pin is refused, naming the certificate actually presented.
    let wrong = TlsTrust {
        pinned_sha256: Some("00".repeat(32)),
        ca_pem: None,
    };
    let err = connector(&url, wrong)
        .server_version()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&fingerprint), "{err}");
}

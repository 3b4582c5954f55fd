//! The one interface the hub uses to talk to any RMM. The server and the CLI hold a
//! `Arc<dyn Connector>` and never need to know which RMM is behind it.
use crate::error::{Check, RmmError};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use rmmbridge_core::IntegrationKind;
use rmmbridge_core::rmm::{RmmClient, RmmDevice};

/// Device pages as the RMM serves them; the stream ends after the last page or at the first error.
pub type DevicePages<'a> = BoxStream<'a, Result<Vec<RmmDevice>, RmmError>>;

/// What a connector can tell about its credentials right now, for credential health.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TokenReport {
    /// Token purchases with the long-lived credential (N-central JWT exchange, NinjaOne code or client credentials).
    pub authentications: u32,
    pub refreshes: u32,
    pub failed_refreshes: u32,
    /// NinjaOne: refresh tokens that came back different from the one sent.
    pub rotations: u32,
    /// Seconds until the cached access token expires, when one is cached.
    pub access_expires_in_s: Option<u64>,
    /// Seconds until the cached refresh token expires, when the RMM says.
    pub refresh_expires_in_s: Option<u64>,
}

/// A script to run on one device, with the RMM's own ids.
#[derive(Clone, Debug)]
pub struct ScriptRequest {
    pub device_external_id: String,
    pub script: String,
}

/// Capabilities every RMM connector offers. Script runs and webhooks answer
/// [`RmmError::NotSupported`] until their issue lands: never a fake success.
pub trait Connector: Send + Sync {
    fn kind(&self) -> IntegrationKind;
    /// Named checks, each pass or fail with its reason and remedy. Never fails as a whole.
    fn verify(&self) -> BoxFuture<'_, Vec<Check>>;
    /// Every client (companies and their sites), in the hub's words.
    fn list_clients(&self) -> BoxFuture<'_, Result<Vec<RmmClient>, RmmError>>;
    /// Every device, one page at a time: callers stream, they never hold the whole RMM.
    fn devices(&self) -> DevicePages<'_>;
    fn token_report(&self) -> TokenReport;
    fn run_script(&self, _req: ScriptRequest) -> BoxFuture<'_, Result<String, RmmError>> {
        Box::pin(async { Err(RmmError::NotSupported("running a script")) })
    }
    fn register_webhook(&self, _url: String) -> BoxFuture<'_, Result<(), RmmError>> {
        Box::pin(async { Err(RmmError::NotSupported("registering a webhook")) })
    }
}

impl Connector for crate::ncentral::NcentralConnector {
    fn kind(&self) -> IntegrationKind {
        IntegrationKind::Ncentral
    }
    fn verify(&self) -> BoxFuture<'_, Vec<Check>> {
        Box::pin(self.verify())
    }
    fn list_clients(&self) -> BoxFuture<'_, Result<Vec<RmmClient>, RmmError>> {
        Box::pin(self.list_clients())
    }
    fn devices(&self) -> DevicePages<'_> {
        Box::pin(self.devices())
    }
    fn token_report(&self) -> TokenReport {
        self.token_report()
    }
}

impl<S: crate::ninjaone::TokenStore + 'static> Connector for crate::ninjaone::NinjaConnector<S> {
    fn kind(&self) -> IntegrationKind {
        IntegrationKind::Ninjaone
    }
    fn verify(&self) -> BoxFuture<'_, Vec<Check>> {
        Box::pin(self.verify())
    }
    fn list_clients(&self) -> BoxFuture<'_, Result<Vec<RmmClient>, RmmError>> {
        Box::pin(self.list_clients())
    }
    fn devices(&self) -> DevicePages<'_> {
        Box::pin(self.devices())
    }
    fn token_report(&self) -> TokenReport {
        self.token_report()
    }
}

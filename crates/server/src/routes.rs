//! Every route is registered here with its access level. Authenticated routes sit behind the
//! [`crate::auth::authenticate`] middleware as a group, so a handler cannot forget to check; the table is
//! public so a test can prove that every non-public route refuses anonymous callers.

use crate::state::AppState;
use crate::{api, auth, ui};
use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, on};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// DESIGN.md §7: health, the sign-in page, static assets, the consent callback, webhook receivers.
    Public,
    Authenticated,
}

#[derive(Clone, Debug)]
pub struct RouteInfo {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
}

pub struct RouteTable {
    public: Router<AppState>,
    private: Router<AppState>,
    pub entries: Vec<RouteInfo>,
}

impl RouteTable {
    fn new() -> Self {
        RouteTable {
            public: Router::new(),
            private: Router::new(),
            entries: Vec::new(),
        }
    }

    fn add<H, T>(mut self, access: Access, method: Method, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a standard method");
        let route = on(filter, handler);
        match access {
            Access::Public => self.public = self.public.route(path, route),
            Access::Authenticated => self.private = self.private.route(path, route),
        }
        self.entries.push(RouteInfo {
            method,
            path,
            access,
        });
        self
    }

    fn public<H: Handler<T, AppState>, T: 'static>(
        self,
        method: Method,
        path: &'static str,
        h: H,
    ) -> Self {
        self.add(Access::Public, method, path, h)
    }

    fn private<H: Handler<T, AppState>, T: 'static>(
        self,
        method: Method,
        path: &'static str,
        h: H,
    ) -> Self {
        self.add(Access::Authenticated, method, path, h)
    }

    pub fn into_router(self, state: AppState) -> Router {
        let guarded = self
            .private
            .route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                auth::authenticate,
            ));
        self.public.merge(guarded).with_state(state)
    }
}

pub fn table() -> RouteTable {
    use Method as M;
    RouteTable::new()
        // Public
        .public(M::GET, "/healthz", api::health::healthz)
        .public(M::GET, "/login", ui::login::login_form)
        .public(M::POST, "/login", ui::login::login_submit)
        .public(M::GET, "/static/{file}", ui::assets::static_file)
        .public(M::GET, "/consent-callback", ui::consent::consent_callback)
        // Machine endpoints
        .private(M::GET, "/metrics", api::health::metrics)
        .private(M::GET, "/api/openapi.json", api::openapi_json)
        .private(M::GET, "/api/v1/me", api::me::me)
        .private(M::GET, "/api/v1/users", api::users::list_users)
        .private(M::POST, "/api/v1/users", api::users::create_user)
        .private(M::GET, "/api/v1/users/{id}", api::users::get_user)
        .private(M::PATCH, "/api/v1/users/{id}", api::users::update_user)
        .private(
            M::POST,
            "/api/v1/users/{id}/password",
            api::users::set_password,
        )
        .private(M::GET, "/api/v1/tokens", api::tokens::list_tokens)
        .private(M::POST, "/api/v1/tokens", api::tokens::create_token)
        .private(M::DELETE, "/api/v1/tokens/{id}", api::tokens::revoke_token)
        .private(M::GET, "/api/v1/audit", api::audit::list_audit)
        .private(M::GET, "/api/v1/tenants", api::tenants::list_tenants)
        .private(M::POST, "/api/v1/tenants", api::tenants::create_tenant)
        .private(M::GET, "/api/v1/tenants/{id}", api::tenants::get_tenant)
        .private(
            M::GET,
            "/api/v1/integrations",
            api::integrations::list_integrations,
        )
        .private(
            M::POST,
            "/api/v1/integrations",
            api::integrations::create_integration,
        )
        .private(
            M::POST,
            "/api/v1/integrations/verify",
            api::integrations::verify_unsaved,
        )
        .private(
            M::GET,
            "/api/v1/integrations/{id}",
            api::integrations::get_integration,
        )
        .private(
            M::PATCH,
            "/api/v1/integrations/{id}",
            api::integrations::update_integration,
        )
        .private(
            M::DELETE,
            "/api/v1/integrations/{id}",
            api::integrations::delete_integration,
        )
        .private(
            M::POST,
            "/api/v1/integrations/{id}/verify",
            api::integrations::verify_integration,
        )
        .private(
            M::POST,
            "/api/v1/integrations/{id}/consent",
            api::integrations::start_consent,
        )
        .private(
            M::GET,
            "/api/v1/integrations/{id}/totp",
            api::integrations::current_totp,
        )
        .private(
            M::POST,
            "/api/v1/integrations/{id}/sync",
            api::sync::sync_now,
        )
        // Read API and ManualDecisions
        .private(M::GET, "/api/v1/computers", api::computers::list_computers)
        .private(
            M::GET,
            "/api/v1/computers/{id}",
            api::computers::get_computer,
        )
        .private(M::GET, "/api/v1/agents/{id}", api::computers::get_agent)
        .private(M::GET, "/api/v1/decisions", api::decisions::list_decisions)
        .private(
            M::GET,
            "/api/v1/decisions/{id}",
            api::decisions::get_decision,
        )
        .private(
            M::POST,
            "/api/v1/decisions/{id}/resolve",
            api::decisions::resolve_decision,
        )
        .private(M::GET, "/api/v1/sync-runs", api::sync_runs::list_sync_runs)
        .private(
            M::GET,
            "/api/v1/sync-runs/{id}",
            api::sync_runs::get_sync_run,
        )
        .private(
            M::GET,
            "/api/v1/sync-runs/{id}/plan",
            api::sync_runs::sync_run_plan,
        )
        .private(M::GET, "/api/v1/dashboard", api::dashboard::dashboard)
        // Client mapping
        .private(
            M::POST,
            "/api/v1/integrations/{id}/clients/refresh",
            api::clients::refresh_clients,
        )
        .private(
            M::GET,
            "/api/v1/integrations/{id}/clients",
            api::clients::list_clients,
        )
        .private(
            M::POST,
            "/api/v1/integrations/{id}/clients/auto-match",
            api::clients::auto_match,
        )
        .private(
            M::POST,
            "/api/v1/integrations/{id}/clients/create-unmatched",
            api::clients::create_unmatched,
        )
        .private(
            M::POST,
            "/api/v1/integrations/{id}/clients/{client_id}/match",
            api::clients::match_client,
        )
        .private(
            M::POST,
            "/api/v1/integrations/{id}/clients/{client_id}/create",
            api::clients::create_for_client,
        )
        .private(
            M::POST,
            "/api/v1/integrations/{id}/clients/{client_id}/exclude",
            api::clients::exclude_client,
        )
        .private(
            M::POST,
            "/api/v1/integrations/{id}/clients/{client_id}/include",
            api::clients::include_client,
        )
        .private(
            M::GET,
            "/api/v1/integrations/{id}/preview",
            api::clients::preview,
        )
        .private(
            M::POST,
            "/api/v1/integrations/{id}/apply",
            api::clients::apply,
        )
        // UI
        .private(M::GET, "/", ui::dashboard::dashboard)
        .private(M::POST, "/logout", ui::login::logout)
        // UI: integrations, sync runs, audit, users, tokens (issue 6)
        .private(M::GET, "/integrations", ui::integrations::list)
        .private(M::POST, "/integrations", ui::integrations::create)
        .private(M::GET, "/integrations/new", ui::integrations::new_form)
        .private(M::GET, "/integrations/{id}", ui::integrations::detail)
        .private(M::POST, "/integrations/{id}", ui::integrations::update)
        .private(
            M::GET,
            "/integrations/{id}/edit",
            ui::integrations::edit_form,
        )
        .private(
            M::POST,
            "/integrations/{id}/delete",
            ui::integrations::delete,
        )
        .private(
            M::POST,
            "/integrations/{id}/verify",
            ui::integrations::verify,
        )
        .private(
            M::POST,
            "/integrations/{id}/consent",
            ui::integrations::start_consent,
        )
        .private(M::POST, "/integrations/{id}/totp", ui::integrations::totp)
        .private(
            M::POST,
            "/integrations/{id}/sync",
            ui::integrations::sync_now,
        )
        .private(M::GET, "/sync-runs", ui::sync_runs::list)
        .private(M::GET, "/sync-runs/{id}", ui::sync_runs::detail)
        .private(M::GET, "/audit", ui::audit::audit)
        .private(M::GET, "/users", ui::users::list)
        .private(M::POST, "/users", ui::users::create)
        .private(M::POST, "/users/{id}", ui::users::update)
        .private(M::POST, "/users/{id}/password", ui::users::reset_password)
        // UI: client mapping (issue 6 item 4)
        .private(M::GET, "/mapping", ui::mapping::overview)
        .private(M::GET, "/integrations/{id}/clients", ui::mapping::clients)
        .private(
            M::POST,
            "/integrations/{id}/clients/refresh",
            ui::mapping::refresh,
        )
        .private(
            M::POST,
            "/integrations/{id}/clients/auto-match",
            ui::mapping::auto_match,
        )
        .private(
            M::POST,
            "/integrations/{id}/clients/create-unmatched",
            ui::mapping::create_unmatched,
        )
        .private(
            M::POST,
            "/integrations/{id}/clients/{client_id}",
            ui::mapping::set_client,
        )
        .private(M::GET, "/integrations/{id}/preview", ui::mapping::preview)
        .private(M::POST, "/integrations/{id}/apply", ui::mapping::apply)
        .private(M::GET, "/tokens", ui::tokens::list)
        .private(M::POST, "/tokens", ui::tokens::create)
        .private(M::POST, "/tokens/{id}/revoke", ui::tokens::revoke)
        // UI: tenants, computers, ManualDecisions (issue 6 item 5)
        .private(M::GET, "/tenants", ui::tenants::list)
        .private(M::POST, "/tenants", ui::tenants::create)
        .private(M::GET, "/tenants/{id}", ui::tenants::detail)
        .private(M::GET, "/computers", ui::computers::list)
        .private(M::GET, "/computers/{id}", ui::computers::detail)
        .private(M::GET, "/decisions", ui::decisions::list)
        .private(M::POST, "/decisions/{id}/resolve", ui::decisions::resolve)
}

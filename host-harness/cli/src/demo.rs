//! `oauth2-host demo`: the client credentials, password, authorization code and device code
//! grants end to end through the component, against the embedded provider on loopback, printed
//! step by step.

use std::io::Write;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail, ensure};

use crate::callback::CallbackListener;
use oauth2_runtime::api_call;
use oauth2_runtime::clock::{Clock, ManualClock};
use oauth2_runtime::http_client::UreqClient;
use oauth2_runtime::message::HttpRequest;
use oauth2_runtime::plugin::{DevicePoll, Plugin, Services, Token};
use oauth2_runtime::secret_store::{MemoryStore, SecretStore};
use oauth2_runtime::{ClientAuth, ConnectionConfig, GrantType, Pair, RevocationOutcome};
use oauth2_test_provider::{GrantType as ProviderGrant, Provider, ProviderConfig};

/// How far the demo moves the component's clock to make a one-hour token expire.
const ONE_HOUR: Duration = Duration::from_secs(3600);

/// Runs the demo, writing its steps to `out`. Fails at the first step that does not hold.
pub fn run(plugin: &Plugin, out: &mut impl Write) -> anyhow::Result<()> {
    let callback_port = free_loopback_port()?;
    let redirect_uri = format!("http://127.0.0.1:{callback_port}/callback");
    let provider = Provider::start(ProviderConfig::demo(&redirect_uri))
        .context("starting the demo provider")?;
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let store = Arc::new(MemoryStore::with_clock(clock.clone()));
    store
        .set("demo-client-secret", "demo-secret")
        .map_err(anyhow::Error::msg)?;
    store
        .set("alice-password", "wonderland")
        .map_err(anyhow::Error::msg)?;
    let demo = Demo {
        plugin,
        services: Services {
            http: Arc::new(UreqClient::new()),
            secrets: store.clone(),
            tokens: store,
            clock: clock.clone(),
        },
        clock,
        provider: &provider,
    };

    writeln!(
        out,
        "Embedded OAuth 2.0 provider and protected API on {}; the component runs in wasmtime.\n",
        provider.base_url()
    )?;
    demo.client_credentials(out)?;
    demo.password(out)?;
    demo.authorization_code(out, &redirect_uri)?;
    demo.device_code(out)?;
    writeln!(out, "All four grants passed.")?;
    Ok(())
}

struct Demo<'a> {
    plugin: &'a Plugin,
    services: Services,
    clock: Arc<ManualClock>,
    provider: &'a Provider,
}

impl Demo<'_> {
    fn config(&self, grant_type: GrantType, client_auth: ClientAuth) -> ConnectionConfig {
        ConnectionConfig {
            authorization_url: Some(self.provider.authorization_url()),
            client_secret_name: Some("demo-client-secret".into()),
            username: Some("alice".into()),
            password_name: Some("alice-password".into()),
            scope: Some("read write".into()),
            client_auth,
            ..ConnectionConfig::new(grant_type, &self.provider.token_url(), "demo-client")
        }
    }

    fn client_credentials(&self, out: &mut impl Write) -> anyhow::Result<()> {
        writeln!(out, "Client credentials (client_auth basic)")?;
        let config = self.config(GrantType::ClientCredentials, ClientAuth::Basic);
        let token = self.token(&config)?;
        step(
            out,
            format!("token fetched: {}", describe(&token, self.clock.now())),
        )?;
        self.api_round(out, &config, "client_credentials")?;
        self.clock.advance(ONE_HOUR);
        let renewed = self.token(&config)?;
        ensure!(
            renewed.access_token != token.access_token,
            "the expired token was served"
        );
        ensure!(
            self.provider.token_request_count("client_credentials") == 2,
            "no new token was fetched"
        );
        step(
            out,
            "clock moved one hour: a new token was fetched (this grant has no refresh token)",
        )?;
        self.recover_from_401(out, &config)?;
        writeln!(out)?;
        Ok(())
    }

    fn password(&self, out: &mut impl Write) -> anyhow::Result<()> {
        writeln!(out, "Password (client_auth request_body)")?;
        let config = self.config(GrantType::Password, ClientAuth::RequestBody);
        let token = self.token(&config)?;
        ensure!(
            token.refresh_token.is_some(),
            "the provider issued no refresh token"
        );
        step(
            out,
            format!(
                "token fetched for alice: {}, with a refresh token",
                describe(&token, self.clock.now())
            ),
        )?;
        self.api_round(out, &config, "password")?;
        self.expire_and_refresh(out, &config, &token)?;
        writeln!(out)?;
        Ok(())
    }

    fn authorization_code(&self, out: &mut impl Write, redirect_uri: &str) -> anyhow::Result<()> {
        writeln!(out, "Authorization code with PKCE (S256)")?;
        let mut config = self.config(GrantType::AuthorizationCode, ClientAuth::Basic);
        config.redirect_uri = Some(redirect_uri.to_owned());
        match self.plugin.ensure_token(&self.services, &config) {
            Err(oauth2_runtime::CallError::OAuth(
                oauth2_runtime::OauthError::AuthorizationRequired(_),
            )) => step(
                out,
                "no token yet: the component asks for the user's authorization",
            )?,
            other => bail!("expected authorization-required, got {other:?}"),
        }
        let start = self.plugin.begin_authorization(&self.services, &config)?;
        step(out, format!("authorization URL: {}", start.url))?;

        let listener = CallbackListener::bind(redirect_uri)?.with_timeout(Duration::from_secs(10));
        let token = std::thread::scope(|scope| -> anyhow::Result<Token> {
            let browser = scope.spawn(|| self.browser(&start.url));
            let redirect = listener.wait(start.state.secret())?;
            let result =
                self.plugin
                    .complete_authorization(&self.services, &config, redirect.url());
            match &result {
                Ok(_) => redirect.respond_success("The demo connection is authorized."),
                Err(e) => redirect.respond_failure(&e.to_string()),
            }
            let page_status = browser
                .join()
                .map_err(|_| anyhow::anyhow!("the browser thread panicked"))??;
            ensure!(page_status == 200, "the result page answered {page_status}");
            Ok(result?)
        })?;
        step(
            out,
            format!(
                "browser consented and came back to {redirect_uri}: state checked, code exchanged with the PKCE verifier"
            ),
        )?;
        step(
            out,
            format!(
                "token stored: {}, with a refresh token",
                describe(&token, self.clock.now())
            ),
        )?;
        self.api_round(out, &config, "authorization_code")?;
        self.expire_and_refresh(out, &config, &token)?;
        config.revocation_url = Some(self.provider.revocation_url());
        self.disconnect(out, &config)?;
        writeln!(out)?;
        Ok(())
    }

    /// The connection starts a device authorization; the user opens the verification page with
    /// the code in it and approves (fetched here as the user's browser would); the component's
    /// next poll turns the approval into a stored token.
    fn device_code(&self, out: &mut impl Write) -> anyhow::Result<()> {
        writeln!(out, "Device code (RFC 8628)")?;
        let mut config = self.config(GrantType::DeviceCode, ClientAuth::Basic);
        config.device_authorization_url = Some(self.provider.device_authorization_url());
        let started = self
            .plugin
            .start_device_authorization(&self.services, &config)?;
        step(
            out,
            format!(
                "device authorization: the user is asked to enter {} at {}",
                started.user_code, started.verification_uri
            ),
        )?;
        let poll = || {
            self.plugin
                .poll_device_authorization(&self.services, &config, &started.device_code)
        };
        match poll()? {
            DevicePoll::Pending => step(
                out,
                "polled before the user approved: authorization_pending, so polling goes on",
            )?,
            other => bail!("expected authorization_pending before the approval, got {other:?}"),
        }
        let page = started
            .verification_uri_complete
            .as_deref()
            .context("the provider gave no verification_uri_complete")?;
        let status = self.services.http.send(&get(page))?.status;
        ensure!(status == 200, "the verification page answered {status}");
        step(
            out,
            "the user opened the verification page with the code and approved",
        )?;
        // The provider answers slow_down to a poll sooner than its interval.
        let interval = Duration::from_secs(started.interval_seconds.into());
        std::thread::sleep(interval);
        let token = match poll()? {
            DevicePoll::Granted(token) => token,
            other => bail!("expected the token after the approval, got {other:?}"),
        };
        ensure!(
            token.refresh_token.is_some(),
            "the device code grant gave no refresh token"
        );
        step(
            out,
            format!(
                "polled again after the {} s interval: token stored: {}, with a refresh token",
                interval.as_secs(),
                describe(&token, self.clock.now())
            ),
        )?;
        self.api_round(out, &config, ProviderGrant::DeviceCode.as_str())?;
        self.expire_and_refresh(out, &config, &token)?;
        writeln!(out)?;
        Ok(())
    }

    /// The user disconnects: both tokens revoked at the provider (RFC 7009) and removed from the
    /// store, so the old token opens nothing and the next step asks for authorization again.
    fn disconnect(&self, out: &mut impl Write, config: &ConnectionConfig) -> anyhow::Result<()> {
        let held = self.token(config)?;
        let revocation = self.plugin.revoke_tokens(&self.services, config)?;
        ensure!(
            matches!(
                (&revocation.refresh_token, &revocation.access_token),
                (RevocationOutcome::Revoked, RevocationOutcome::Revoked)
            ),
            "the provider did not confirm both revocations: {revocation:?}"
        );
        step(
            out,
            "disconnected: the refresh token, then the access token, revoked at /revoke and removed from the store",
        )?;
        let mut stale = get(&format!("{}/api/orders", self.provider.base_url()));
        stale.headers.push(Pair {
            name: "Authorization".into(),
            value: format!("Bearer {}", held.access_token.secret()),
        });
        let status = self.services.http.send(&stale)?.status;
        ensure!(
            status == 401,
            "the revoked token still opened the API ({status})"
        );
        match self.plugin.ensure_token(&self.services, config) {
            Err(oauth2_runtime::CallError::OAuth(
                oauth2_runtime::OauthError::AuthorizationRequired(_),
            )) => step(
                out,
                "GET /api/orders with the revoked token -> 401; the next step asks for authorization again",
            ),
            other => bail!("expected authorization-required after the disconnect, got {other:?}"),
        }
    }

    /// What a browser does: opens the authorization URL, follows the provider's redirect to the
    /// callback listener, and reads the result page. Returns the page's status.
    fn browser(&self, authorization_url: &str) -> anyhow::Result<u16> {
        let consent = self.services.http.send(&get(authorization_url))?;
        let location = consent
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("location"))
            .map(|h| h.value.clone())
            .with_context(|| {
                format!(
                    "the provider answered {} without a redirect",
                    consent.status
                )
            })?;
        Ok(self.services.http.send(&get(&location))?.status)
    }

    /// One API call, then several more on the cached token.
    fn api_round(
        &self,
        out: &mut impl Write,
        config: &ConnectionConfig,
        grant: &str,
    ) -> anyhow::Result<()> {
        let url = format!("{}/api/orders", self.provider.base_url());
        let outcome = api_call::call(self.plugin, &self.services, config, &get(&url))?;
        ensure!(
            outcome.response.status == 200,
            "the API answered {}",
            outcome.response.status
        );
        step(
            out,
            format!(
                "GET /api/orders -> 200 {}",
                String::from_utf8_lossy(&outcome.response.body).trim()
            ),
        )?;
        let before = self.provider.token_requests().len();
        for _ in 0..5 {
            let outcome = api_call::call(self.plugin, &self.services, config, &get(&url))?;
            ensure!(
                outcome.response.status == 200,
                "the API answered {}",
                outcome.response.status
            );
        }
        ensure!(
            self.provider.token_requests().len() == before,
            "a cached token was not reused"
        );
        step(
            out,
            format!(
                "5 more calls reused the cached token ({grant} token requests so far: {})",
                self.provider.token_request_count(grant)
            ),
        )
    }

    fn expire_and_refresh(
        &self,
        out: &mut impl Write,
        config: &ConnectionConfig,
        old: &Token,
    ) -> anyhow::Result<()> {
        let refreshes = self.provider.token_request_count("refresh_token");
        self.clock.advance(ONE_HOUR);
        let refreshed = self.token(config)?;
        ensure!(
            refreshed.access_token != old.access_token,
            "the expired token was served"
        );
        ensure!(
            self.provider.token_request_count("refresh_token") == refreshes + 1,
            "the expired token was not refreshed once"
        );
        ensure!(
            refreshed.refresh_token.is_some() && refreshed.refresh_token != old.refresh_token,
            "the rotated refresh token was not stored"
        );
        step(
            out,
            "clock moved one hour: token refreshed; the provider rotated the refresh token and the new one was stored",
        )?;
        let url = format!("{}/api/orders", self.provider.base_url());
        let status = api_call::call(self.plugin, &self.services, config, &get(&url))?
            .response
            .status;
        ensure!(status == 200, "the API answered {status} after the refresh");
        step(out, "GET /api/orders with the refreshed token -> 200")
    }

    fn recover_from_401(
        &self,
        out: &mut impl Write,
        config: &ConnectionConfig,
    ) -> anyhow::Result<()> {
        self.provider.revoke_all();
        let url = format!("{}/api/orders", self.provider.base_url());
        let outcome = api_call::call(self.plugin, &self.services, config, &get(&url))?;
        ensure!(outcome.retried, "the revoked token was not refused");
        ensure!(
            outcome.response.status == 200,
            "the API answered {} after the retry",
            outcome.response.status
        );
        step(
            out,
            "provider revoked the token: API 401 -> forget-token -> new token -> 200",
        )
    }

    fn token(&self, config: &ConnectionConfig) -> anyhow::Result<Token> {
        Ok(self.plugin.ensure_token(&self.services, config)?)
    }
}

fn step(out: &mut impl Write, text: impl AsRef<str>) -> anyhow::Result<()> {
    writeln!(out, "  ok  {}", text.as_ref())?;
    Ok(())
}

/// The token's public facts; the demo never prints token values.
fn describe(token: &Token, now: SystemTime) -> String {
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let lifetime = match token.expires_at {
        Some(at) => format!("expires in {} s", at.saturating_sub(now)),
        None => "no stated lifetime".to_owned(),
    };
    let scope = token.scope.as_deref().unwrap_or("(as configured)");
    format!("{}, {lifetime}, scope \"{scope}\"", token.token_type)
}

fn get(url: &str) -> HttpRequest {
    HttpRequest {
        method: "GET".into(),
        url: url.to_owned(),
        headers: vec![],
        body: vec![],
    }
}

/// A loopback port free right now, for the callback listener the provider must know up front.
fn free_loopback_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

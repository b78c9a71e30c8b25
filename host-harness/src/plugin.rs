//! The compiled component, ready to instantiate: one per process, a fresh instance per call.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};

use crate::bindings::{
    AuthorizationStart, ConfigProblem, ConnectionConfig, Grant, HttpRequest, HttpResponse,
    Oauth2PluginPre, OauthError, TokenStep, WitToken,
};
use crate::clock::Clock;
use crate::errors::CallError;
use crate::http_client::HttpClient;
use crate::sandbox::{self, HostState};
use crate::secret_store::SecretStore;

/// The component built from this workspace by `build.rs`.
const EMBEDDED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/oauth2_plugin.wasm"));

/// What the component's imports are served by during a call.
#[derive(Clone)]
pub struct Services {
    pub http: Arc<dyn HttpClient>,
    pub secrets: Arc<dyn SecretStore>,
    pub clock: Arc<dyn Clock>,
}

impl fmt::Debug for Services {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Services").finish_non_exhaustive()
    }
}

/// A token as the host hands it on; `Debug` hides the credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    pub access_token: String,
    pub token_type: String,
    /// Unix seconds.
    pub expires_at: Option<u64>,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
    pub id_token: Option<String>,
}

impl From<WitToken> for Token {
    fn from(t: WitToken) -> Self {
        Self {
            access_token: t.access_token,
            token_type: t.token_type,
            expires_at: t.expires_at,
            refresh_token: t.refresh_token,
            scope: t.scope,
            id_token: t.id_token,
        }
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |present: bool| if present { "<redacted>" } else { "<none>" };
        f.debug_struct("Token")
            .field("access_token", &redacted(true))
            .field("token_type", &self.token_type)
            .field("expires_at", &self.expires_at)
            .field("refresh_token", &redacted(self.refresh_token.is_some()))
            .field("scope", &self.scope)
            .field("id_token", &redacted(self.id_token.is_some()))
            .finish()
    }
}

/// The engine and the component, linked and type-checked once; cheap to share across threads.
#[derive(Clone)]
pub struct Plugin {
    pre: Oauth2PluginPre<HostState>,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin").finish_non_exhaustive()
    }
}

impl Plugin {
    /// The component embedded in this crate at build time.
    pub fn embedded() -> anyhow::Result<Self> {
        Self::from_bytes(EMBEDDED)
    }

    /// A component file, such as one built separately from this crate.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read component {}", path.display()))?;
        Self::from_bytes(&bytes).with_context(|| format!("component {}", path.display()))
    }

    /// A component in memory; compiles it, which takes a moment.
    pub fn from_bytes(bytes: &[u8]) -> anyhow::Result<Self> {
        let engine = Engine::default();
        let component = Component::new(&engine, bytes)
            .map_err(anyhow::Error::from)
            .context("compiling the component")?;
        let linker: Linker<HostState> = sandbox::linker(&engine)?;
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .context(
                "the component imports something this host does not provide (it offers only the \
             oauth2 http and secrets interfaces and WASI clocks, random, io and cli)",
            )?;
        let pre = Oauth2PluginPre::new(instance_pre)
            .map_err(anyhow::Error::from)
            .context("the component does not export the oauth2 grant interface")?;
        Ok(Self { pre })
    }

    /// The component's imports, as `interface` names (`wasi:io/streams@0.2.6`, ...).
    pub fn imports(&self) -> Vec<String> {
        let engine = self.pre.engine();
        self.pre
            .instance_pre()
            .component()
            .component_type()
            .imports(engine)
            .map(|(name, _)| name.to_owned())
            .collect()
    }

    pub fn validate_config(
        &self,
        services: &Services,
        config: &ConnectionConfig,
    ) -> Result<Vec<ConfigProblem>, CallError> {
        self.call(services, |grant, store| {
            grant.call_validate_config(store, config).map(Ok)
        })
    }

    pub fn build_token_request(
        &self,
        services: &Services,
        config: &ConnectionConfig,
        step: &TokenStep,
    ) -> Result<HttpRequest, CallError> {
        self.call(services, |grant, store| {
            grant.call_build_token_request(store, config, step)
        })
    }

    pub fn parse_token_response(
        &self,
        services: &Services,
        config: &ConnectionConfig,
        response: &HttpResponse,
    ) -> Result<Token, CallError> {
        self.call(services, |grant, store| {
            grant.call_parse_token_response(store, config, response)
        })
        .map(Token::from)
    }

    pub fn ensure_token(
        &self,
        services: &Services,
        config: &ConnectionConfig,
    ) -> Result<Token, CallError> {
        self.call(services, |grant, store| {
            grant.call_ensure_token(store, config)
        })
        .map(Token::from)
    }

    pub fn decorate_request(
        &self,
        services: &Services,
        config: &ConnectionConfig,
        request: &HttpRequest,
    ) -> Result<HttpRequest, CallError> {
        self.call(services, |grant, store| {
            grant.call_decorate_request(store, config, request)
        })
    }

    pub fn begin_authorization(
        &self,
        services: &Services,
        config: &ConnectionConfig,
    ) -> Result<AuthorizationStart, CallError> {
        self.call(services, |grant, store| {
            grant.call_begin_authorization(store, config)
        })
    }

    pub fn complete_authorization(
        &self,
        services: &Services,
        config: &ConnectionConfig,
        redirect_url: &str,
    ) -> Result<Token, CallError> {
        self.call(services, |grant, store| {
            grant.call_complete_authorization(store, config, redirect_url)
        })
        .map(Token::from)
    }

    pub fn forget_token(
        &self,
        services: &Services,
        config: &ConnectionConfig,
    ) -> Result<(), CallError> {
        self.call(services, |grant, store| {
            grant.call_forget_token(store, config)
        })
    }

    /// Runs `f` against a fresh instance in a fresh store: no state survives between calls
    /// except what the component put in the secret store.
    fn call<R>(
        &self,
        services: &Services,
        f: impl FnOnce(&Grant, &mut Store<HostState>) -> wasmtime::Result<Result<R, OauthError>>,
    ) -> Result<R, CallError> {
        let mut store = Store::new(self.pre.engine(), HostState::new(services));
        store.limiter(|state| &mut state.limits);
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| CallError::Host(anyhow::Error::from(e).context("instantiating")))?;
        f(instance.integration_oauth2_grant(), &mut store)
            .map_err(|e| CallError::Host(e.into()))?
            .map_err(CallError::OAuth)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::{ClientAuth, GrantType, Pair};
    use crate::clock::ManualClock;
    use crate::http_client::UreqClient;
    use crate::secret_store::MemoryStore;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn plugin() -> &'static Plugin {
        static PLUGIN: OnceLock<Plugin> = OnceLock::new();
        PLUGIN.get_or_init(|| Plugin::embedded().expect("the embedded component loads"))
    }

    fn config(token_url: String) -> ConnectionConfig {
        ConnectionConfig {
            grant_type: GrantType::ClientCredentials,
            token_url,
            authorization_url: None,
            redirect_uri: None,
            client_id: "app".into(),
            client_secret_name: Some("app-secret".into()),
            username: None,
            password_name: None,
            header_prefix: None,
            audience: None,
            scope: None,
            client_auth: ClientAuth::Basic,
            extra_params: vec![],
        }
    }

    fn services() -> Services {
        let secrets = MemoryStore::new();
        secrets.set("app-secret", "s3cr:t").unwrap();
        Services {
            http: Arc::new(UreqClient::new()),
            secrets: Arc::new(secrets),
            clock: Arc::new(ManualClock::at_unix(1_700_000_000)),
        }
    }

    #[test]
    fn embedded_component_imports_only_what_the_sandbox_offers() {
        let imports = plugin().imports();
        assert!(!imports.is_empty());
        for import in &imports {
            assert!(
                [
                    "integration:oauth2/",
                    "wasi:clocks/",
                    "wasi:random/",
                    "wasi:io/",
                    "wasi:cli/"
                ]
                .iter()
                .any(|allowed| import.starts_with(allowed)),
                "unexpected import {import}"
            );
        }
    }

    #[test]
    fn calls_reach_the_component_and_its_imports() {
        static TOKEN_REQUESTS: AtomicUsize = AtomicUsize::new(0);
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        std::thread::spawn(move || {
            for request in server.incoming_requests() {
                TOKEN_REQUESTS.fetch_add(1, Ordering::SeqCst);
                let body = r#"{"access_token":"at-1","token_type":"bearer","expires_in":3600}"#;
                let json = "Content-Type: application/json"
                    .parse::<tiny_http::Header>()
                    .unwrap();
                request
                    .respond(tiny_http::Response::from_string(body).with_header(json))
                    .unwrap();
            }
        });
        let config = config(format!("http://127.0.0.1:{port}/token"));
        let services = services();

        assert_eq!(
            plugin().validate_config(&services, &config).unwrap(),
            vec![]
        );
        let token = plugin().ensure_token(&services, &config).unwrap();
        assert_eq!(token.access_token, "at-1");
        assert_eq!(token.expires_at, Some(1_700_000_000 + 3600));
        assert!(!format!("{token:?}").contains("at-1"));

        let request = HttpRequest {
            method: "GET".into(),
            url: "http://127.0.0.1:1/api".into(),
            headers: vec![],
            body: vec![],
        };
        let decorated = plugin()
            .decorate_request(&services, &config, &request)
            .unwrap();
        assert!(decorated.headers.contains(&Pair {
            name: "Authorization".into(),
            value: "Bearer at-1".into(),
        }));
        assert_eq!(
            TOKEN_REQUESTS.load(Ordering::SeqCst),
            1,
            "the cached token is reused"
        );
    }

    #[test]
    fn typed_errors_come_back_as_oauth_errors() {
        let mut config = config("https://auth.example.com/token".into());
        config.client_secret_name = Some("absent".into());
        let err = plugin().ensure_token(&services(), &config).unwrap_err();
        assert!(
            matches!(&err, CallError::OAuth(OauthError::MissingSecret(m)) if m.name == "absent"),
            "{err:?}"
        );
    }
}

//! The authorization servers under test, each a child process on free loopback ports, and the
//! files of the interop kit they come from.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use oauth2_runtime::{ClientAuth, HttpClient, HttpRequest, Pair, UreqClient};
use serde_json::{Value, json};

use crate::process::Spawned;

/// How long a server may take to print its JSON line (oidc-provider makes an RSA key first).
const STARTUP_LIMIT: Duration = Duration::from_secs(15);
/// How long a helper script of the kit (the CA maker) may run.
const SCRIPT_LIMIT: Duration = Duration::from_secs(30);

/// Authlib's only user; oidc-provider's dev login accepts any name and password.
pub const USERNAME: &str = "alice";
pub const PASSWORD: &str = "wonderland";
/// The secret of both servers' client-credentials clients: every character that needs encoding.
pub const SPECIAL_SECRET: &str = "s3cr:t/+&%= ~";
/// The resource indicator (RFC 8707) oidc-provider issues API tokens for; Authlib ignores it.
pub const API_RESOURCE: &str = "https://api.example.test";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    OidcProvider,
    Authlib,
}

/// A client registered at a server, and the authentication the server requires of it.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    pub id: &'static str,
    pub auth: ClientAuth,
}

/// The authorization-code client of both servers (Basic auth, the test's redirect URI).
pub const WEB_CLIENT: Client = Client {
    id: "web-client",
    auth: ClientAuth::Basic,
};

/// Both servers' `private_key_jwt` client, its public keys from [`keys`]' `jwks.json`: client
/// credentials, authorization code (the test's redirect URI), refresh (and at Authlib the
/// password grant).
pub const PRIVATE_KEY_JWT_CLIENT: Client = Client {
    id: "pkjwt-client",
    auth: ClientAuth::PrivateKeyJwt,
};

/// Both servers' `client_secret_jwt` client (HS256 over its secret), with the grants of
/// [`PRIVATE_KEY_JWT_CLIENT`].
pub const CLIENT_SECRET_JWT_CLIENT: Client = Client {
    id: "sjwt-client",
    auth: ClientAuth::ClientSecretJwt,
};

/// Both servers' public client of the device authorization grant.
pub const DEVICE_CLIENT: &str = "device-client";

/// Authlib's issuer of JWT bearer grants, with the keys of [`PRIVATE_KEY_JWT_CLIENT`].
pub const JWT_BEARER_CLIENT: &str = "jwt-bearer-client";

impl Kind {
    /// The confidential client allowed client credentials (and at Authlib the password grant)
    /// that must authenticate with `auth`. Both hold [`SPECIAL_SECRET`].
    pub fn service_client(self, auth: ClientAuth) -> Client {
        let id = match (self, auth) {
            (Kind::OidcProvider, ClientAuth::Basic) => "cc-client",
            (Kind::OidcProvider, ClientAuth::RequestBody) => "cc-body",
            (Kind::Authlib, ClientAuth::Basic) => "cc-basic",
            (Kind::Authlib, ClientAuth::RequestBody) => "cc-post",
            (_, other) => panic!("no client registered for {other:?}"),
        };
        Client { id, auth }
    }

    /// The scope the protected API's tokens are issued with.
    pub fn api_scope(self) -> &'static str {
        match self {
            Kind::OidcProvider => "api:read",
            Kind::Authlib => "read",
        }
    }

    /// What a user of the authorization-code flow asks for.
    fn web_scope(self) -> &'static str {
        match self {
            Kind::OidcProvider => "openid offline_access api:read",
            Kind::Authlib => "read write",
        }
    }
}

/// How a server is started.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub access_token_ttl: u64,
    /// https with a certificate from a CA made for this server (Authlib only).
    pub tls: bool,
    /// How long a device code lives, in seconds.
    pub device_expires_in: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            access_token_ttl: 60,
            tls: false,
            device_expires_in: 600,
        }
    }
}

/// The seconds between device code polls the servers ask for: short, to keep tests quick.
pub const DEVICE_INTERVAL: u64 = 1;

/// The client keys both servers trust, made once per test run by the kit's `make_keys.py`:
/// `rsa.pem`, `ec.pem` (PKCS#8), `rsa-cert.pem` (the RSA key and a certificate for it),
/// `wrong.pem` (a key no server knows) and `jwks.json` (the public keys, `rsa-1` and `ec-1`).
pub fn keys() -> &'static Path {
    static KEYS: OnceLock<PathBuf> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("interop-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creating the key directory");
        Spawned::start(
            python().arg(kit("authlib/make_keys.py")).arg(&dir),
            Some(""),
        )
        .finish(SCRIPT_LIMIT)
        .assert_success("make_keys.py");
        dir
    })
}

/// The secret names the client keys of [`keys`] are stored under, and their files.
pub const CLIENT_KEYS: [(&str, &str); 4] = [
    ("rsa-key", "rsa.pem"),
    ("ec-key", "ec.pem"),
    ("rsa-cert-key", "rsa-cert.pem"),
    ("wrong-key", "wrong.pem"),
];

/// A PEM file of [`keys`].
pub fn key_pem(file: &str) -> String {
    std::fs::read_to_string(keys().join(file)).expect("the key file was made")
}

/// A running server: what it printed on startup (URLs, clients and their secrets), the
/// redirect URI registered for its web client, and its CA when it serves https.
pub struct Server {
    pub kind: Kind,
    info: Value,
    pub redirect_uri: String,
    ca: Option<PathBuf>,
    // Field order is drop order: the server stops before its certificate files go.
    _process: Spawned,
    _dir: TempDir,
}

impl Server {
    pub fn start(kind: Kind) -> Self {
        Self::with(kind, Settings::default())
    }

    pub fn with(kind: Kind, settings: Settings) -> Self {
        let dir = TempDir::new("server");
        let redirect_uri = format!("http://127.0.0.1:{}/callback", free_port());
        let ttl = settings.access_token_ttl.to_string();
        let jwks = keys().join("jwks.json");
        let device_expires_in = settings.device_expires_in.to_string();
        let mut ca = None;
        let mut command = match kind {
            Kind::OidcProvider => {
                assert!(!settings.tls, "only the Authlib server is served over TLS");
                let mut command = node("oidc-provider");
                command
                    .arg(kit("oidc-provider/server.mjs"))
                    .args(["--redirect-uri", &redirect_uri])
                    .env("ACCESS_TOKEN_TTL", &ttl);
                command
            }
            Kind::Authlib => {
                let mut command = python();
                command.arg(kit("authlib/server.py")).args([
                    "--redirect-uri",
                    &redirect_uri,
                    "--access-token-ttl",
                    &ttl,
                ]);
                if settings.tls {
                    make_ca(dir.path());
                    command
                        .arg("--tls-cert")
                        .arg(dir.path().join("cert.pem"))
                        .arg("--tls-key")
                        .arg(dir.path().join("key.pem"));
                    ca = Some(dir.path().join("ca.pem"));
                }
                command
            }
        };
        command
            .arg("--client-jwks")
            .arg(&jwks)
            .args(["--device-interval", &DEVICE_INTERVAL.to_string()])
            .args(["--device-expires-in", &device_expires_in]);
        let mut process = Spawned::start(&mut command, None);
        let line = process.next_line(STARTUP_LIMIT);
        let info = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{kind:?} printed {line:?} instead of its JSON line: {e}"));
        Self {
            kind,
            info,
            redirect_uri,
            ca,
            _process: process,
            _dir: dir,
        }
    }

    /// A URL the server announced on startup (`revocation_url`, `device_authorization_url`, ...).
    pub fn url(&self, key: &str) -> String {
        self.info[key]
            .as_str()
            .unwrap_or_else(|| panic!("{:?} announced no {key}: {}", self.kind, self.info))
            .to_owned()
    }

    pub fn issuer(&self) -> String {
        self.url("issuer")
    }

    pub fn token_url(&self) -> String {
        self.url("token_url")
    }

    pub fn api_url(&self) -> String {
        self.url("api_url")
    }

    /// Every confidential client and its secret.
    pub fn secrets(&self) -> impl Iterator<Item = (&str, &str)> {
        self.info["clients"]
            .as_object()
            .expect("the server lists its clients")
            .iter()
            .filter_map(|(id, secret)| Some((id.as_str(), secret.as_str()?)))
    }

    pub fn secret(&self, client: Client) -> &str {
        self.secrets()
            .find(|(id, _)| *id == client.id)
            .unwrap_or_else(|| panic!("{:?} has no client {}", self.kind, client.id))
            .1
    }

    /// The CA that issued the server's certificate, when it serves https.
    pub fn ca(&self) -> Option<&Path> {
        self.ca.as_deref()
    }

    /// An HTTP client that trusts the server's certificate.
    pub fn http(&self) -> UreqClient {
        match self.ca() {
            Some(ca) => UreqClient::with_extra_ca(ca).expect("the test CA loads"),
            None => UreqClient::new(),
        }
    }

    /// A connection file's content (docs/configuration.md's format) for `grant` as `client`. Secrets are
    /// named, never given: each client's secret is stored under its client ID and the password
    /// under `alice-password` (see `Host::new` and `Scratch::new`).
    pub fn connection(&self, grant: &str, client: Client) -> Value {
        let mut connection = json!({
            "grant_type": grant,
            "token_url": self.token_url(),
            "client_id": client.id,
            "client_secret": client.id,
            "client_auth": match client.auth {
                ClientAuth::Auto => "auto",
                ClientAuth::Basic => "basic",
                ClientAuth::BasicUnencoded => "basic_unencoded",
                ClientAuth::RequestBody => "request_body",
                ClientAuth::PrivateKeyJwt => "private_key_jwt",
                ClientAuth::ClientSecretJwt => "client_secret_jwt",
            },
        });
        if client.auth == ClientAuth::PrivateKeyJwt {
            // The client's key, stored by `Host::new` and `Scratch::new`; it has no secret.
            connection["private_key"] = "rsa-key".into();
            connection["key_id"] = "rsa-1".into();
            connection.as_object_mut().unwrap().remove("client_secret");
        }
        match grant {
            "password" => {
                connection["username"] = USERNAME.into();
                connection["password"] = "alice-password".into();
            }
            "authorization_code" => {
                connection["authorization_url"] = self.url("authorization_url").into();
                connection["redirect_uri"] = self.redirect_uri.clone().into();
                connection["scope"] = self.kind.web_scope().into();
            }
            _ => {}
        }
        connection
    }

    /// Revokes `token` at the server's RFC 7009 endpoint, as `client` (a server lets a client
    /// revoke only its own tokens).
    pub fn revoke(&self, client: Client, token: &str) {
        assert!(matches!(client.auth, ClientAuth::Basic));
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("token", token)
            .finish();
        let response = self
            .http()
            .send(&HttpRequest {
                method: "POST".into(),
                url: self.url("revocation_url"),
                headers: vec![
                    header(
                        "Authorization",
                        &basic_auth(client.id, self.secret(client), "%20"),
                    ),
                    header("Content-Type", "application/x-www-form-urlencoded"),
                ],
                body: body.into_bytes(),
            })
            .expect("the revocation endpoint answers");
        assert_eq!(
            response.status,
            200,
            "revocation: {}",
            String::from_utf8_lossy(&response.body)
        );
    }
}

pub fn header(name: &str, value: &str) -> Pair {
    Pair {
        name: name.into(),
        value: value.into(),
    }
}

/// An HTTP Basic header per RFC 6749 §2.3.1: ID and secret form-urlencoded (the WHATWG
/// encoding, which leaves only `*-._` and alphanumerics), joined with `:`, in base64; `space` is
/// what a space becomes (`+` as form encoding has it, or `%20`).
pub fn basic_auth(id: &str, secret: &str, space: &str) -> String {
    use base64::Engine as _;
    // A literal '+' is itself encoded (%2B), so every '+' in the output stands for a space.
    let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let credentials = format!("{}:{}", encode(id), encode(secret)).replace('+', space);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    )
}

/// A loopback port that was free a moment ago: for redirect URIs, which must be known before
/// the server that registers them starts.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A file of the interop kit in `tests/interop/`.
pub fn kit(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/interop")
        .join(path)
}

/// Fails the test, never skips it, when the kit has not been installed.
pub fn require(path: &Path) -> &Path {
    assert!(
        path.exists(),
        "{} is missing: run tests/interop/setup.sh (it installs oidc-provider, Authlib, \
         playwright-core and chromium for the interop tests)",
        path.display()
    );
    path
}

/// `node`, for a script of `package` (a folder of the kit with installed `node_modules`).
pub fn node(package: &str) -> Command {
    require(&kit(package).join("node_modules"));
    Command::new("node")
}

/// The Python of the kit's virtual environment, which has Authlib, Flask and cryptography.
pub fn python() -> Command {
    Command::new(require(&kit("authlib/.venv/bin/python")))
}

/// Writes `ca.pem`, `cert.pem` (for 127.0.0.1) and `key.pem` into `dir`.
fn make_ca(dir: &Path) {
    Spawned::start(python().arg(kit("authlib/make_ca.py")).arg(dir), Some(""))
        .finish(SCRIPT_LIMIT)
        .assert_success("make_ca.py");
}

/// A fresh directory under the system temp dir, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "oauth2-interop-{}-{unique}-{label}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).expect("creating a scratch directory");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

//! `oauth2-host`: runs the oauth2-plugin component from the command line.

use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use oauth2_host::config_file::{self, ConfigFileError};
use oauth2_host::presets;
use oauth2_host::service_account;
use oauth2_host::ui::{self, Ui};
use oauth2_host::validate;
use oauth2_plugin::provider_text::{escape_controls, is_unsafe_char};
use oauth2_runtime::api_call;
use oauth2_runtime::http_client::WithDeadline;
use oauth2_runtime::{
    ConnectionConfig, FileStore, HttpRequest, Pair, Plugin, RedisStore, RevocationOutcome,
    SealingKeys, SecretStore, Services, SystemClock, Token, TokenStore, UreqClient,
};

/// `--version`: the command's version and the component it embeds, whose SHA-256 another host
/// (the Node.js package) compares with its own.
fn long_version() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        format!(
            "{}\ncomponent sha256 {} ({} bytes)",
            env!("CARGO_PKG_VERSION"),
            oauth2_runtime::EMBEDDED_SHA256,
            oauth2_runtime::plugin::EMBEDDED.len()
        )
    })
}

const DEFAULT_STORE: &str = ".oauth2-host/store.json";

/// The Redis password, for a `--store` URL that names none: a password in the URL would be in
/// the process list for every local user to read.
const REDIS_PASSWORD_VARIABLE: &str = "OAUTH2_HOST_REDIS_PASSWORD";

/// The longest duration a user may ask for.
const MAX_SECONDS: u64 = 3600;

/// The command's HTTP client, kept to tell whether a failure came from its deadline.
static HTTP: OnceLock<(Arc<WithDeadline>, Duration)> = OnceLock::new();

/// Tries an OAuth 2.0 connection against its provider, with the oauth2-plugin component in a
/// wasmtime sandbox.
#[derive(Parser)]
#[command(name = "oauth2-host", version, long_version = long_version())]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the client credentials, password, authorization code and device code grants end to
    /// end against an embedded provider and API on 127.0.0.1.
    Demo {
        #[command(flatten)]
        component: ComponentArg,
    },
    /// Stores the secrets a connection file names.
    Secret {
        #[command(subcommand)]
        action: SecretAction,
    },
    /// Gets the connection's token (cached, refreshed or fetched) and prints what it holds.
    Token {
        #[command(flatten)]
        connection: ConnectionArgs,
        /// Also print the access token and every extra field of the response.
        #[arg(long)]
        reveal: bool,
    },
    /// Sends a request with the connection's token, as curl would; retries once after a 401.
    Call {
        #[command(flatten)]
        connection: ConnectionArgs,
        /// The request's method (GET, or POST with --data).
        #[arg(short = 'X', long = "request", value_name = "METHOD")]
        method: Option<String>,
        /// A header, `Name: value`; may repeat.
        #[arg(short = 'H', long = "header", value_name = "HEADER")]
        headers: Vec<String>,
        /// The request body.
        #[arg(short = 'd', long = "data", value_name = "BODY")]
        data: Option<String>,
        /// The API URL.
        url: String,
    },
    /// Runs the authorization-code consent: prints the URL to open, waits for the browser's
    /// redirect, exchanges the code and stores the token.
    Authorize {
        #[command(flatten)]
        connection: ConnectionArgs,
        /// How long to wait for the browser, in seconds (1 to 3600).
        #[arg(long, value_name = "SECONDS", value_parser = seconds, default_value = "300")]
        timeout: Duration,
    },
    /// Runs the device authorization grant: prints the verification URI on one stdout line and
    /// the user code on the next, polls until the user approves, and stores the token.
    Device {
        #[command(flatten)]
        connection: ConnectionArgs,
        /// How long to wait for the user at most, in seconds (1 to 3600); the device code's
        /// own expiry may end the wait sooner.
        #[arg(long, value_name = "SECONDS", value_parser = seconds, default_value = "900")]
        timeout: Duration,
    },
    /// Disconnects: removes the connection's tokens from the store and revokes them at the
    /// provider's revocation_url. Exits 0 when both are done.
    Revoke {
        #[command(flatten)]
        connection: ConnectionArgs,
    },
    /// Makes a connection from a Google service account's JSON key file: stores its private key
    /// as a secret and writes the connection file (JWT bearer grant).
    GoogleServiceAccount(GoogleServiceAccountArgs),
    /// Checks a connection file offline: every problem at once, and that its secrets are stored.
    Check {
        /// The connection file (JSON).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[command(flatten)]
        store: StoreArg,
        #[command(flatten)]
        component: ComponentArg,
    },
    /// Validates a connection as a user would: configuration, token (or consent), the API called
    /// with it, then the token's expiry played forward and the API called again. Prints a
    /// checklist; exits 0 only when every step passed.
    Validate(ValidateArgs),
    /// Serves a local page (127.0.0.1 only) to fill in a connection, store its secrets, test it
    /// and save it. Prints the page's address, with its launch token, on stdout.
    Ui(UiArgs),
    /// Manages the key that encrypts a shared (Redis) store's values.
    StoreKey {
        #[command(subcommand)]
        action: StoreKeyAction,
    },
    /// Lists the provider presets a connection file can name, or shows one in full.
    Presets {
        /// The preset to show.
        name: Option<String>,
    },
}

#[derive(Subcommand)]
enum SecretAction {
    /// Stores a secret: read from stdin, or typed at a terminal without echo.
    Set {
        /// The name connection files give for it (`client_secret`, `password`).
        name: String,
        #[command(flatten)]
        store: StoreArg,
    },
}

#[derive(Args)]
struct ValidateArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// A protected API URL to call with the token (GET).
    #[arg(long, value_name = "URL")]
    api: String,
    /// The status the API must answer (default: any 2xx).
    #[arg(long, value_name = "STATUS")]
    expect_status: Option<u16>,
    /// A field the API's JSON answer must hold, as a JSON pointer and a value (`/sub=alice`,
    /// `/active=true`); may repeat.
    #[arg(long, value_name = "POINTER=VALUE", value_parser = validate::parse_expectation)]
    expect_json: Vec<(String, String)>,
    /// How long to wait for the browser's consent, in seconds (1 to 3600).
    #[arg(long, value_name = "SECONDS", value_parser = seconds, default_value = "300")]
    timeout: Duration,
    /// Print the checklist as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct GoogleServiceAccountArgs {
    /// The service account's JSON key file, as Google Cloud Console downloads it.
    #[arg(long, value_name = "FILE")]
    key_file: PathBuf,
    /// The scopes to ask for, space-separated (Google requires at least one).
    #[arg(long, value_name = "SCOPES")]
    scope: String,
    /// The user to act for (domain-wide delegation), as the `sub` of the assertion.
    #[arg(long, value_name = "EMAIL")]
    subject: Option<String>,
    /// The secret name to store the private key under (default: `<client_email>-key`).
    #[arg(long, value_name = "NAME")]
    secret_name: Option<String>,
    /// Write the connection file here (never over an existing file); default: print it.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    store: StoreArg,
}

#[derive(Args)]
struct UiArgs {
    #[command(flatten)]
    store: StoreArg,
    #[command(flatten)]
    component: ComponentArg,
    /// Do not open the page in the browser; only print its address.
    #[arg(long)]
    no_open: bool,
    /// Where "Save" writes connection files (default: the current directory).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The port to listen on, on 127.0.0.1 (default: any free one).
    #[arg(long, value_name = "PORT", default_value = "0")]
    port: u16,
}

#[derive(Subcommand)]
enum StoreKeyAction {
    /// Writes a new random key to a file only you can read; point OAUTH2_HOST_STORE_KEY_FILE
    /// at it on every worker that shares the store.
    New {
        /// The key file to create (an existing file is never overwritten).
        #[arg(long, value_name = "FILE")]
        output: PathBuf,
    },
}

#[derive(Args)]
struct StoreArg {
    /// Where your secrets and the component's token state live: a file, or a Redis shared by
    /// many workers, `redis://[USER@]HOST[:PORT][/DB]` (`rediss://` for TLS; the password from
    /// OAUTH2_HOST_REDIS_PASSWORD), its values encrypted with the key in the file
    /// OAUTH2_HOST_STORE_KEY_FILE names.
    #[arg(long, value_name = "PATH|URL", default_value = DEFAULT_STORE)]
    store: String,
    /// For a rediss:// store whose certificate a private CA signed: that CA's certificates
    /// (PEM), trusted instead of the system's.
    #[arg(long, value_name = "PEM")]
    store_ca_cert: Option<PathBuf>,
}

/// A store in both its roles, and its name for messages.
struct OpenStore {
    secrets: Arc<dyn SecretStore>,
    tokens: Arc<dyn TokenStore>,
    shown: String,
}

impl StoreArg {
    fn open(&self) -> anyhow::Result<OpenStore> {
        let lowered = self.store.to_ascii_lowercase();
        if !(lowered.starts_with("redis://") || lowered.starts_with("rediss://")) {
            if self.store_ca_cert.is_some() {
                bail!("--store-ca-cert is for a rediss:// store, not a file");
            }
            let store = Arc::new(FileStore::open(&self.store).map_err(|e| anyhow!(e))?);
            return Ok(OpenStore {
                secrets: store.clone(),
                tokens: store,
                shown: self.store.clone(),
            });
        }
        let mut url = url::Url::parse(&self.store).context("--store")?;
        if url.password().is_none()
            && let Some(password) = std::env::var_os(REDIS_PASSWORD_VARIABLE)
        {
            let password = password
                .into_string()
                .map_err(|_| anyhow!("{REDIS_PASSWORD_VARIABLE} is not UTF-8"))?;
            url.set_password(Some(&password))
                .map_err(|()| anyhow!("--store: this URL cannot carry a password"))?;
        }
        let keys = SealingKeys::from_env()?;
        let store = match &self.store_ca_cert {
            None => RedisStore::open(url.as_str(), keys),
            Some(path) => {
                let ca = std::fs::read(path)
                    .with_context(|| format!("--store-ca-cert {}", path.display()))?;
                RedisStore::open_trusting(url.as_str(), keys, &ca)
            }
        };
        let store = Arc::new(store.map_err(|e| {
            if e.contains("certificate") && self.store_ca_cert.is_none() {
                anyhow!("{e} (a server with a private CA's certificate: give the CA with --store-ca-cert PEM)")
            } else {
                anyhow!(e)
            }
        })?);
        Ok(OpenStore {
            secrets: store.clone(),
            shown: store.url().to_owned(),
            tokens: store,
        })
    }
}

#[derive(Args)]
struct ComponentArg {
    /// Run this component instead of the built-in one.
    #[arg(long, value_name = "PATH")]
    component: Option<PathBuf>,
}

impl ComponentArg {
    fn plugin(&self) -> anyhow::Result<Plugin> {
        Plugin::load(self.component.as_deref(), compiled_cache_dir().as_deref())
    }
}

/// What every command that reaches the provider takes.
#[derive(Args)]
struct ConnectionArgs {
    /// The connection file (JSON).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    #[command(flatten)]
    store: StoreArg,
    /// Also trust the CA certificates in this PEM file.
    #[arg(long, value_name = "PEM")]
    ca_cert: Option<PathBuf>,
    #[command(flatten)]
    component: ComponentArg,
    /// Give up on the provider and the API after this many seconds in all (1 to 3600).
    #[arg(long, value_name = "SECONDS", value_parser = seconds, default_value = "120")]
    deadline: Duration,
}

impl ConnectionArgs {
    fn config(&self) -> anyhow::Result<ConnectionConfig> {
        config_file::load(&self.config).with_context(|| self.config.display().to_string())
    }

    /// The services, with `--deadline` counted from now plus `wait`, the time the command may
    /// spend waiting for the user (the consent in the browser) rather than for the network.
    fn services(&self, wait: Duration) -> anyhow::Result<Services> {
        let client = match &self.ca_cert {
            Some(path) => UreqClient::with_extra_ca(path)
                .with_context(|| format!("--ca-cert {}", path.display()))?,
            None => UreqClient::new(),
        };
        let http = Arc::new(WithDeadline::new(client, self.deadline + wait));
        let _ = HTTP.set((Arc::clone(&http), self.deadline + wait));
        let store = self.store.open()?;
        Ok(Services {
            http,
            secrets: store.secrets,
            tokens: store.tokens,
            clock: Arc::new(SystemClock),
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        // Output piped into `head` and cut short: the reader has what it wanted.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            // `:#` puts the whole context chain on the one line.
            eprintln!("error: {error:#}");
            if let Some((_, deadline)) = HTTP.get().filter(|(http, _)| http.passed()) {
                eprintln!(
                    "the command stopped at its deadline of {} s (--deadline sets it)",
                    deadline.as_secs()
                );
            }
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Demo { component } => demo(&component),
        Command::Secret {
            action: SecretAction::Set { name, store },
        } => secret_set(&name, &store),
        Command::Token { connection, reveal } => token(&connection, reveal),
        Command::Call {
            connection,
            method,
            headers,
            data,
            url,
        } => call(&connection, method, &headers, data, url),
        Command::Authorize {
            connection,
            timeout,
        } => authorize(&connection, timeout),
        Command::Device {
            connection,
            timeout,
        } => device(&connection, timeout),
        Command::Revoke { connection } => revoke(&connection),
        Command::GoogleServiceAccount(args) => google_service_account(&args),
        Command::Check {
            config,
            store,
            component,
        } => check(&config, &store, &component),
        Command::Validate(args) => validate(&args),
        Command::Ui(args) => ui(&args),
        Command::StoreKey {
            action: StoreKeyAction::New { output },
        } => store_key_new(&output),
        Command::Presets { name } => presets(name.as_deref()),
    }
}

/// A whole number of seconds from 1 to [`MAX_SECONDS`].
fn seconds(value: &str) -> Result<Duration, String> {
    value
        .parse::<u64>()
        .ok()
        .filter(|secs| (1..=MAX_SECONDS).contains(secs))
        .map(Duration::from_secs)
        .ok_or_else(|| format!("takes a whole number of seconds, 1 to {MAX_SECONDS}"))
}

/// Where compiled code is kept between runs: `$OAUTH2_HOST_CACHE_DIR` (set but empty: nowhere),
/// else `$XDG_CACHE_HOME/oauth2-host`, else `~/.cache/oauth2-host`.
fn compiled_cache_dir() -> Option<PathBuf> {
    match std::env::var_os("OAUTH2_HOST_CACHE_DIR") {
        Some(dir) if dir.is_empty() => None,
        Some(dir) => Some(dir.into()),
        None => std::env::var_os("XDG_CACHE_HOME")
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
            .map(|dir| dir.join("oauth2-host")),
    }
}

/// Everything a command that runs the component needs.
struct Session {
    plugin: Plugin,
    services: Services,
    config: ConnectionConfig,
}

impl Session {
    fn open(connection: &ConnectionArgs) -> anyhow::Result<Self> {
        Self::open_waiting(connection, Duration::ZERO)
    }

    /// As [`Session::open`], for a command that may wait `wait` for the user.
    fn open_waiting(connection: &ConnectionArgs, wait: Duration) -> anyhow::Result<Self> {
        let (session, problems) = Self::open_unchecked(connection, wait)?;
        // Every problem at once, so a pasted configuration is fixed in one round.
        if !problems.is_empty() {
            bail!("config: {}", problems.join("; "));
        }
        Ok(session)
    }

    /// The session, and every problem the component finds in the configuration.
    fn open_unchecked(
        connection: &ConnectionArgs,
        wait: Duration,
    ) -> anyhow::Result<(Self, Vec<String>)> {
        // The config and store are checked before the slower component compilation.
        let config = connection.config()?;
        let services = connection.services(wait)?;
        let plugin = connection.component.plugin()?;
        let problems = plugin
            .validate_config(&services, &config)?
            .iter()
            .map(|p| format!("{}: {}", p.field, p.message))
            .collect();
        Ok((
            Self {
                plugin,
                services,
                config,
            },
            problems,
        ))
    }
}

fn secret_set(name: &str, store: &StoreArg) -> anyhow::Result<ExitCode> {
    let store = store.open()?;
    let value = read_secret(name).context("reading the secret from stdin")?;
    let value = value
        .strip_suffix('\n')
        .map(|v| v.strip_suffix('\r').unwrap_or(v))
        .unwrap_or(&value);
    if value.is_empty() {
        bail!(
            "no secret value on stdin (pipe it in, e.g. printf %s \"$SECRET\" | oauth2-host secret set {name})"
        );
    }
    store.secrets.set(name, value).map_err(|e| anyhow!(e))?;
    eprintln!("stored secret \"{name}\" in {}", store.shown);
    Ok(ExitCode::SUCCESS)
}

/// The secret on stdin: at a terminal, one line typed without echo; else everything piped in.
fn read_secret(name: &str) -> io::Result<String> {
    let stdin = io::stdin();
    let mut value = String::new();
    if !stdin.is_terminal() {
        stdin.lock().read_to_string(&mut value)?;
        return Ok(value);
    }
    // Echo off before the prompt: what is typed as soon as it shows is not echoed either.
    let echo_off = EchoOff::new(&stdin)?;
    eprint!("value of secret \"{name}\" (not shown): ");
    io::stderr().flush()?;
    let read = stdin.lock().read_line(&mut value);
    drop(echo_off);
    eprintln!();
    read.map(|_| value)
}

/// The terminal's echo, turned off until this is dropped.
struct EchoOff {
    saved: rustix::termios::Termios,
}

impl EchoOff {
    fn new(stdin: &io::Stdin) -> io::Result<Self> {
        let saved = rustix::termios::tcgetattr(stdin)?;
        let mut quiet = saved.clone();
        quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
        rustix::termios::tcsetattr(stdin, rustix::termios::OptionalActions::Now, &quiet)?;
        Ok(Self { saved })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}

/// `value` as JSON that shows provider text safely on a terminal: besides what JSON escapes
/// itself, every character that could reorder or hide text (C1 controls, bidirectional
/// overrides, zero-width characters) is written as a `\u` escape, which reads back the same.
fn terminal_json(value: &serde_json::Value) -> String {
    let mut out = String::new();
    for c in value.to_string().chars() {
        if is_unsafe_char(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn token(connection: &ConnectionArgs, reveal: bool) -> anyhow::Result<ExitCode> {
    let session = Session::open(connection)?;
    let token = session
        .plugin
        .ensure_token(&session.services, &session.config)?;
    writeln!(io::stdout(), "{}", terminal_json(&token.summary(reveal)))?;
    Ok(ExitCode::SUCCESS)
}

fn call(
    connection: &ConnectionArgs,
    method: Option<String>,
    headers: &[String],
    data: Option<String>,
    url: String,
) -> anyhow::Result<ExitCode> {
    let headers = headers
        .iter()
        .map(|header| {
            let (name, value) = header
                .split_once(':')
                // Not echoed: a header given here may well be a credential.
                .ok_or_else(|| anyhow!("-H takes 'Name: value'; one has no ':'"))?;
            Ok(Pair {
                name: name.trim().to_owned(),
                value: value.trim().to_owned(),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    // curl's convention: a body without an explicit method is a POST.
    let method = method.unwrap_or_else(|| if data.is_some() { "POST" } else { "GET" }.to_owned());
    let request = HttpRequest {
        method,
        url,
        headers,
        body: data.unwrap_or_default().into_bytes(),
    };

    let session = Session::open(connection)?;
    let outcome = api_call::call(
        &session.plugin,
        &session.services,
        &session.config,
        &request,
    )?;
    if outcome.retried {
        eprintln!("HTTP 401 on the first try: the token was forgotten and the call retried once");
    }
    let hint = outcome.hint();
    let response = outcome.response;
    let reason = ureq::http::StatusCode::from_u16(response.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or_default();
    eprintln!("HTTP {} {reason}", response.status);
    if let Some(hint) = hint {
        let mut chars = hint.chars();
        let first = chars.next().map(|c| c.to_uppercase().to_string());
        eprintln!("{}{}", first.unwrap_or_default(), chars.as_str());
    }
    let mut stdout = io::stdout().lock();
    if stdout.is_terminal() {
        // At a terminal, the API's text is shown, not obeyed: escape sequences in it could
        // move the cursor, clear the screen or retitle the window. Piped, it goes out as it is.
        let text = String::from_utf8_lossy(&response.body);
        for line in text.split_inclusive('\n') {
            let (line, end) = match line.strip_suffix("\r\n") {
                Some(line) => (line, "\r\n"),
                None => line.strip_suffix('\n').map_or((line, ""), |l| (l, "\n")),
            };
            let shown: String = line
                .split('\t')
                .map(escape_controls)
                .collect::<Vec<_>>()
                .join("\t");
            write!(stdout, "{shown}{end}")?;
        }
    } else {
        stdout.write_all(&response.body)?;
    }
    stdout.flush()?;
    Ok(if (200..300).contains(&response.status) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The device authorization grant: the URI and user code on stdout, one per line, then polls at
/// the provider's interval (5 s more after each `slow_down`) until the user decides, the code
/// expires, or `timeout` passes.
fn device(connection: &ConnectionArgs, timeout: Duration) -> anyhow::Result<ExitCode> {
    let session = Session::open_waiting(connection, timeout)?;
    if session.config.grant_type != oauth2_runtime::GrantType::DeviceCode {
        bail!(
            "config: grant_type is {}: `device` is for device_code connections (authorization_code: `authorize`)",
            config_file::grant_name(session.config.grant_type)
        );
    }
    let token = consent(&session, &session.services, timeout, &|uri| {
        let mut stdout = io::stdout().lock();
        writeln!(stdout, "{uri}")?;
        stdout.flush()
    })?;
    eprintln!("approved: the token is stored");
    writeln!(io::stdout(), "{}", terminal_json(&token.summary(false)))?;
    Ok(ExitCode::SUCCESS)
}

/// Revokes the connection's tokens; exits 0 only when the provider confirmed both (or the
/// store held none).
fn revoke(connection: &ConnectionArgs) -> anyhow::Result<ExitCode> {
    let session = Session::open(connection)?;
    let revocation = session
        .plugin
        .revoke_tokens(&session.services, &session.config)?;
    let mut done = true;
    let mut summary = serde_json::Map::new();
    for (name, outcome) in [
        ("refresh_token", &revocation.refresh_token),
        ("access_token", &revocation.access_token),
    ] {
        let shown = match outcome {
            RevocationOutcome::Revoked => "revoked",
            RevocationOutcome::NotStored => "none stored",
            RevocationOutcome::NoEndpoint => {
                done = false;
                eprintln!(
                    "{name}: removed from the store, but no revocation_url is configured: the \
                     provider was not told"
                );
                "removed, not revoked"
            }
            RevocationOutcome::Failed(e) => {
                done = false;
                eprintln!(
                    "{name}: removed from the store, but the provider did not confirm: {}",
                    oauth2_runtime::errors::Explain(e)
                );
                "removed, revocation failed"
            }
        };
        summary.insert(name.into(), shown.into());
    }
    writeln!(io::stdout(), "{}", serde_json::Value::Object(summary))?;
    Ok(if done {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A Google service account key file as a connection: its private key stored as a secret,
/// the rest a connection file on the `google-service-account` preset.
fn google_service_account(args: &GoogleServiceAccountArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.key_file)
        .with_context(|| format!("--key-file {}", args.key_file.display()))?;
    let key = service_account::read(&text)
        .map_err(|e| anyhow!("--key-file {} {e}", args.key_file.display()))?;
    let secret_name = args
        .secret_name
        .clone()
        .unwrap_or_else(|| format!("{}-key", key.client_email));
    let config = key.connection(&secret_name, &args.scope, args.subject.as_deref());
    let text = serde_json::to_string_pretty(&config)? + "\n";
    // Parsed back before anything is stored: the file written is one the command reads.
    config_file::parse(&text).map_err(|e| anyhow!("{e}"))?;
    // The file is created before the key is stored, so a refused --output changes nothing.
    let output = match &args.output {
        Some(path) => {
            use std::os::unix::fs::OpenOptionsExt;
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("creating {}", path.display()))?;
            Some((path, file))
        }
        None => None,
    };
    let stored = args.store.open().and_then(|store| {
        store
            .secrets
            .set(&secret_name, key.private_key.secret())
            .map_err(|e| anyhow!(e))
            .map(|()| store.shown)
    });
    let shown = match stored {
        Ok(shown) => shown,
        Err(e) => {
            if let Some((path, _)) = &output {
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
    };
    eprintln!("stored the private key as secret \"{secret_name}\" in {shown}");
    match output {
        Some((path, mut file)) => {
            file.write_all(text.as_bytes())?;
            eprintln!("wrote the connection file {}", path.display());
        }
        None => io::stdout().write_all(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Creates a key file: one random key in base64, mode 0600, never over an existing file.
fn store_key_new(output: &Path) -> anyhow::Result<ExitCode> {
    use std::os::unix::fs::OpenOptionsExt;
    let line = SealingKeys::new_key_line().context("randomness for the key")?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(output)
        .with_context(|| format!("creating the key file {}", output.display()))?;
    writeln!(file, "{line}")
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing the key file {}", output.display()))?;
    eprintln!(
        "wrote a new store key to {}: set OAUTH2_HOST_STORE_KEY_FILE={} on every worker that \
         shares the store, and keep a copy where you keep other secrets",
        output.display(),
        output.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Checks a config file without contacting the provider: the file's keys, the preset, the
/// component's rules for the grant, and that every secret it names is in the store.
fn check(path: &Path, store: &StoreArg, component: &ComponentArg) -> anyhow::Result<ExitCode> {
    let mut problems: Vec<String> = Vec::new();
    match config_file::load(path) {
        Ok(config) => {
            let plugin = component.plugin()?;
            let nothing = Arc::new(oauth2_runtime::MemoryStore::new());
            let services = Services {
                http: Arc::new(UreqClient::new()),
                secrets: nothing.clone(),
                tokens: nothing,
                clock: Arc::new(SystemClock),
            };
            for p in plugin.validate_config(&services, &config)? {
                problems.push(format!("{}: {}", p.field, p.message));
            }
            match store.open() {
                Ok(store) => {
                    let private_key = config.signing_key.as_ref().map(|k| k.name.clone());
                    for (key, name) in [
                        ("client_secret", &config.client_secret_name),
                        ("password", &config.password_name),
                        ("private_key", &private_key),
                    ] {
                        let Some(name) = name.as_deref().filter(|n| !n.trim().is_empty()) else {
                            continue;
                        };
                        match store.secrets.get(name) {
                            Ok(Some(_)) => {}
                            Ok(None) => problems.push(format!(
                                "{key}: the secret \"{name}\" is not in {} (add it with: oauth2-host secret set {name})",
                                store.shown
                            )),
                            Err(e) => problems.push(format!("{key}: the store failed: {e}")),
                        }
                    }
                }
                Err(e) => problems.push(format!("store: {e:#}")),
            }
            if problems.is_empty() {
                let grant = config_file::grant_name(config.grant_type);
                writeln!(
                    io::stdout(),
                    "{}: OK ({grant}, token_url {})",
                    path.display(),
                    config.token_url
                )?;
                return Ok(ExitCode::SUCCESS);
            }
        }
        Err(ConfigFileError::Problems(found)) => {
            problems.extend(
                found
                    .into_iter()
                    .map(|p| format!("{}: {}", p.key, p.message)),
            );
        }
        Err(other) => problems.push(other.to_string()),
    }
    let mut out = io::stdout().lock();
    writeln!(out, "{}: {} problem(s)", path.display(), problems.len())?;
    for problem in &problems {
        writeln!(out, "  {problem}")?;
    }
    Ok(ExitCode::FAILURE)
}

/// Lists the presets, or shows one in full.
fn presets(name: Option<&str>) -> anyhow::Result<ExitCode> {
    let mut out = io::stdout().lock();
    match name {
        None => {
            for (name, preset) in presets::all() {
                writeln!(out, "{name:<20} {}", preset.title)?;
                writeln!(out, "{:<20} grants: {}", "", preset.grants.join(", "))?;
                for (placeholder, p) in &preset.placeholders {
                    writeln!(
                        out,
                        "{:<20} preset_values.{placeholder}: {} (e.g. {})",
                        "", p.description, p.example
                    )?;
                }
                writeln!(out, "{:<20} {}", "", preset.docs)?;
            }
            writeln!(
                out,
                "\nUse one with \"preset\": \"NAME\" in the config file; its own keys override the preset's."
            )?;
        }
        Some(name) => {
            let preset = presets::find(name).ok_or_else(|| {
                anyhow!("\"{name}\" is not a preset (run oauth2-host presets for the list)")
            })?;
            writeln!(out, "{name}: {}\n{}\n", preset.title, preset.docs)?;
            writeln!(out, "grants: {}", preset.grants.join(", "))?;
            for (placeholder, p) in &preset.placeholders {
                let default = p
                    .default
                    .as_deref()
                    .map_or_else(String::new, |d| format!(", default {d}"));
                writeln!(
                    out,
                    "preset_values.{placeholder}: {} (e.g. {}{default})",
                    p.description, p.example
                )?;
            }
            writeln!(
                out,
                "keys:\n{}",
                serde_json::to_string_pretty(&preset.config)?
            )?;
            writeln!(out, "notes: {}", preset.notes)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn demo(component: &ComponentArg) -> anyhow::Result<ExitCode> {
    let mut stdout = io::stdout().lock();
    oauth2_host::demo::run(&component.plugin()?, &mut stdout)?;
    Ok(ExitCode::SUCCESS)
}

fn authorize(connection: &ConnectionArgs, timeout: Duration) -> anyhow::Result<ExitCode> {
    let session = Session::open_waiting(connection, timeout)?;
    let token = consent(&session, &session.services, timeout, &|url| {
        let mut stdout = io::stdout().lock();
        writeln!(stdout, "{url}")?;
        stdout.flush()
    })?;
    // The token's type and scope are the provider's words: shown, never obeyed.
    eprintln!(
        "authorized: {} token stored, expires_at {}, scope {}",
        escape_controls(&token.token_type),
        token
            .expires_at
            .map_or_else(|| "unknown".to_owned(), |at| at.to_string()),
        escape_controls(token.scope.as_deref().unwrap_or("(not stated)"))
    );
    Ok(ExitCode::SUCCESS)
}

/// The consent for `session`'s connection, from the terminal.
/// The user's part of the session's grant: the consent in a browser for the authorization
/// code, whose URL `show` gets; the approval on another device for the device code, whose
/// verification URI and user code `show` gets as two lines.
fn consent(
    session: &Session,
    services: &Services,
    timeout: Duration,
    show: &dyn Fn(&str) -> io::Result<()>,
) -> anyhow::Result<Token> {
    if session.config.grant_type == oauth2_runtime::GrantType::DeviceCode {
        return oauth2_host::consent::device(
            &session.plugin,
            services,
            &session.config,
            timeout,
            &|uri, user_code| {
                show(&format!(
                    "{}\n{}",
                    escape_controls(uri),
                    escape_controls(user_code)
                ))
            },
        );
    }
    oauth2_host::consent::run(
        &session.plugin,
        services,
        &session.config,
        timeout,
        show,
        "The token is stored. You can return to the terminal.",
    )
}

/// The whole validation as one checklist on stdout (JSON with `--json`); exit 0 only when every
/// step passed.
fn validate(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let connection = &args.connection;
    let expect = validate::Expectations {
        status: args.expect_status,
        json: args.expect_json.clone(),
    };
    let (session, problems) = match Session::open_unchecked(connection, args.timeout) {
        Ok(opened) => opened,
        Err(error) => {
            let report = validate::Report::failed("configuration", format!("{error:#}"));
            return print_report(&report, args.json);
        }
    };
    let consent = |services: &Services| {
        consent(&session, services, args.timeout, &|url| {
            // As `authorize` does, the URL alone on a line of stdout, ahead of the
            // checklist; with --json, stdout holds only the JSON.
            if args.json {
                eprintln!("open this URL in your browser to consent:\n{url}");
                Ok(())
            } else {
                let mut stdout = io::stdout().lock();
                writeln!(stdout, "{url}")?;
                stdout.flush()
            }
        })
    };
    let checks = validate::Checks {
        problems,
        api_url: &args.api,
        expect: &expect,
        consent: &consent,
        progress: &|_| {},
    };
    let report = validate::run(&session.plugin, &session.services, &session.config, &checks);
    print_report(&report, args.json)
}

fn print_report(report: &validate::Report<'_>, json: bool) -> anyhow::Result<ExitCode> {
    let mut stdout = io::stdout().lock();
    if json {
        writeln!(stdout, "{}", terminal_json(&serde_json::to_value(report)?))?;
    } else {
        write!(stdout, "{}", report.to_text())?;
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Serves the connection page until the process is stopped.
fn ui(args: &UiArgs) -> anyhow::Result<ExitCode> {
    let store = args.store.open()?;
    let services = Services {
        http: Arc::new(UreqClient::new()),
        secrets: store.secrets,
        tokens: store.tokens,
        clock: Arc::new(SystemClock),
    };
    let plugin = args.component.plugin()?;
    let listener = std::net::TcpListener::bind(("127.0.0.1", args.port))
        .with_context(|| format!("listening on 127.0.0.1:{}", args.port))?;
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let page = Arc::new(Ui::new(plugin, services, dir, &listener)?);
    let url = page.url();
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{url}")?;
    stdout.flush()?;
    drop(stdout);
    eprintln!("the connection page is served on 127.0.0.1 only, until you stop this command");
    if !args.no_open
        && let Err(error) = open_in_browser(&url)
    {
        eprintln!("could not open a browser ({error}): open the address above yourself");
    }
    ui::serve(page, listener)?;
    Ok(ExitCode::SUCCESS)
}

/// Opens `url` through a private file that redirects to it, so the launch token never appears
/// on a command line, where other local users could read it.
fn open_in_browser(url: &str) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = std::env::temp_dir().join(format!("oauth2-host-ui-{}", std::process::id()));
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    let launch = dir.join("open.html");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&launch)?;
    writeln!(
        file,
        "<!doctype html><meta http-equiv=\"refresh\" content=\"0;url={url}\"><a href=\"{url}\">open</a>"
    )?;
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    std::process::Command::new(opener)
        .arg(&launch)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(drop)
}

//! `oauth2-host`: runs the oauth2-plugin component from the command line.

use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use oauth2_host::callback::{self, CallbackListener};
use oauth2_host::config_file::{self, ConfigFileError};
use oauth2_host::presets;
use oauth2_plugin::provider_text::{escape_controls, is_unsafe_char};
use oauth2_runtime::api_call;
use oauth2_runtime::http_client::WithDeadline;
use oauth2_runtime::{
    ConnectionConfig, FileStore, HttpRequest, Pair, Plugin, SecretStore, Services, SystemClock,
    UreqClient,
};

const USAGE: &str = "\
usage:
  oauth2-host demo [--component PATH]
  oauth2-host secret set NAME [--store PATH]          (value read from stdin, not echoed)
  oauth2-host token --config FILE [--store PATH] [--ca-cert PEM] [--reveal]
  oauth2-host call --config FILE [--store PATH] [--ca-cert PEM] [-X METHOD] [-H 'K: V']... [-d BODY] URL
  oauth2-host authorize --config FILE [--store PATH] [--ca-cert PEM] [--timeout SECONDS]
  oauth2-host check --config FILE [--store PATH]       (offline: every problem at once)
  oauth2-host presets [NAME]                           (providers a config can name as preset)
options common to token, call and authorize:
  --store PATH        secret store file (default .oauth2-host/store.json)
  --ca-cert PEM       also trust the CA certificates in this PEM file
  --component PATH    run this component instead of the built-in one
  --deadline SECONDS  give up on the provider and API after this long (default 120, at most 3600)
  --timeout SECONDS   authorize only: how long to wait for the browser (default 300, at most 3600)";

const DEFAULT_STORE: &str = ".oauth2-host/store.json";

/// How long a command may spend on the provider and the API, over all its requests.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(120);

/// The longest duration a user may ask for.
const MAX_SECONDS: u64 = 3600;

/// The command's HTTP client, kept to tell whether a failure came from its deadline.
static HTTP: OnceLock<(Arc<WithDeadline>, Duration)> = OnceLock::new();

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(error) if error.is::<Usage>() => {
            eprintln!("error: {error} (see: oauth2-host --help)");
            ExitCode::from(2)
        }
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

/// A command line that does not fit the interface.
#[derive(Debug)]
struct Usage(String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

fn usage(message: impl Into<String>) -> anyhow::Error {
    Usage(message.into()).into()
}

fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    let Some((command, rest)) = args.split_first() else {
        return Err(usage("no command given"));
    };
    match command.as_str() {
        "secret" => match rest.split_first() {
            Some((set, rest)) if set == "set" => secret_set(&Options::parse(rest, &["--store"])?),
            _ => Err(usage("the secret command is: secret set NAME")),
        },
        "token" => token(&Options::parse(rest, &[COMMON, &["--reveal"]].concat())?),
        "call" => call(&Options::parse(
            rest,
            &[COMMON, &["-X", "-H", "-d"]].concat(),
        )?),
        "authorize" => authorize(&Options::parse(rest, &[COMMON, &["--timeout"]].concat())?),
        "demo" => demo(&Options::parse(rest, &["--component"])?),
        "check" => check(&Options::parse(
            rest,
            &["--config", "--store", "--component"],
        )?),
        "presets" => presets(&Options::parse(rest, &[])?),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => Err(usage(format!("unknown command {other:?}"))),
    }
}

const COMMON: &[&str] = &[
    "--config",
    "--store",
    "--ca-cert",
    "--component",
    "--deadline",
];

/// The flags of one command line, after checking each is allowed for the command.
#[derive(Debug, Default)]
struct Options {
    config: Option<PathBuf>,
    store: Option<PathBuf>,
    ca_cert: Option<PathBuf>,
    component: Option<PathBuf>,
    reveal: bool,
    timeout: Option<Duration>,
    deadline: Option<Duration>,
    method: Option<String>,
    headers: Vec<String>,
    data: Option<String>,
    positional: Vec<String>,
}

impl Options {
    fn parse(args: &[String], allowed: &[&str]) -> anyhow::Result<Self> {
        let mut options = Self::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            if !arg.starts_with('-') || arg == "-" {
                options.positional.push(arg.clone());
                continue;
            }
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
                _ => (arg.as_str(), None),
            };
            if !allowed.contains(&flag) {
                return Err(usage(format!("unknown option {flag}")));
            }
            if flag == "--reveal" {
                options.reveal = true;
                continue;
            }
            let value = match inline {
                Some(value) => value,
                None => args
                    .next()
                    .cloned()
                    .ok_or_else(|| usage(format!("{flag} needs a value")))?,
            };
            match flag {
                "--config" => options.config = Some(value.into()),
                "--store" => options.store = Some(value.into()),
                "--ca-cert" => options.ca_cert = Some(value.into()),
                "--component" => options.component = Some(value.into()),
                "-X" => options.method = Some(value),
                "-H" => options.headers.push(value),
                "-d" => options.data = Some(value),
                "--timeout" => options.timeout = Some(seconds(flag, &value)?),
                "--deadline" => options.deadline = Some(seconds(flag, &value)?),
                _ => unreachable!("every allowed flag is handled above"),
            }
        }
        Ok(options)
    }

    fn store(&self) -> anyhow::Result<FileStore> {
        let path = self.store.clone().unwrap_or_else(|| DEFAULT_STORE.into());
        FileStore::open(path).map_err(|e| anyhow!(e))
    }

    fn config(&self) -> anyhow::Result<ConnectionConfig> {
        let path = self
            .config
            .as_deref()
            .ok_or_else(|| usage("--config FILE is required"))?;
        config_file::load(path).with_context(|| path.display().to_string())
    }

    fn plugin(&self) -> anyhow::Result<Plugin> {
        Plugin::load(self.component.as_deref(), compiled_cache_dir().as_deref())
    }

    fn services(&self) -> anyhow::Result<Services> {
        let client = match &self.ca_cert {
            Some(path) => UreqClient::with_extra_ca(path)
                .with_context(|| format!("--ca-cert {}", path.display()))?,
            None => UreqClient::new(),
        };
        let deadline = self.deadline.unwrap_or(DEFAULT_DEADLINE);
        let http = Arc::new(WithDeadline::new(client, deadline));
        let _ = HTTP.set((Arc::clone(&http), deadline));
        let store = Arc::new(self.store()?);
        Ok(Services {
            http,
            secrets: store.clone(),
            tokens: store,
            clock: Arc::new(SystemClock),
        })
    }

    fn no_positional(&self) -> anyhow::Result<()> {
        match self.positional.first() {
            Some(extra) => Err(usage(format!("unexpected argument {extra:?}"))),
            None => Ok(()),
        }
    }
}

/// A whole number of seconds from 1 to [`MAX_SECONDS`].
fn seconds(flag: &str, value: &str) -> anyhow::Result<Duration> {
    value
        .parse::<u64>()
        .ok()
        .filter(|secs| (1..=MAX_SECONDS).contains(secs))
        .map(Duration::from_secs)
        .ok_or_else(|| {
            usage(format!(
                "{flag} takes a whole number of seconds, 1 to {MAX_SECONDS}"
            ))
        })
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
    fn open(options: &Options) -> anyhow::Result<Self> {
        // The config and store are checked before the slower component compilation.
        let config = options.config()?;
        let services = options.services()?;
        let plugin = options.plugin()?;
        // Every problem at once, so a pasted configuration is fixed in one round.
        let problems = plugin.validate_config(&services, &config)?;
        if !problems.is_empty() {
            let list: Vec<String> = problems
                .iter()
                .map(|p| format!("{}: {}", p.field, p.message))
                .collect();
            bail!("config: {}", list.join("; "));
        }
        Ok(Self {
            plugin,
            services,
            config,
        })
    }
}

fn secret_set(options: &Options) -> anyhow::Result<ExitCode> {
    let [name] = options.positional.as_slice() else {
        return Err(usage("secret set takes exactly one NAME"));
    };
    let store = options.store()?;
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
    store.set(name, value).map_err(|e| anyhow!(e))?;
    eprintln!("stored secret \"{name}\" in {}", store.path().display());
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

fn token(options: &Options) -> anyhow::Result<ExitCode> {
    options.no_positional()?;
    let session = Session::open(options)?;
    let token = session
        .plugin
        .ensure_token(&session.services, &session.config)?;
    println!("{}", terminal_json(&token.summary(options.reveal)));
    Ok(ExitCode::SUCCESS)
}

fn call(options: &Options) -> anyhow::Result<ExitCode> {
    let [url] = options.positional.as_slice() else {
        return Err(usage("call takes exactly one URL"));
    };
    let headers = options
        .headers
        .iter()
        .map(|header| {
            let (name, value) = header
                .split_once(':')
                // Not echoed: a header given here may well be a credential.
                .ok_or_else(|| usage("-H takes 'Name: value'; one has no ':'"))?;
            Ok(Pair {
                name: name.trim().to_owned(),
                value: value.trim().to_owned(),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let body = options.data.clone().unwrap_or_default().into_bytes();
    // curl's convention: a body without an explicit method is a POST.
    let method = options.method.clone().unwrap_or_else(|| {
        if options.data.is_some() {
            "POST"
        } else {
            "GET"
        }
        .to_owned()
    });
    let request = HttpRequest {
        method,
        url: url.clone(),
        headers,
        body,
    };

    let session = Session::open(options)?;
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

/// Checks a config file without contacting the provider: the file's keys, the preset, the
/// component's rules for the grant, and that every secret it names is in the store.
fn check(options: &Options) -> anyhow::Result<ExitCode> {
    options.no_positional()?;
    let path = options
        .config
        .as_deref()
        .ok_or_else(|| usage("--config FILE is required"))?;
    let mut problems: Vec<String> = Vec::new();
    match config_file::load(path) {
        Ok(config) => {
            let plugin = options.plugin()?;
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
            match options.store() {
                Ok(store) => {
                    for (key, name) in [
                        ("client_secret", &config.client_secret_name),
                        ("password", &config.password_name),
                    ] {
                        let Some(name) = name.as_deref().filter(|n| !n.trim().is_empty()) else {
                            continue;
                        };
                        match store.get(name) {
                            Ok(Some(_)) => {}
                            Ok(None) => problems.push(format!(
                                "{key}: the secret \"{name}\" is not in {} (add it with: oauth2-host secret set {name})",
                                store.path().display()
                            )),
                            Err(e) => problems.push(format!("{key}: the store failed: {e}")),
                        }
                    }
                }
                Err(e) => problems.push(format!("store: {e:#}")),
            }
            if problems.is_empty() {
                let grant = match config.grant_type {
                    oauth2_runtime::GrantType::ClientCredentials => "client_credentials",
                    oauth2_runtime::GrantType::Password => "password",
                    oauth2_runtime::GrantType::AuthorizationCode => "authorization_code",
                };
                println!(
                    "{}: OK ({grant}, token_url {})",
                    path.display(),
                    config.token_url
                );
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
    println!("{}: {} problem(s)", path.display(), problems.len());
    for problem in &problems {
        println!("  {problem}");
    }
    Ok(ExitCode::FAILURE)
}

/// Lists the presets, or shows one in full.
fn presets(options: &Options) -> anyhow::Result<ExitCode> {
    let mut out = io::stdout().lock();
    match options.positional.as_slice() {
        [] => {
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
        [name] => {
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
        _ => return Err(usage("presets takes at most one NAME")),
    }
    Ok(ExitCode::SUCCESS)
}

fn demo(options: &Options) -> anyhow::Result<ExitCode> {
    options.no_positional()?;
    let mut stdout = io::stdout().lock();
    oauth2_host::demo::run(&options.plugin()?, &mut stdout)?;
    Ok(ExitCode::SUCCESS)
}

fn authorize(options: &Options) -> anyhow::Result<ExitCode> {
    options.no_positional()?;
    let session = Session::open(options)?;
    let redirect_uri = session
        .config
        .redirect_uri
        .as_deref()
        .ok_or_else(|| anyhow!("config: redirect_uri: required for authorize"))?;
    // Listen before showing the URL, so a fast browser cannot arrive before the listener, and
    // before beginning, so a busy port leaves no pending authorization behind.
    let listener = CallbackListener::bind(redirect_uri)?
        .with_timeout(options.timeout.unwrap_or(callback::DEFAULT_TIMEOUT));
    let start = session
        .plugin
        .begin_authorization(&session.services, &session.config)?;

    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{}", start.url)?;
    stdout.flush()?;
    drop(stdout);
    eprintln!("waiting for the browser on {redirect_uri} ...");

    let redirect = listener.wait(&start.state)?;
    match session
        .plugin
        .complete_authorization(&session.services, &session.config, redirect.url())
    {
        Ok(token) => {
            redirect.respond_success("The token is stored. You can return to the terminal.");
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
        Err(error) => {
            // The browser is told why too; the message names codes and hints, never secrets.
            redirect.respond_failure(&error.to_string());
            Err(error.into())
        }
    }
}

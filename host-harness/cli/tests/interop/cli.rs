//! `oauth2-host` as a user runs it: a folder with a connection file and a store, and a check
//! after every run that no secret reached the terminal.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::consent::{self, Driver};
use crate::host;
use crate::process::{Outcome, Spawned};
use crate::server::{CLIENT_KEYS, PASSWORD, Server, TempDir, key_pem};

/// Generous: every run compiles the component before it does anything.
const LIMIT: Duration = Duration::from_secs(60);
/// The store entry fields that hold credentials (a pending authorization's `state` is not one:
/// it is in the authorization URL that `authorize` prints).
const SECRET_FIELDS: [&str; 4] = ["access_token", "refresh_token", "id_token", "pkce_verifier"];

/// One user's working folder for one server.
pub struct Scratch {
    dir: TempDir,
    ca: Option<String>,
    /// Every secret value the store has held, so that a run cannot print an old one either.
    seen: RefCell<BTreeSet<String>>,
}

impl Scratch {
    /// The store holds each client's secret under its client ID and Alice's password under
    /// `alice-password`, put there with `oauth2-host secret set`; runs trust the server's CA.
    pub fn new(server: &Server) -> Self {
        let scratch = Self {
            dir: TempDir::new("cli"),
            ca: server.ca().map(|ca| ca.display().to_string()),
            seen: RefCell::default(),
        };
        for (client, secret) in server.secrets() {
            scratch.set_secret(client, secret);
        }
        scratch.set_secret("alice-password", PASSWORD);
        scratch
    }

    /// Stores the client keys ([`CLIENT_KEYS`]) with `oauth2-host secret set`.
    pub fn store_keys(&self) {
        for (name, file) in CLIENT_KEYS {
            self.set_secret(name, &key_pem(file));
        }
    }

    pub fn set_secret(&self, name: &str, value: &str) {
        let out = self.execute(&["secret", "set", name], Some(value), false);
        out.assert_success("secret set");
    }

    /// Writes the connection file that the following runs use; returns its path.
    pub fn connection(&self, connection: &Value) -> String {
        let path = self.dir.path().join("connection.json");
        std::fs::write(&path, connection.to_string()).unwrap();
        path.display().to_string()
    }

    /// `oauth2-host ARGS --store STORE [--ca-cert CA]`.
    pub fn run(&self, args: &[&str]) -> Outcome {
        self.execute(args, None, true)
    }

    /// As [`Scratch::run`] without trusting the server's CA.
    pub fn run_without_ca(&self, args: &[&str]) -> Outcome {
        self.execute(args, None, false)
    }

    fn execute(&self, args: &[&str], stdin: Option<&str>, trust_ca: bool) -> Outcome {
        let out = self.spawn(args, stdin, trust_ca).finish(LIMIT);
        self.assert_no_secrets(&out, args.contains(&"--reveal"));
        out
    }

    fn spawn(&self, args: &[&str], stdin: Option<&str>, trust_ca: bool) -> Spawned {
        let mut command = Command::new(env!("CARGO_BIN_EXE_oauth2-host"));
        command
            .args(args)
            .arg("--store")
            .arg(self.dir.path().join("store.json"));
        if let (true, Some(ca)) = (trust_ca, &self.ca) {
            command.args(["--ca-cert", ca]);
        }
        Spawned::start(&mut command, Some(stdin.unwrap_or("")))
    }

    /// The store file's entries: the secrets, and the token store's values, by name.
    pub fn store(&self) -> BTreeMap<String, String> {
        let file: Value = match std::fs::read(self.dir.path().join("store.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes).expect("the store is JSON"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return BTreeMap::new(),
            Err(e) => panic!("reading the store: {e}"),
        };
        let secrets = file["secrets"].as_object().expect("a secrets object");
        let tokens = file["tokens"].as_object().expect("a tokens object");
        secrets
            .iter()
            .map(|(name, value)| (name.clone(), value.as_str().unwrap().to_owned()))
            .chain(
                tokens
                    .iter()
                    .map(|(key, entry)| (key.clone(), entry["value"].as_str().unwrap().to_owned())),
            )
            .collect()
    }

    /// The stored token entries, parsed.
    pub fn tokens(&self) -> Vec<Value> {
        host::token_entries(self.store())
    }

    /// The one stored token entry.
    pub fn token(&self) -> Value {
        host::only_token(self.tokens())
    }

    /// No client secret, password or token that the store holds or held is in the output; with
    /// `--reveal`, the access token printed on stdout is the one exception.
    fn assert_no_secrets(&self, out: &Outcome, revealed: bool) {
        let mut seen = self.seen.borrow_mut();
        for (name, value) in self.store() {
            if name.starts_with("oauth2/client-auth/") {
                // The client authentication `auto` found to work: a method's name, no secret.
                continue;
            }
            if name.starts_with("oauth2/") {
                let entry = host::entry_fields(&value);
                let fields = SECRET_FIELDS.iter().filter_map(|f| entry[f].as_str());
                seen.extend(fields.map(str::to_owned));
            } else {
                seen.insert(value);
            }
        }
        let mut printed = out.printed();
        if revealed {
            let summary: Value = serde_json::from_str(&out.stdout).expect("a JSON summary");
            let token = summary["access_token"].as_str().expect("a revealed token");
            printed = printed.replace(token, "<revealed>");
        }
        for secret in seen.iter() {
            assert!(
                !printed.contains(secret.as_str()),
                "a secret was printed:\n{printed}"
            );
        }
    }

    /// `oauth2-host validate` of an authorization-code connection, with consent given by
    /// `driver` at the URL it prints: returns how validate ended, and how the driver did.
    pub fn validate_with_consent(
        &self,
        server: &Server,
        connection: &str,
        driver: Driver,
    ) -> (Outcome, Outcome) {
        let api = server.api_url();
        let args = [
            "validate",
            "--config",
            connection,
            "--api",
            &api,
            "--timeout",
            "30",
        ];
        let mut validate = self.spawn(&args, None, true);
        let url = validate.next_line(LIMIT);
        let consent = consent::start(server, driver, &url).finish(consent::LIMIT);
        let out = validate.finish(Duration::from_secs(30) + LIMIT);
        self.assert_no_secrets(&out, false);
        (out, consent)
    }

    /// `oauth2-host device`, the user deciding as `approve` says at the URI it prints: returns
    /// how the command ended, and the two lines it printed first (URI and user code).
    pub fn device(
        &self,
        server: &Server,
        connection: &str,
        approve: bool,
    ) -> (Outcome, [String; 2]) {
        let args = ["device", "--config", connection, "--timeout", "60"];
        self.decide_device(server, &args, approve)
    }

    /// `oauth2-host validate` of a device code connection against the server's API, the user
    /// approving at the URI it prints.
    pub fn validate_device(&self, server: &Server, connection: &str) -> (Outcome, [String; 2]) {
        let api = server.api_url();
        let args = [
            "validate",
            "--config",
            connection,
            "--api",
            &api,
            "--timeout",
            "60",
        ];
        self.decide_device(server, &args, true)
    }

    /// Runs `args`, a command that prints a verification URI and a user code on its first two
    /// lines, and decides at that URI as `approve` says.
    fn decide_device(
        &self,
        server: &Server,
        args: &[&str],
        approve: bool,
    ) -> (Outcome, [String; 2]) {
        let mut device = self.spawn(args, None, true);
        let uri = device.next_line(LIMIT);
        let user_code = device.next_line(LIMIT);
        consent::decide_device(server, &uri, &user_code, approve);
        let out = device.finish(Duration::from_secs(60) + LIMIT);
        self.assert_no_secrets(&out, false);
        (out, [uri, user_code])
    }

    /// `oauth2-host authorize` with consent given by `driver`: returns how authorize ended, and
    /// how the driver did.
    pub fn authorize(
        &self,
        server: &Server,
        connection: &str,
        driver: Driver,
        timeout_secs: u64,
    ) -> (Outcome, Outcome) {
        let timeout = timeout_secs.to_string();
        let args = ["authorize", "--config", connection, "--timeout", &timeout];
        let mut authorize = self.spawn(&args, None, true);
        let url = authorize.next_line(LIMIT);
        let consent = consent::start(server, driver, &url).finish(consent::LIMIT);
        let out = authorize.finish(Duration::from_secs(timeout_secs) + LIMIT);
        self.assert_no_secrets(&out, false);
        (out, consent)
    }
}

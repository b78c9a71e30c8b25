//! Reads the user's JSON connection file, with its provider preset filled in, into the
//! contract's `ConnectionConfig`.

use std::fmt::{self, Display, Formatter};
use std::io::Read;
use std::path::Path;

use serde_json::{Map, Value};

use crate::presets;
use oauth2_runtime::{
    ClientAuth, ConnectionConfig, GrantType, Pair, ResponseFormat, ScopeSeparator,
    SigningAlgorithm, SigningKey, TimeUnit,
};

/// The keys a preset may set; the user's own keys override them.
pub const PRESETABLE_KEYS: &[&str] = &[
    "token_url",
    "authorization_url",
    "header_prefix",
    "audience",
    "resource",
    "scope",
    "client_auth",
    "extra_params",
    "authorization_params",
    "token_path",
    "expires_in_unit",
    "scope_separator",
    "api_origins",
    "signing_alg",
    "assertion_audience",
    "device_authorization_url",
    "revocation_url",
    "issuer",
];

/// The keys only the user sets.
const USER_KEYS: &[&str] = &[
    "preset",
    "preset_values",
    "grant_type",
    "redirect_uri",
    "client_id",
    "client_secret",
    "username",
    "password",
    "private_key",
    "key_id",
    "subject",
];

const GRANT_TYPES: &[(&str, GrantType)] = &[
    ("client_credentials", GrantType::ClientCredentials),
    ("password", GrantType::Password),
    ("authorization_code", GrantType::AuthorizationCode),
    ("jwt_bearer", GrantType::JwtBearer),
    ("device_code", GrantType::DeviceCode),
];

/// The name a connection file gives `grant`.
pub fn grant_name(grant: GrantType) -> &'static str {
    GRANT_TYPES
        .iter()
        .find(|(_, g)| *g == grant)
        .map_or("", |(name, _)| name)
}

const CLIENT_AUTHS: &[(&str, ClientAuth)] = &[
    ("auto", ClientAuth::Auto),
    ("basic", ClientAuth::Basic),
    ("basic_unencoded", ClientAuth::BasicUnencoded),
    ("request_body", ClientAuth::RequestBody),
    ("private_key_jwt", ClientAuth::PrivateKeyJwt),
    ("client_secret_jwt", ClientAuth::ClientSecretJwt),
];

const SIGNING_ALGS: &[(&str, SigningAlgorithm)] = &[
    ("RS256", SigningAlgorithm::Rs256),
    ("PS256", SigningAlgorithm::Ps256),
    ("ES256", SigningAlgorithm::Es256),
];

const TIME_UNITS: &[(&str, TimeUnit)] = &[
    ("seconds", TimeUnit::Seconds),
    ("milliseconds", TimeUnit::Milliseconds),
];

const SCOPE_SEPARATORS: &[(&str, ScopeSeparator)] = &[
    ("space", ScopeSeparator::Space),
    ("comma", ScopeSeparator::Comma),
];

/// One problem in the file, named by its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyProblem {
    pub key: String,
    pub message: String,
}

/// Why a config file is unusable.
#[derive(Debug)]
pub enum ConfigFileError {
    Read(std::io::Error),
    Syntax(serde_json::Error),
    NotAnObject,
    /// Larger than [`MAX_FILE_BYTES`].
    TooLarge,
    /// Every problem found, so a pasted configuration is fixed in one round.
    Problems(Vec<KeyProblem>),
}

impl Display for ConfigFileError {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read(e) => write!(f, "cannot read the config file: {e}"),
            Self::Syntax(e) => write!(f, "config file is not valid JSON: {e}"),
            Self::NotAnObject => f.write_str("config file must hold one JSON object"),
            Self::TooLarge => write!(
                f,
                "config file is over {} KiB: is it the right file?",
                MAX_FILE_BYTES >> 10
            ),
            Self::Problems(problems) => {
                let list: Vec<String> = problems
                    .iter()
                    .map(|p| format!("{}: {}", p.key, p.message))
                    .collect();
                write!(f, "config: {}", list.join("; "))
            }
        }
    }
}

impl std::error::Error for ConfigFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read(e) => Some(e),
            Self::Syntax(e) => Some(e),
            _ => None,
        }
    }
}

/// The largest config file read: a connection's settings take a few KiB, and reading a file
/// of any size would let a mistaken path (a log, a disk image) take the machine's memory.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Reads and parses the config file at `path`.
pub fn load(path: &Path) -> Result<ConnectionConfig, ConfigFileError> {
    let file = std::fs::File::open(path).map_err(ConfigFileError::Read)?;
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(ConfigFileError::Read)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(ConfigFileError::TooLarge);
    }
    parse(&text)
}

/// Parses a config file's text: the preset's keys first, then the user's over them.
// Read by hand from a `serde_json::Value` rather than derived: serde's type errors give a
// line and column and stop at the first, and every problem here must name the key at fault.
pub fn parse(text: &str) -> Result<ConnectionConfig, ConfigFileError> {
    let value: Value = serde_json::from_str(text).map_err(ConfigFileError::Syntax)?;
    let Value::Object(user) = value else {
        return Err(ConfigFileError::NotAnObject);
    };
    let mut file = Keys {
        object: Map::new(),
        problems: Vec::new(),
    };
    for key in user.keys() {
        if !PRESETABLE_KEYS.contains(&key.as_str()) && !USER_KEYS.contains(&key.as_str()) {
            let message = match nearest_key(key) {
                Some(near) => format!("unknown key: did you mean \"{near}\"?"),
                None => format!(
                    "unknown key (known keys: {})",
                    [USER_KEYS, PRESETABLE_KEYS].concat().join(", ")
                ),
            };
            file.problem(key, message);
        }
    }
    let preset = file.apply_preset(&user);
    file.object.extend(user);

    let grant_type = file.choice("grant_type", GRANT_TYPES);
    if grant_type.is_none() && file.get("grant_type").is_none() {
        file.problem("grant_type", "required key is missing");
    }
    if let (Some((name, preset)), Some(grant)) = (preset, grant_type) {
        let grant = grant_name(grant);
        if !preset.grants.iter().any(|g| g == grant) {
            file.problem(
                "grant_type",
                format!(
                    "the {name} preset supports {}, not {grant}",
                    preset.grants.join(", ")
                ),
            );
        }
    }
    let config = ConnectionConfig {
        token_url: file.required("token_url"),
        authorization_url: file.string("authorization_url"),
        redirect_uri: file.string("redirect_uri"),
        client_id: file.required("client_id"),
        client_secret_name: file.string("client_secret"),
        username: file.string("username"),
        password_name: file.string("password"),
        header_prefix: file.string("header_prefix"),
        audience: file.string("audience"),
        resource_indicators: file.strings("resource"),
        scope: file.string("scope"),
        client_auth: file
            .choice("client_auth", CLIENT_AUTHS)
            .unwrap_or(ClientAuth::Auto),
        extra_params: file.pairs("extra_params"),
        authorization_params: file.pairs("authorization_params"),
        response_format: ResponseFormat {
            token_path: file.string("token_path").unwrap_or_default(),
            expires_in_unit: file
                .choice("expires_in_unit", TIME_UNITS)
                .unwrap_or(TimeUnit::Seconds),
            scope_separator: file
                .choice("scope_separator", SCOPE_SEPARATORS)
                .unwrap_or(ScopeSeparator::Space),
        },
        api_origins: file.strings("api_origins"),
        signing_key: file.signing_key(),
        assertion_audience: file.string("assertion_audience"),
        subject: file.string("subject"),
        device_authorization_url: file.string("device_authorization_url"),
        revocation_url: file.string("revocation_url"),
        issuer: file.string("issuer"),
        ..ConnectionConfig::new(grant_type.unwrap_or(GrantType::ClientCredentials), "", "")
    };
    if file.problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigFileError::Problems(file.problems))
    }
}

/// The known key closest to `key`, when one is close enough to be what was meant (`scop`,
/// `clientSecret`, `token-url`).
fn nearest_key(key: &str) -> Option<&'static str> {
    let normalized = key.to_ascii_lowercase().replace('-', "_");
    USER_KEYS
        .iter()
        .chain(PRESETABLE_KEYS)
        .map(|known| (strsim::jaro_winkler(&normalized, known), *known))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, known)| known)
}

/// The file's keys, read with typed access; `null` counts as absent. Each problem is recorded
/// and reading goes on, so one pass finds them all.
struct Keys {
    object: Map<String, Value>,
    problems: Vec<KeyProblem>,
}

impl Keys {
    fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(KeyProblem {
            key: key.to_owned(),
            message: message.into(),
        });
    }

    /// Puts the named preset's keys, filled in with `preset_values`, under the user's.
    fn apply_preset(
        &mut self,
        user: &Map<String, Value>,
    ) -> Option<(String, &'static presets::Preset)> {
        let name = match user.get("preset").filter(|v| !v.is_null()) {
            None => {
                if user.get("preset_values").is_some_and(|v| !v.is_null()) {
                    self.problem("preset_values", "is set but no preset is named");
                }
                return None;
            }
            Some(Value::String(name)) => name.clone(),
            Some(_) => {
                self.problem("preset", "must be a string");
                return None;
            }
        };
        let Some(preset) = presets::find(&name) else {
            let names: Vec<&str> = presets::all().keys().map(String::as_str).collect();
            self.problem(
                "preset",
                format!(
                    "\"{name}\" is not a preset (see oauth2-host presets): {}",
                    names.join(", ")
                ),
            );
            return None;
        };
        let values = match user.get("preset_values").filter(|v| !v.is_null()) {
            None => Map::new(),
            Some(Value::Object(values)) => values.clone(),
            Some(_) => {
                self.problem("preset_values", "must be an object of strings");
                return None;
            }
        };
        match preset.fill(&values) {
            Ok(keys) => self.object = keys,
            Err(problems) => {
                // The unfilled keys stand in, so only the placeholders are reported.
                self.object = preset.config.clone();
                for p in problems {
                    self.problem(&p.key, p.message);
                }
            }
        }
        Some((name, preset))
    }

    /// `private_key` (a secret's name) with `signing_alg` (default RS256) and `key_id`.
    fn signing_key(&mut self) -> Option<SigningKey> {
        let name = self.string("private_key");
        let algorithm = self.choice("signing_alg", SIGNING_ALGS);
        let key_id = self.string("key_id");
        if name.is_none() {
            for key in ["signing_alg", "key_id"] {
                if self.get(key).is_some() {
                    self.problem(key, "is set but private_key is not: name the key's secret");
                }
            }
        }
        Some(SigningKey {
            name: name?,
            algorithm: algorithm.unwrap_or(SigningAlgorithm::Rs256),
            key_id,
        })
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.object.get(key).filter(|v| !v.is_null())
    }

    fn string(&mut self, key: &str) -> Option<String> {
        match self.get(key) {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.problem(key, "must be a string");
                None
            }
        }
    }

    fn required(&mut self, key: &str) -> String {
        if self.get(key).is_none() {
            self.problem(key, "required key is missing");
        }
        self.string(key).unwrap_or_default()
    }

    /// A string or an array of strings.
    fn strings(&mut self, key: &str) -> Vec<String> {
        match self.get(key) {
            None => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Some(_) => {
                self.problem(key, "must be a string or an array of strings");
                Vec::new()
            }
        }
    }

    fn choice<T: Copy>(&mut self, key: &str, options: &[(&str, T)]) -> Option<T> {
        let value = self.string(key)?;
        let found = options.iter().find(|(name, _)| *name == value);
        if found.is_none() {
            let allowed: Vec<&str> = options.iter().map(|&(name, _)| name).collect();
            self.problem(
                key,
                format!("\"{value}\" is not one of {}", allowed.join(", ")),
            );
        }
        found.map(|&(_, choice)| choice)
    }

    fn pairs(&mut self, key: &str) -> Vec<Pair> {
        let members = match self.get(key) {
            None => return Vec::new(),
            Some(Value::Object(members)) => members.clone(),
            Some(_) => {
                self.problem(key, "must be an object of strings");
                return Vec::new();
            }
        };
        let mut pairs = Vec::new();
        for (name, value) in members {
            match value {
                Value::String(value) => pairs.push(Pair { name, value }),
                _ => self.problem(&format!("{key}.{name}"), "must be a string"),
            }
        }
        pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"{
        "grant_type": "authorization_code",
        "token_url": "https://auth.example.com/token",
        "authorization_url": "https://auth.example.com/authorize",
        "redirect_uri": "http://127.0.0.1:8976/callback",
        "client_id": "app",
        "client_secret": "app-secret",
        "username": "alice",
        "password": "alice-password",
        "header_prefix": "Token",
        "audience": "https://api.example.com",
        "resource": ["https://a.example.com/", "https://b.example.com/"],
        "scope": "read write",
        "client_auth": "basic_unencoded",
        "extra_params": {"max_age": "60"},
        "authorization_params": {"prompt": "consent"},
        "token_path": "authed_user",
        "expires_in_unit": "milliseconds",
        "scope_separator": "comma"
    }"#;

    fn pair(name: &str, value: &str) -> Pair {
        Pair {
            name: name.into(),
            value: value.into(),
        }
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn a_mistyped_key_is_answered_with_the_nearest_known_one() {
        for (typed, meant) in [
            ("scop", "scope"),
            ("token-url", "token_url"),
            ("redirect_url", "redirect_uri"),
            ("header_prefx", "header_prefix"),
        ] {
            assert_eq!(nearest_key(typed), Some(meant), "{typed}");
        }
        assert_eq!(nearest_key("zzz"), None);
        let line = error(r#"{"grant_type": "client_credentials", "zzz": 1}"#);
        assert!(
            line.contains("zzz: unknown key (known keys: preset, "),
            "{line}"
        );
    }

    #[test]
    fn every_key_maps_to_the_contract() {
        let config = parse(FULL).unwrap();
        assert_eq!(
            config,
            ConnectionConfig {
                authorization_url: Some("https://auth.example.com/authorize".into()),
                redirect_uri: Some("http://127.0.0.1:8976/callback".into()),
                client_secret_name: Some("app-secret".into()),
                username: Some("alice".into()),
                password_name: Some("alice-password".into()),
                header_prefix: Some("Token".into()),
                audience: Some("https://api.example.com".into()),
                resource_indicators: vec![
                    "https://a.example.com/".into(),
                    "https://b.example.com/".into()
                ],
                scope: Some("read write".into()),
                client_auth: ClientAuth::BasicUnencoded,
                extra_params: vec![pair("max_age", "60")],
                authorization_params: vec![pair("prompt", "consent")],
                response_format: ResponseFormat {
                    token_path: "authed_user".into(),
                    expires_in_unit: TimeUnit::Milliseconds,
                    scope_separator: ScopeSeparator::Comma,
                },
                ..ConnectionConfig::new(
                    GrantType::AuthorizationCode,
                    "https://auth.example.com/token",
                    "app"
                )
            }
        );
    }

    #[test]
    fn optional_keys_default() {
        let config = parse(
            r#"{"grant_type": "client_credentials", "token_url": "https://a/t",
                "client_id": "c", "scope": null, "resource": "https://api/"}"#,
        )
        .unwrap();
        assert_eq!(
            config,
            ConnectionConfig {
                resource_indicators: vec!["https://api/".into()],
                ..ConnectionConfig::new(GrantType::ClientCredentials, "https://a/t", "c")
            }
        );
        assert_eq!(config.client_auth, ClientAuth::Auto);
    }

    #[test]
    fn every_problem_is_named_at_once() {
        let text = r#"{"grant_type": "implicit", "token_url": 443, "clientSecret": "x",
                       "client_auth": "post", "extra_params": {"max_age": 60},
                       "authorization_params": ["a"], "resource": [1]}"#;
        let Err(ConfigFileError::Problems(problems)) = parse(text) else {
            panic!("problems expected")
        };
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "clientSecret",
                "grant_type",
                "token_url",
                "client_id",
                "resource",
                "client_auth",
                "extra_params.max_age",
                "authorization_params"
            ]
        );
        let line = error(text);
        assert!(
            line.starts_with("config: clientSecret: unknown key: did you mean \"client_secret\"?"),
            "{line}"
        );
        assert!(line.contains("grant_type: \"implicit\" is not one of client_credentials, password, authorization_code"), "{line}");
        assert!(line.contains("token_url: must be a string"), "{line}");
        assert!(
            line.contains("client_id: required key is missing"),
            "{line}"
        );
        assert!(
            line.contains(
                "client_auth: \"post\" is not one of auto, basic, basic_unencoded, request_body"
            ),
            "{line}"
        );
    }

    #[test]
    fn a_preset_fills_keys_the_user_can_override() {
        let config = parse(
            r#"{"preset": "microsoft-entra", "preset_values": {"tenant": "contoso.onmicrosoft.com"},
                "grant_type": "client_credentials", "client_id": "app", "client_secret": "s",
                "scope": "https://graph.microsoft.com/.default",
                "token_url": "https://login.microsoftonline.us/contoso.onmicrosoft.com/oauth2/v2.0/token"}"#,
        )
        .unwrap();
        assert_eq!(
            config.token_url,
            "https://login.microsoftonline.us/contoso.onmicrosoft.com/oauth2/v2.0/token",
            "the user's key wins"
        );
        assert_eq!(
            config.authorization_url.as_deref(),
            Some("https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize")
        );
        let preset = presets::find("microsoft-entra").unwrap();
        let expected = CLIENT_AUTHS
            .iter()
            .find(|(name, _)| Some(*name) == preset.config["client_auth"].as_str())
            .map(|&(_, auth)| auth);
        assert_eq!(Some(config.client_auth), expected);

        let slack = parse(
            r#"{"preset": "slack-user", "grant_type": "authorization_code", "client_id": "a"}"#,
        )
        .unwrap();
        assert_eq!(slack.response_format.token_path, "authed_user");
        assert_eq!(slack.response_format.scope_separator, ScopeSeparator::Comma);
    }

    #[test]
    fn preset_problems_are_named() {
        let Err(ConfigFileError::Problems(problems)) = parse(
            r#"{"preset": "microsoft-entra", "grant_type": "client_credentials", "client_id": "a"}"#,
        ) else {
            panic!("problems expected")
        };
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "preset_values.tenant");
        assert!(
            problems[0].message.starts_with("is required: "),
            "{problems:?}"
        );
        let line =
            error(r#"{"preset": "gitlab", "grant_type": "client_credentials", "client_id": "a"}"#);
        assert!(
            line.starts_with(
                "config: preset: \"gitlab\" is not a preset (see oauth2-host presets): "
            ),
            "{line}"
        );
        let line = error(r#"{"preset": "github", "grant_type": "password", "client_id": "a"}"#);
        assert_eq!(
            line,
            "config: grant_type: the github preset supports authorization_code, not password"
        );
        assert_eq!(
            error(
                r#"{"preset_values": {"tenant": "x"}, "grant_type": "password", "token_url": "https://a/t", "client_id": "a"}"#
            ),
            "config: preset_values: is set but no preset is named"
        );
    }

    #[test]
    fn non_objects_and_bad_json_are_refused() {
        assert!(matches!(parse("[]"), Err(ConfigFileError::NotAnObject)));
        assert!(matches!(parse("{"), Err(ConfigFileError::Syntax(_))));
    }
}

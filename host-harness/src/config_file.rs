//! Reads the user's JSON connection file into the contract's `ConnectionConfig`.

use std::fmt::{self, Display, Formatter};
use std::path::Path;

use serde_json::{Map, Value};

use crate::bindings::{ClientAuth, ConnectionConfig, GrantType, Pair};

const KEYS: &[&str] = &[
    "grant_type",
    "token_url",
    "authorization_url",
    "redirect_uri",
    "client_id",
    "client_secret",
    "username",
    "password",
    "header_prefix",
    "audience",
    "scope",
    "client_auth",
    "extra_params",
];

const GRANT_TYPES: &[(&str, GrantType)] = &[
    ("client_credentials", GrantType::ClientCredentials),
    ("password", GrantType::Password),
    ("authorization_code", GrantType::AuthorizationCode),
];

const CLIENT_AUTHS: &[(&str, ClientAuth)] = &[
    ("basic", ClientAuth::Basic),
    ("request_body", ClientAuth::RequestBody),
];

/// Why a config file is unusable.
#[derive(Debug)]
pub enum ConfigFileError {
    Read(std::io::Error),
    Syntax(serde_json::Error),
    NotAnObject,
    UnknownKey(String),
    MissingKey(&'static str),
    WrongType {
        key: String,
        expected: &'static str,
    },
    UnknownValue {
        key: &'static str,
        value: String,
        allowed: Vec<&'static str>,
    },
}

impl Display for ConfigFileError {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read(e) => write!(f, "cannot read the config file: {e}"),
            Self::Syntax(e) => write!(f, "config file is not valid JSON: {e}"),
            Self::NotAnObject => f.write_str("config file must hold one JSON object"),
            Self::UnknownKey(key) => write!(
                f,
                "config: unknown key \"{key}\" (known keys: {})",
                KEYS.join(", ")
            ),
            Self::MissingKey(key) => write!(f, "config: {key}: required key is missing"),
            Self::WrongType { key, expected } => write!(f, "config: {key}: must be {expected}"),
            Self::UnknownValue {
                key,
                value,
                allowed,
            } => write!(
                f,
                "config: {key}: \"{value}\" is not one of {}",
                allowed.join(", ")
            ),
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

/// Reads and parses the config file at `path`.
pub fn load(path: &Path) -> Result<ConnectionConfig, ConfigFileError> {
    let text = std::fs::read_to_string(path).map_err(ConfigFileError::Read)?;
    parse(&text)
}

/// Parses a config file's text.
// Read by hand from a `serde_json::Value` rather than derived: serde's type errors give a
// line and column, and every problem here must name the key at fault.
pub fn parse(text: &str) -> Result<ConnectionConfig, ConfigFileError> {
    let value: Value = serde_json::from_str(text).map_err(ConfigFileError::Syntax)?;
    let Value::Object(object) = value else {
        return Err(ConfigFileError::NotAnObject);
    };
    if let Some(unknown) = object.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(ConfigFileError::UnknownKey(unknown.clone()));
    }
    let file = Keys(&object);
    Ok(ConnectionConfig {
        grant_type: file
            .choice("grant_type", GRANT_TYPES)?
            .ok_or(ConfigFileError::MissingKey("grant_type"))?,
        token_url: file.required("token_url")?,
        authorization_url: file.string("authorization_url")?,
        redirect_uri: file.string("redirect_uri")?,
        client_id: file.required("client_id")?,
        client_secret_name: file.string("client_secret")?,
        username: file.string("username")?,
        password_name: file.string("password")?,
        header_prefix: file.string("header_prefix")?,
        audience: file.string("audience")?,
        scope: file.string("scope")?,
        client_auth: file
            .choice("client_auth", CLIENT_AUTHS)?
            .unwrap_or(ClientAuth::Basic),
        extra_params: file.pairs("extra_params")?,
    })
}

/// Typed access to the keys of the file's object; `null` counts as absent.
struct Keys<'a>(&'a Map<String, Value>);

impl Keys<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    fn string(&self, key: &'static str) -> Result<Option<String>, ConfigFileError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ConfigFileError::WrongType {
                key: key.into(),
                expected: "a string",
            }),
        }
    }

    fn required(&self, key: &'static str) -> Result<String, ConfigFileError> {
        self.string(key)?.ok_or(ConfigFileError::MissingKey(key))
    }

    fn choice<T: Copy>(
        &self,
        key: &'static str,
        options: &[(&'static str, T)],
    ) -> Result<Option<T>, ConfigFileError> {
        let Some(value) = self.string(key)? else {
            return Ok(None);
        };
        options
            .iter()
            .find(|(name, _)| *name == value)
            .map(|&(_, choice)| Some(choice))
            .ok_or_else(|| ConfigFileError::UnknownValue {
                key,
                value,
                allowed: options.iter().map(|&(name, _)| name).collect(),
            })
    }

    fn pairs(&self, key: &'static str) -> Result<Vec<Pair>, ConfigFileError> {
        let Some(value) = self.get(key) else {
            return Ok(Vec::new());
        };
        let Value::Object(members) = value else {
            return Err(ConfigFileError::WrongType {
                key: key.into(),
                expected: "an object of strings",
            });
        };
        members
            .iter()
            .map(|(name, value)| match value {
                Value::String(value) => Ok(Pair {
                    name: name.clone(),
                    value: value.clone(),
                }),
                _ => Err(ConfigFileError::WrongType {
                    key: format!("{key}.{name}"),
                    expected: "a string",
                }),
            })
            .collect()
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
        "scope": "read write",
        "client_auth": "request_body",
        "extra_params": {"resource": "https://api.example.com", "prompt": "consent"}
    }"#;

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn every_key_maps_to_the_contract() {
        let config = parse(FULL).unwrap();
        assert_eq!(
            config,
            ConnectionConfig {
                grant_type: GrantType::AuthorizationCode,
                token_url: "https://auth.example.com/token".into(),
                authorization_url: Some("https://auth.example.com/authorize".into()),
                redirect_uri: Some("http://127.0.0.1:8976/callback".into()),
                client_id: "app".into(),
                client_secret_name: Some("app-secret".into()),
                username: Some("alice".into()),
                password_name: Some("alice-password".into()),
                header_prefix: Some("Token".into()),
                audience: Some("https://api.example.com".into()),
                scope: Some("read write".into()),
                client_auth: ClientAuth::RequestBody,
                extra_params: vec![
                    Pair {
                        name: "prompt".into(),
                        value: "consent".into()
                    },
                    Pair {
                        name: "resource".into(),
                        value: "https://api.example.com".into()
                    },
                ],
            }
        );
    }

    #[test]
    fn optional_keys_default() {
        let config = parse(
            r#"{"grant_type": "client_credentials", "token_url": "https://a/t",
                "client_id": "c", "scope": null}"#,
        )
        .unwrap();
        assert_eq!(config.grant_type, GrantType::ClientCredentials);
        assert_eq!(config.client_auth, ClientAuth::Basic);
        assert_eq!(config.scope, None);
        assert_eq!(config.client_secret_name, None);
        assert!(config.extra_params.is_empty());
    }

    #[test]
    fn unknown_keys_are_named() {
        let text = r#"{"grant_type": "password", "token_url": "https://a/t", "client_id": "c",
                       "clientSecret": "x"}"#;
        assert!(matches!(parse(text), Err(ConfigFileError::UnknownKey(k)) if k == "clientSecret"));
        assert!(error(text).starts_with("config: unknown key \"clientSecret\""));
    }

    #[test]
    fn missing_required_keys_are_named() {
        for key in ["grant_type", "token_url", "client_id"] {
            let mut object: Map<String, Value> = serde_json::from_str(
                r#"{"grant_type": "password", "token_url": "https://a/t", "client_id": "c"}"#,
            )
            .unwrap();
            object.remove(key);
            let text = Value::Object(object).to_string();
            assert_eq!(
                error(&text),
                format!("config: {key}: required key is missing")
            );
        }
    }

    #[test]
    fn wrong_types_are_named() {
        assert_eq!(
            error(r#"{"grant_type": "password", "token_url": 443, "client_id": "c"}"#),
            "config: token_url: must be a string"
        );
        assert_eq!(
            error(
                r#"{"grant_type": "password", "token_url": "https://a/t", "client_id": "c",
                    "extra_params": ["a"]}"#
            ),
            "config: extra_params: must be an object of strings"
        );
        assert_eq!(
            error(
                r#"{"grant_type": "password", "token_url": "https://a/t", "client_id": "c",
                    "extra_params": {"max_age": 60}}"#
            ),
            "config: extra_params.max_age: must be a string"
        );
    }

    #[test]
    fn unknown_choices_list_the_allowed_ones() {
        assert_eq!(
            error(r#"{"grant_type": "implicit", "token_url": "https://a/t", "client_id": "c"}"#),
            "config: grant_type: \"implicit\" is not one of \
             client_credentials, password, authorization_code"
        );
        assert_eq!(
            error(
                r#"{"grant_type": "password", "token_url": "https://a/t", "client_id": "c",
                    "client_auth": "post"}"#
            ),
            "config: client_auth: \"post\" is not one of basic, request_body"
        );
    }

    #[test]
    fn non_objects_and_bad_json_are_refused() {
        assert!(matches!(parse("[]"), Err(ConfigFileError::NotAnObject)));
        assert!(matches!(parse("{"), Err(ConfigFileError::Syntax(_))));
    }
}

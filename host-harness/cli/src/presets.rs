//! Provider presets: the endpoints and quirk options of well-known providers, kept as data in
//! `presets.json` and filled in with the user's placeholder values.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::{Map, Value};

/// One provider's preset, as `presets.json` holds it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    pub title: String,
    /// The provider's documentation the entry was taken from.
    pub docs: String,
    /// The grants the provider offers with this setup (`authorization_code`, ...).
    pub grants: Vec<String>,
    /// The `{name}` placeholders the config strings use.
    pub placeholders: BTreeMap<String, Placeholder>,
    /// Config keys, with the same names and types as the user's config file.
    pub config: Map<String, Value>,
    pub notes: String,
}

/// A value the user supplies under `preset_values`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placeholder {
    pub description: String,
    pub example: String,
    /// Used when the user gives no value.
    #[serde(default)]
    pub default: Option<String>,
}

/// Every preset by name, sorted.
pub fn all() -> &'static BTreeMap<String, Preset> {
    static PRESETS: OnceLock<BTreeMap<String, Preset>> = OnceLock::new();
    PRESETS.get_or_init(|| {
        serde_json::from_str(include_str!("../presets.json"))
            .expect("presets.json is checked by the presets tests")
    })
}

pub fn find(name: &str) -> Option<&'static Preset> {
    all().get(name)
}

/// Why a preset could not be filled in: the key at fault and what to do.
#[derive(Debug, PartialEq, Eq)]
pub struct FillProblem {
    pub key: String,
    pub message: String,
}

impl Preset {
    /// The preset's config keys with every placeholder replaced by the user's value, or its
    /// default. A value may hold only letters, digits and `.-_~:`, so it cannot turn a host into
    /// another URL (`evil.example/x?`) or add a path.
    pub fn fill(
        &self,
        values: &Map<String, Value>,
    ) -> Result<Map<String, Value>, Vec<FillProblem>> {
        let mut problems = Vec::new();
        for name in values
            .keys()
            .filter(|n| !self.placeholders.contains_key(*n))
        {
            problems.push(FillProblem {
                key: format!("preset_values.{name}"),
                message: format!(
                    "is not a placeholder of this preset ({})",
                    self.placeholder_list()
                ),
            });
        }
        let mut filled = BTreeMap::new();
        for (name, placeholder) in &self.placeholders {
            let key = format!("preset_values.{name}");
            let value = match values.get(name) {
                Some(Value::String(v)) => Some(v.as_str()),
                Some(_) => {
                    problems.push(FillProblem {
                        key,
                        message: "must be a string".into(),
                    });
                    continue;
                }
                None => placeholder.default.as_deref(),
            };
            match value {
                None => problems.push(FillProblem {
                    key,
                    message: format!(
                        "is required: {}, such as {}",
                        placeholder.description, placeholder.example
                    ),
                }),
                Some(v) if !is_safe_value(v) => problems.push(FillProblem {
                    key,
                    message: "may hold only letters, digits and . - _ ~ :, and no \".\" or \"..\""
                        .into(),
                }),
                Some(v) => {
                    filled.insert(format!("{{{name}}}"), v.to_owned());
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(self
            .config
            .iter()
            .map(|(key, value)| (key.clone(), substitute(value, &filled)))
            .collect())
    }

    fn placeholder_list(&self) -> String {
        if self.placeholders.is_empty() {
            return "it has none".into();
        }
        let names: Vec<&str> = self.placeholders.keys().map(String::as_str).collect();
        names.join(", ")
    }
}

/// A value that cannot take a preset's URL elsewhere: no `/`, `?`, `#`, `@` or `%`, and no dot
/// segment (`.`, `..`) that would move it up the provider's paths.
fn is_safe_value(value: &str) -> bool {
    !value.is_empty()
        && value != "."
        && !value.contains("..")
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_~:".contains(c))
}

fn substitute(value: &Value, filled: &BTreeMap<String, String>) -> Value {
    match value {
        Value::String(s) => Value::String(
            filled
                .iter()
                .fold(s.clone(), |s, (from, to)| s.replace(from, to)),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| substitute(v, filled)).collect()),
        Value::Object(members) => Value::Object(
            members
                .iter()
                .map(|(k, v)| (k.clone(), substitute(v, filled)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_file::PRESETABLE_KEYS;

    /// Every `{name}` in the preset's strings.
    fn used_placeholders(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::String(s) => {
                let mut rest = s.as_str();
                while let Some(start) = rest.find('{') {
                    let end = rest[start..].find('}').expect("a closed placeholder") + start;
                    out.push(rest[start + 1..end].to_owned());
                    rest = &rest[end + 1..];
                }
            }
            Value::Array(items) => items.iter().for_each(|v| used_placeholders(v, out)),
            Value::Object(members) => members.values().for_each(|v| used_placeholders(v, out)),
            _ => {}
        }
    }

    #[test]
    fn the_file_is_complete_and_consistent() {
        let presets = all();
        for required in [
            "github",
            "google",
            "microsoft-entra",
            "auth0",
            "okta",
            "slack",
            "salesforce",
            "atlassian",
            "hubspot",
            "zoom",
            "dropbox",
            "keycloak",
        ] {
            assert!(presets.contains_key(required), "no preset {required}");
        }
        for (name, preset) in presets {
            assert!(preset.docs.starts_with("https://"), "{name}: docs");
            assert!(!preset.grants.is_empty(), "{name}: grants");
            for key in preset.config.keys() {
                assert!(PRESETABLE_KEYS.contains(&key.as_str()), "{name}: key {key}");
            }
            let mut used = Vec::new();
            used_placeholders(&Value::Object(preset.config.clone()), &mut used);
            used.sort();
            used.dedup();
            let declared: Vec<String> = preset.placeholders.keys().cloned().collect();
            assert_eq!(used, declared, "{name}: placeholders used and declared");
            for (placeholder, p) in &preset.placeholders {
                assert!(is_safe_value(&p.example), "{name}.{placeholder}: example");
            }
        }
    }

    #[test]
    fn placeholders_are_filled_checked_and_defaulted() {
        let okta = find("okta").expect("okta preset");
        let values: Map<String, Value> =
            serde_json::from_str(r#"{"okta_domain": "dev-1.okta.com"}"#).unwrap();
        let filled = okta.fill(&values).unwrap();
        assert_eq!(
            filled["token_url"],
            "https://dev-1.okta.com/oauth2/default/v1/token"
        );

        let problems = okta.fill(&Map::new()).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "preset_values.okta_domain");
        assert!(
            problems[0].message.contains("dev-123456.okta.com"),
            "{problems:?}"
        );

        let hostile: Map<String, Value> = serde_json::from_str(
            r#"{"okta_domain": "evil.example/x?", "tenant": "t", "authorization_server_id": 1}"#,
        )
        .unwrap();
        let keys: Vec<String> = okta
            .fill(&hostile)
            .unwrap_err()
            .into_iter()
            .map(|p| p.key)
            .collect();
        assert_eq!(
            keys,
            [
                "preset_values.tenant",
                "preset_values.authorization_server_id",
                "preset_values.okta_domain"
            ]
        );

        // A dot segment would move the token URL up the provider's own paths.
        for value in ["..", ".", "a..b"] {
            let values: Map<String, Value> = serde_json::from_value(serde_json::json!({
                "okta_domain": "dev-1.okta.com",
                "authorization_server_id": value,
            }))
            .unwrap();
            let problems = okta.fill(&values).unwrap_err();
            assert_eq!(problems.len(), 1, "{value}");
            assert_eq!(problems[0].key, "preset_values.authorization_server_id");
        }
    }
}

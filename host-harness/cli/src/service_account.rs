//! Google service account key files (the JSON Google Cloud Console downloads), read into a
//! JWT bearer connection and the private key it names.

use oauth2_plugin::secret::Password;
use serde::Deserialize;
use serde_json::{Value, json};

/// The token endpoint the preset and Google's key files name.
const GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";

/// What a connection needs of a key file. The private key is held in a redacting type, so a
/// `Debug` of this never shows it.
#[derive(Debug)]
pub struct ServiceAccountKey {
    pub client_email: String,
    pub private_key_id: Option<String>,
    pub private_key: Password,
    pub token_uri: String,
}

#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: Option<String>,
    private_key_id: Option<String>,
    private_key: Option<String>,
    token_uri: Option<String>,
}

/// Reads a key file's text. Messages name the missing field, never a value.
pub fn read(text: &str) -> Result<ServiceAccountKey, String> {
    let file: KeyFile = serde_json::from_str(text).map_err(|e| {
        format!(
            "is not a service account key file (JSON): {}",
            e.classify_message()
        )
    })?;
    if file.kind.as_deref() != Some("service_account") {
        return Err(
            "is not a service account key: its \"type\" is not \"service_account\"".to_owned(),
        );
    }
    let missing = |field: &str| format!("has no \"{field}\": download the key file again");
    let client_email = file.client_email.ok_or_else(|| missing("client_email"))?;
    let private_key = file.private_key.ok_or_else(|| missing("private_key"))?;
    if !private_key.contains("PRIVATE KEY-----") {
        return Err("its \"private_key\" is not a PEM private key".to_owned());
    }
    let token_uri = file
        .token_uri
        .unwrap_or_else(|| GOOGLE_TOKEN_URL.to_owned());
    if !token_uri.starts_with("https://") {
        return Err("its \"token_uri\" is not an https URL".to_owned());
    }
    Ok(ServiceAccountKey {
        client_email,
        private_key_id: file.private_key_id,
        private_key: Password::new(private_key),
        token_uri,
    })
}

impl ServiceAccountKey {
    /// The connection file for this account, its key stored under `secret_name`.
    pub fn connection(&self, secret_name: &str, scope: &str, subject: Option<&str>) -> Value {
        let mut config = json!({
            "preset": "google-service-account",
            "grant_type": "jwt_bearer",
            "client_id": self.client_email,
            "private_key": secret_name,
            "scope": scope,
        });
        if let Some(key_id) = &self.private_key_id {
            config["key_id"] = key_id.as_str().into();
        }
        if let Some(subject) = subject {
            config["subject"] = subject.into();
        }
        if self.token_uri != GOOGLE_TOKEN_URL {
            config["token_url"] = self.token_uri.as_str().into();
        }
        config
    }
}

/// serde_json's error without the input it quotes, which may hold the key.
trait ClassifyMessage {
    fn classify_message(&self) -> String;
}

impl ClassifyMessage for serde_json::Error {
    fn classify_message(&self) -> String {
        format!(
            "{:?} error at line {} column {}",
            self.classify(),
            self.line(),
            self.column()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIIsentinel\n-----END PRIVATE KEY-----\n";

    fn file(extra: &str) -> String {
        format!(
            r#"{{"type":"service_account","project_id":"p","private_key_id":"abc123","private_key":{},"client_email":"svc@p.iam.gserviceaccount.com","token_uri":"https://oauth2.googleapis.com/token"{extra}}}"#,
            serde_json::to_string(PEM).unwrap()
        )
    }

    #[test]
    fn a_key_file_becomes_a_jwt_bearer_connection() {
        let key = read(&file("")).unwrap();
        assert!(!format!("{key:?}").contains("sentinel"), "{key:?}");
        let config = key.connection(
            "svc-key",
            "https://www.googleapis.com/auth/drive",
            Some("u@example.com"),
        );
        assert_eq!(
            config,
            json!({
                "preset": "google-service-account",
                "grant_type": "jwt_bearer",
                "client_id": "svc@p.iam.gserviceaccount.com",
                "private_key": "svc-key",
                "key_id": "abc123",
                "scope": "https://www.googleapis.com/auth/drive",
                "subject": "u@example.com",
            })
        );
        assert_eq!(key.private_key.secret(), PEM);
    }

    #[test]
    fn refusals_name_the_field_and_never_the_key() {
        for (text, wanted) in [
            (
                file("").replace("service_account", "authorized_user"),
                "type",
            ),
            (
                file("").replace("client_email", "client_mail"),
                "client_email",
            ),
            (
                file("").replace("PRIVATE KEY-----", "KEY-----"),
                "private_key",
            ),
            ("{\"private_key\": \"MIIsentinel".to_owned(), "JSON"),
        ] {
            let message = read(&text).unwrap_err();
            assert!(message.contains(wanted), "{message}");
            assert!(!message.contains("sentinel"), "{message}");
        }
    }
}

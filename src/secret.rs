//! Values that grant access, each its own type whose `Debug` never shows the value: a struct
//! holding one derives `Debug` and prints nothing secret, however it is printed.

use crate::prelude::*;

use core::fmt;

use serde::Serialize;

macro_rules! secret_types {
    ($($(#[$doc:meta])* $name:ident;)*) => {
        $(
            $(#[$doc])*
            #[derive(Clone, PartialEq, Eq, Serialize)]
            #[serde(transparent)]
            pub struct $name(String);

            impl $name {
                pub fn new(value: impl Into<String>) -> Self {
                    Self(value.into())
                }

                /// The value itself: for the request or header it goes into, never for a message.
                pub fn secret(&self) -> &str {
                    &self.0
                }

                pub fn into_secret(self) -> String {
                    self.0
                }
            }

            impl fmt::Debug for $name {
                fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str(concat!(stringify!($name), "(<redacted>)"))
                }
            }

            impl From<String> for $name {
                fn from(value: String) -> Self {
                    Self(value)
                }
            }

            impl From<&str> for $name {
                fn from(value: &str) -> Self {
                    Self(value.to_owned())
                }
            }

            impl PartialEq<str> for $name {
                fn eq(&self, other: &str) -> bool {
                    self.0 == other
                }
            }

            impl PartialEq<&str> for $name {
                fn eq(&self, other: &&str) -> bool {
                    self.0 == *other
                }
            }
        )*
    };
}

secret_types! {
    /// The client secret the provider issued.
    ClientSecret;
    /// The resource owner's password (password grant).
    Password;
    /// An access token: what goes in the `Authorization` header.
    AccessToken;
    /// A refresh token (RFC 6749 §6).
    RefreshToken;
    /// An OpenID Connect ID token.
    IdToken;
    /// A PKCE code verifier (RFC 7636).
    PkceVerifier;
    /// The `state` of an authorization request, which binds the redirect to it.
    State;
    /// An authorization code from the redirect, single-use.
    AuthorizationCode;
    /// An RFC 8628 device code: whoever holds it can collect the user's token.
    DeviceCode;
    /// A signed JWT: a client assertion or a JWT bearer grant, a credential until it expires.
    Assertion;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Holder {
        token: AccessToken,
        refresh: Option<RefreshToken>,
        code: AuthorizationCode,
    }

    #[test]
    fn debug_never_shows_the_value_however_it_is_printed() {
        let holder = Holder {
            token: AccessToken::new("at-sentinel"),
            refresh: Some(RefreshToken::new("rt-sentinel")),
            code: AuthorizationCode::new("code-sentinel"),
        };
        for shown in [format!("{holder:?}"), format!("{holder:#?}")] {
            assert!(!shown.contains("sentinel"), "{shown}");
            assert!(shown.contains("AccessToken(<redacted>)"), "{shown}");
        }
        assert_eq!(holder.token.secret(), "at-sentinel");
        assert_eq!(holder.token, "at-sentinel");
        assert_eq!(
            holder.refresh.map(RefreshToken::into_secret).as_deref(),
            Some("rt-sentinel")
        );
        assert_eq!(holder.code, "code-sentinel");
    }

    #[test]
    fn serialized_as_the_bare_value() {
        let token = RefreshToken::new("rt");
        assert_eq!(serde_json::to_string(&token).unwrap(), "\"rt\"");
    }
}

//! HTTP messages as the host passes them around: the contract's records, with a `Debug` that
//! shows no credential. (The generated records print every header value and body byte, and a
//! request carries `Authorization` and a token request a secret.)

use std::fmt;

use crate::bindings::{self as wit, Pair};

/// An HTTP request, whole. `Debug` shows header names and the body's length only.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// Method, such as `GET` or `POST`.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Headers in order; a name may repeat.
    pub headers: Vec<Pair>,
    /// Body bytes; empty for none.
    pub body: Vec<u8>,
}

/// An HTTP response, whole. `Debug` shows the status, header names and the body's length only.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    /// Headers in order; a name may repeat.
    pub headers: Vec<Pair>,
    /// Body bytes, as received.
    pub body: Vec<u8>,
}

/// Headers to set on a request, each replacing every header of its name: what the component's
/// `authorization-headers` returns. `Debug` shows the names only (the values are credentials).
#[derive(Clone, PartialEq, Eq)]
pub struct Headers(pub Vec<Pair>);

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Headers").field(&names(&self.0)).finish()
    }
}

fn names(headers: &[Pair]) -> Vec<&str> {
    headers.iter().map(|h| h.name.as_str()).collect()
}

impl HttpRequest {
    /// Sets each of `headers`, replacing every header of its name in any case: how the
    /// component's `authorization-headers` apply.
    pub fn set_headers(&mut self, headers: Headers) {
        for header in headers.0 {
            self.headers
                .retain(|p| !p.name.eq_ignore_ascii_case(&header.name));
            self.headers.push(header);
        }
    }
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("header_names", &names(&self.headers))
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("header_names", &names(&self.headers))
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl From<wit::HttpRequest> for HttpRequest {
    fn from(r: wit::HttpRequest) -> Self {
        HttpRequest {
            method: r.method,
            url: r.url,
            headers: r.headers,
            body: r.body,
        }
    }
}

impl From<HttpRequest> for wit::HttpRequest {
    fn from(r: HttpRequest) -> Self {
        wit::HttpRequest {
            method: r.method,
            url: r.url,
            headers: r.headers,
            body: r.body,
        }
    }
}

impl From<wit::HttpResponse> for HttpResponse {
    fn from(r: wit::HttpResponse) -> Self {
        HttpResponse {
            status: r.status,
            headers: r.headers,
            body: r.body,
        }
    }
}

impl From<HttpResponse> for wit::HttpResponse {
    fn from(r: HttpResponse) -> Self {
        wit::HttpResponse {
            status: r.status,
            headers: r.headers,
            body: r.body,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_headers_replaces_every_header_of_each_name_in_any_case() {
        let pair = |name: &str, value: &str| Pair {
            name: name.into(),
            value: value.into(),
        };
        let mut request = HttpRequest {
            method: "GET".into(),
            url: "https://api.example.com/".into(),
            headers: vec![
                pair("authorization", "stale"),
                pair("Accept", "*/*"),
                pair("AUTHORIZATION", "staler"),
            ],
            body: vec![],
        };
        request.set_headers(Headers(vec![pair("Authorization", "Bearer t")]));
        assert_eq!(
            request.headers,
            [pair("Accept", "*/*"), pair("Authorization", "Bearer t")]
        );
    }

    #[test]
    fn debug_shows_no_header_value_or_body() {
        let request = HttpRequest {
            method: "POST".into(),
            url: "https://idp.example.com/token".into(),
            headers: vec![Pair {
                name: "Authorization".into(),
                value: "Basic c2VjcmV0".into(),
            }],
            body: b"client_secret=s3cret".to_vec(),
        };
        let response = HttpResponse {
            status: 200,
            headers: vec![],
            body: br#"{"access_token":"at-s3cret"}"#.to_vec(),
        };
        let headers = Headers(request.headers.clone());
        for shown in [
            format!("{request:?}"),
            format!("{response:#?}"),
            format!("{headers:?}"),
        ] {
            assert!(
                !shown.contains("c2VjcmV0") && !shown.contains("s3cret"),
                "{shown}"
            );
        }
        assert!(format!("{request:?}").contains("Authorization"));
    }
}

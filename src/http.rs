//! HTTP requests and responses as plain data, the shape the host's `http` import exchanges.

use crate::prelude::*;

/// An HTTP request, whole.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// An HTTP response, whole.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The first value of a header, matched case-insensitively (RFC 9110 §5.1).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Headers to set on a request, each replacing every header of its name: what decorating a
/// request adds.
#[derive(Clone, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl HttpRequest {
    /// Sets each of `headers`, replacing every header of its name (any case).
    pub fn set_headers(&mut self, headers: Headers) {
        for (name, value) in headers.0 {
            self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
            self.headers.push((name, value));
        }
    }
}

// Decorations carry the access token: only their names are printed.
impl core::fmt::Debug for Headers {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_tuple("Headers").field(&names).finish()
    }
}

// Requests carry `Authorization` headers and form bodies with secrets: only their shape is printed.
impl core::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("header_names", &names)
            .field("body_len", &self.body.len())
            .finish()
    }
}

// A token response body holds tokens: only its shape is printed.
impl core::fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("header_names", &names)
            .field("body_len", &self.body.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lookup_ignores_case_and_set_headers_replaces_all() {
        let mut req = HttpRequest {
            method: "GET".into(),
            url: "https://api.example.com/".into(),
            headers: vec![
                ("authorization".into(), "old".into()),
                ("AUTHORIZATION".into(), "older".into()),
                ("Accept".into(), "*/*".into()),
            ],
            body: vec![],
        };
        assert_eq!(header(&req.headers, "ACCEPT"), Some("*/*"));
        req.set_headers(Headers(vec![("Authorization".into(), "Bearer t".into())]));
        let auth: Vec<_> = req
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("authorization"))
            .collect();
        assert_eq!(auth, [&("Authorization".to_owned(), "Bearer t".to_owned())]);
    }

    #[test]
    fn debug_shows_no_header_values_or_body() {
        let req = HttpRequest {
            method: "POST".into(),
            url: "https://idp.example.com/token".into(),
            headers: vec![("Authorization".into(), "Basic c2VjcmV0".into())],
            body: b"client_secret=hunter2".to_vec(),
        };
        let shown = format!("{req:?}");
        assert!(
            !shown.contains("c2VjcmV0") && !shown.contains("hunter2"),
            "{shown}"
        );
        assert!(shown.contains("Authorization"));
        let headers = Headers(vec![("Authorization".into(), "Bearer at-secret".into())]);
        let shown = format!("{headers:?}");
        assert!(!shown.contains("at-secret"), "{shown}");
        assert!(shown.contains("Authorization"));
    }
}

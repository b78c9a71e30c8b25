//! Provider text made fit to show: stripped of the secrets the request carried, its control
//! characters escaped, and bounded.

use crate::prelude::*;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

use crate::http::{HttpRequest, header};

/// What replaces a secret value in provider text.
pub const REDACTED: &str = "<redacted>";

/// Characters of provider text kept in a message; a hostile provider could send megabytes.
const SHOWN_CHARS: usize = 1_000;

/// Bytes of one piece of provider text that are searched for secrets. More than ever reaches
/// the message (each secret found shrinks to [`REDACTED`], each escape grows), and small enough
/// that the decoded views stay cheap on a 1 MiB body.
const SEARCHED_BYTES: usize = 16 * 1024;

/// Form parameters of a token request that carry a credential.
const SECRET_PARAMS: &[&str] = &[
    "client_secret",
    "password",
    "refresh_token",
    "code",
    "code_verifier",
    "client_assertion",
    "assertion",
    "device_code",
    // RFC 7009: the token being revoked.
    "token",
];

/// The secret values a request carried, each in the encodings a provider might echo it in.
/// `Debug` shows only how many there are.
#[derive(Clone, Default)]
pub struct Redactor {
    needles: Vec<Vec<u8>>,
}

impl core::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Redactor")
            .field("needles", &self.needles.len())
            .finish()
    }
}

impl Redactor {
    /// Removes nothing; still escapes and bounds.
    pub fn none() -> Self {
        Self::default()
    }

    /// Every secret `request` carried: the credential parameters of its form body, and the
    /// credentials of its `Authorization` header as sent (the base64 of Basic's pair; the
    /// secret inside it is the configured client secret, which the lifecycle adds itself).
    pub fn for_request(request: &HttpRequest) -> Self {
        let mut redactor = Self::default();
        for (name, value) in form_urlencoded::parse(&request.body) {
            if SECRET_PARAMS.contains(&name.as_ref()) {
                redactor.add_secret(&value);
            }
        }
        if let Some(authorization) = header(&request.headers, "authorization") {
            let credentials = authorization
                .trim()
                .split_once(' ')
                .map_or(authorization, |(_, credentials)| credentials);
            redactor.add_secret(credentials.trim());
        }
        redactor
    }

    /// Adds a secret value: as it is, JSON-escaped, and base64-encoded. Percent- and
    /// form-encoded copies are found by [`Redactor::redact`] decoding the text it searches.
    pub fn add_secret(&mut self, value: &str) {
        if value.is_empty() {
            return;
        }
        let json = serde_json::to_string(value).unwrap_or_default();
        let json = json
            .strip_prefix('"')
            .and_then(|j| j.strip_suffix('"'))
            .unwrap_or(value);
        for needle in [
            value.as_bytes().to_vec(),
            json.as_bytes().to_vec(),
            STANDARD_NO_PAD.encode(value).into_bytes(),
            URL_SAFE_NO_PAD.encode(value).into_bytes(),
        ] {
            if !self.needles.contains(&needle) {
                self.needles.push(needle);
            }
        }
    }

    /// `text` with every secret removed, its control characters escaped, and cut to a length
    /// a person reads.
    pub fn clean(&self, text: &str) -> String {
        bounded(&escape_controls(&self.redact(text)))
    }

    /// An OAuth error code, cleaned like any provider text unless it is one of the codes the
    /// hint table knows: those are the protocol's words, kept whole even when a short secret
    /// happens to be part of them.
    pub fn clean_code(&self, code: &str) -> String {
        if crate::hints::is_known_code(code) {
            code.to_owned()
        } else {
            self.clean(code)
        }
    }

    /// `text` with every occurrence of a secret replaced by [`REDACTED`]: found as it is, and
    /// in the text percent-decoded and form-decoded (once and twice), so any encoding of it
    /// the text uses is found too. Only the start of a long text is searched, and what it
    /// ends with is removed when it is the start of a secret the cut went through.
    pub fn redact(&self, text: &str) -> String {
        let (searched, cut) = match text.char_indices().find(|(i, _)| *i >= SEARCHED_BYTES) {
            Some((end, _)) => (&text[..end], true),
            None => (text, false),
        };
        if self.needles.is_empty() {
            return searched.to_owned();
        }
        let mut hidden = Hidden(vec![false; searched.len()]);
        let raw = View::raw(searched);
        let mut views = vec![];
        for plus_is_space in [false, true] {
            if let Some(once) = raw.decoded(plus_is_space) {
                if let Some(twice) = once.decoded(plus_is_space) {
                    views.push(twice);
                }
                views.push(once);
            }
        }
        views.push(raw);
        for view in &views {
            for needle in &self.needles {
                view.find(needle, &mut hidden);
                if cut {
                    view.find_cut_prefix(needle, &mut hidden);
                }
            }
        }
        hidden.replace_in(searched)
    }
}

/// Which bytes of a text are part of a secret.
struct Hidden(Vec<bool>);

impl Hidden {
    fn mark(&mut self, (start, end): (usize, usize)) {
        self.0[start..end].fill(true);
    }

    /// `text` with each run of hidden bytes (widened to whole characters) replaced by
    /// [`REDACTED`].
    fn replace_in(mut self, text: &str) -> String {
        // A run that ends inside a character takes the whole character.
        for i in 1..text.len() {
            if self.0[i - 1] && !text.is_char_boundary(i) {
                self.0[i] = true;
            }
        }
        for i in (0..text.len().saturating_sub(1)).rev() {
            if self.0[i + 1] && !text.is_char_boundary(i + 1) {
                self.0[i] = true;
            }
        }
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        let mut i = 0;
        while i < text.len() {
            if !self.0[i] {
                i += 1;
                continue;
            }
            out.push_str(&text[copied..i]);
            out.push_str(REDACTED);
            while i < text.len() && self.0[i] {
                i += 1;
            }
            copied = i;
        }
        out.push_str(&text[copied..]);
        out
    }
}

/// Text as bytes, each with the span of the original text it was decoded from.
struct View {
    bytes: Vec<u8>,
    spans: Vec<(u32, u32)>,
}

impl View {
    fn raw(text: &str) -> View {
        // `SEARCHED_BYTES` keeps offsets far below `u32::MAX`.
        View {
            bytes: text.as_bytes().to_vec(),
            spans: (0..text.len() as u32).map(|i| (i, i + 1)).collect(),
        }
    }

    /// The view percent-decoded (and `+` read as a space with `plus_is_space`); none when
    /// decoding would change nothing.
    fn decoded(&self, plus_is_space: bool) -> Option<View> {
        let changes = self
            .bytes
            .iter()
            .any(|&b| b == b'%' || (plus_is_space && b == b'+'));
        if !changes {
            return None;
        }
        let mut out = View {
            bytes: Vec::with_capacity(self.bytes.len()),
            spans: Vec::with_capacity(self.bytes.len()),
        };
        let mut i = 0;
        while i < self.bytes.len() {
            let byte = self.bytes[i];
            let escaped = (byte == b'%')
                .then(|| {
                    Some((
                        hex_digit(*self.bytes.get(i + 1)?)?,
                        hex_digit(*self.bytes.get(i + 2)?)?,
                    ))
                })
                .flatten();
            if let Some((high, low)) = escaped {
                out.bytes.push(high << 4 | low);
                out.spans.push((self.spans[i].0, self.spans[i + 2].1));
                i += 3;
            } else {
                out.bytes.push(if plus_is_space && byte == b'+' {
                    b' '
                } else {
                    byte
                });
                out.spans.push(self.spans[i]);
                i += 1;
            }
        }
        Some(out)
    }

    /// Marks the original spans of every occurrence of `needle`.
    fn find(&self, needle: &[u8], hidden: &mut Hidden) {
        let Some(&first) = needle.first() else {
            return;
        };
        if needle.len() > self.bytes.len() {
            return;
        }
        for start in 0..=self.bytes.len() - needle.len() {
            if self.bytes[start] == first && self.bytes[start..].starts_with(needle) {
                hidden.mark(self.span(start, start + needle.len()));
            }
        }
    }

    /// Marks the span of the longest start of `needle` the view ends with: a secret the cut
    /// went through.
    fn find_cut_prefix(&self, needle: &[u8], hidden: &mut Hidden) {
        let longest = needle.len().saturating_sub(1).min(self.bytes.len());
        if let Some(len) = (1..=longest)
            .rev()
            .find(|&len| self.bytes.ends_with(&needle[..len]))
        {
            hidden.mark(self.span(self.bytes.len() - len, self.bytes.len()));
        }
    }

    fn span(&self, start: usize, end: usize) -> (usize, usize) {
        (self.spans[start].0 as usize, self.spans[end - 1].1 as usize)
    }
}

fn hex_digit(byte: u8) -> Option<u8> {
    char::from(byte).to_digit(16).map(|d| d as u8)
}

/// Whether showing `c` as it is could change what a terminal or page displays beyond the
/// character itself: C0 and C1 controls (ESC, CR, LF, ...), DEL, and the invisible formatting
/// characters that reorder or hide text (bidirectional overrides, zero-width characters, line
/// and paragraph separators, the byte order mark).
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
        )
}

/// `text` with every [unsafe character](is_unsafe_char) written as an escape (`\n`, `\r`,
/// `\t`, `\u{1b}`), so provider text cannot move the cursor, clear a screen, retitle a window
/// or start a line of its own.
pub fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe_char(c) => {
                out.push_str("\\u{");
                let code = u32::from(c);
                let digits = (32 - code.leading_zeros()).div_ceil(4).max(1);
                for shift in (0..digits).rev() {
                    let digit = (code >> (shift * 4)) & 0xf;
                    out.push(char::from_digit(digit, 16).unwrap_or('0'));
                }
                out.push('}');
            }
            c => out.push(c),
        }
    }
    out
}

/// `text` cut to [`SHOWN_CHARS`] characters, marked with `…` when cut.
fn bounded(text: &str) -> String {
    match text.char_indices().nth(SHOWN_CHARS) {
        None => text.to_owned(),
        Some((end, _)) => {
            let mut cut = text[..end].to_owned();
            cut.push('…');
            cut
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    const SECRET: &str = "s3cr:t/+&%= ~";

    fn redactor() -> Redactor {
        let mut r = Redactor::none();
        r.add_secret(SECRET);
        r
    }

    fn form_encoded(value: &str) -> String {
        form_urlencoded::byte_serialize(value.as_bytes()).collect()
    }

    #[test]
    fn a_secret_is_removed_in_every_encoding_and_the_rest_kept() {
        let percent_lower = form_encoded(SECRET)
            .replace("%2F", "%2f")
            .replace('+', "%20");
        let double = form_encoded(&form_encoded(SECRET));
        for echoed in [
            SECRET.to_owned(),
            form_encoded(SECRET),
            percent_encoding::utf8_percent_encode(SECRET, percent_encoding::NON_ALPHANUMERIC)
                .to_string(),
            percent_lower,
            double,
            serde_json::to_string(SECRET).unwrap(),
            STANDARD.encode(SECRET),
            URL_SAFE_NO_PAD.encode(SECRET),
        ] {
            let text = format!("bad client_secret={echoed} for client-1");
            let cleaned = redactor().clean(&text);
            assert!(
                cleaned.starts_with("bad client_secret=") && cleaned.ends_with(" for client-1"),
                "{echoed}: {cleaned}"
            );
            assert!(cleaned.contains(REDACTED), "{echoed}: {cleaned}");
            assert!(!cleaned.contains("s3cr"), "{echoed}: {cleaned}");
        }
    }

    #[test]
    fn a_requests_credentials_are_all_found() {
        let request = HttpRequest {
            method: "POST".into(),
            url: "https://idp.example.com/token".into(),
            headers: vec![(
                "Authorization".into(),
                crate::token_request::basic_authorization("client-1", SECRET),
            )],
            body: b"grant_type=refresh_token&refresh_token=rt-sentinel%2B1&code_verifier=v3rifier-sentinel&scope=read"
                .to_vec(),
        };
        // The lifecycle adds the configured client secret to what the request shows.
        let mut redactor = Redactor::for_request(&request);
        redactor.add_secret(SECRET);
        let basic = header(&request.headers, "authorization").unwrap();
        let blob = basic.strip_prefix("Basic ").unwrap();
        let pair = String::from_utf8(STANDARD.decode(blob).unwrap()).unwrap();
        let text = format!(
            "echo: {basic} | {blob} | {pair} | rt-sentinel+1 | {} | v3rifier-sentinel | scope=read",
            SECRET
        );
        let cleaned = redactor.clean(&text);
        for leaked in ["sentinel", "s3cr", blob, &pair] {
            assert!(!cleaned.contains(leaked), "{leaked}: {cleaned}");
        }
        assert!(cleaned.starts_with("echo: Basic <redacted>"), "{cleaned}");
        assert!(cleaned.ends_with("scope=read"), "{cleaned}");
    }

    #[test]
    fn control_characters_are_escaped() {
        let text = "ok\u{1b}[2J\r\nauthorized: Bearer\u{7}\u{9b}31m \u{202e}txt.exe\u{200b}";
        let cleaned = Redactor::none().clean(text);
        assert_eq!(
            cleaned,
            "ok\\u{1b}[2J\\r\\nauthorized: Bearer\\u{7}\\u{9b}31m \\u{202e}txt.exe\\u{200b}"
        );
        assert!(!cleaned.chars().any(is_unsafe_char));
    }

    #[test]
    fn long_text_is_bounded_and_a_secret_cut_at_the_search_limit_is_still_removed() {
        let cleaned = Redactor::none().clean(&"é".repeat(5_000));
        assert_eq!(cleaned.chars().count(), SHOWN_CHARS + 1);
        assert!(cleaned.ends_with('…'));

        // Secrets shrink to `<redacted>`, so text from near the search limit is shown; a
        // secret the limit cut through must not leave its start behind.
        let long_secret = "k".repeat(3_000) + "-sentinel";
        let mut r = Redactor::none();
        r.add_secret(&long_secret);
        let text = long_secret.repeat(6);
        let cleaned = r.clean(&text);
        assert!(!cleaned.contains('k'), "{cleaned}");
        assert!(cleaned.starts_with(REDACTED));
    }

    #[test]
    fn known_codes_stay_whole_and_others_are_cleaned() {
        let mut r = Redactor::none();
        r.add_secret("c");
        assert_eq!(r.clean_code("invalid_client"), "invalid_client");
        assert_eq!(r.clean_code("c\u{1b}"), "<redacted>\\u{1b}");
    }

    #[test]
    fn secrets_next_to_multibyte_text_leave_valid_text() {
        let mut r = Redactor::none();
        r.add_secret("é-secret");
        let cleaned = r.clean("ééé-secretéé %C3%A9-secret");
        assert_eq!(cleaned, "éé<redacted>éé <redacted>");
    }

    #[test]
    fn debug_shows_no_secret() {
        let shown = format!("{:?}", redactor());
        assert!(shown.starts_with("Redactor { needles: "), "{shown}");
        assert!(!shown.contains("s3cr"), "{shown}");
    }
}

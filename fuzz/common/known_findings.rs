//! Inputs the fuzz targets skip: they reach known debug-assertion panics of the IDNA code.

/// KNOWN FINDINGS (see tests/properties.rs, `regression_fuzz_*`): with debug assertions on, as
/// cargo-fuzz builds every crate, `url::Url::parse` panics in `debug_assert!`s of the IDNA code
/// under the ASCII-only `idna_adapter` 1.0.0 the root crate pins:
/// 1. a host label with an ASCII capital before a non-ASCII character (`https://Aé/`);
/// 2. a punycode (`xn--`) label that decodes to a right-to-left mark, U+200F.
///
/// Inputs that may reach them are skipped, so the run goes on to find anything else: once tabs
/// and newlines are dropped and percent-escapes decoded, as the URL parser does to a host, a
/// capital letter with any non-ASCII character, or any `xn--`.
pub fn may_hit_known_idna_panic(url: &str) -> bool {
    // The URL parser drops tabs and newlines anywhere before reading the URL.
    let bytes: Vec<u8> = url.bytes().filter(|b| !b"\t\r\n".contains(b)).collect();
    let decoded: Vec<u8> = percent_encoding::percent_decode(&bytes).collect();
    let decoded = String::from_utf8_lossy(&decoded);
    (decoded.bytes().any(|b| b.is_ascii_uppercase()) && !decoded.is_ascii())
        || decoded.to_ascii_lowercase().contains("xn--")
}

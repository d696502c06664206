//! Secrets never leave the process: the one redaction point of the workspace.
//!
//! A client that holds a secret (an API key) registers it with [`register_secret`]; every text
//! that leaves the process — log lines ([`RedactingWriter`]), error messages, warnings,
//! reports — passes through [`redact`], which replaces each registered secret (as given and
//! hex-encoded), any `Bearer` token, any `Authorization` header's value and any user
//! information in a URL (`http://user:password@host`) with `<redacted>`.

use std::borrow::Cow;
use std::io::Write;
use std::sync::RwLock;

/// What replaces a secret.
pub const REDACTED: &str = "<redacted>";

/// The secrets registered in this process.
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Secrets shorter than this are not registered: redacting every occurrence of a two-letter
/// "key" would garble every message, and such a key protects nothing.
const MIN_SECRET: usize = 4;

/// Registers `secret` (and its hex encoding) for [`redact`], for the rest of the process.
pub fn register_secret(secret: &str) {
    let secret = secret.trim();
    if secret.len() < MIN_SECRET {
        return;
    }
    let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
    if let Ok(mut v) = SECRETS.write() {
        for s in [secret.to_owned(), hex] {
            if !v.contains(&s) {
                v.push(s);
            }
        }
        // Longest first, so a secret that contains another is replaced whole.
        v.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// `text` with every registered secret, `Bearer` token, `Authorization` header value and URL
/// user information replaced by [`REDACTED`]. Borrowed when nothing needed replacing.
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    if let Ok(secrets) = SECRETS.read() {
        for s in secrets.iter() {
            if out.contains(s.as_str()) {
                out = Cow::Owned(out.replace(s.as_str(), REDACTED));
            }
        }
    }
    for marker in ["bearer ", "authorization: ", "authorization=", "\"authorization\":\""] {
        if let Some(replaced) = redact_after(&out, marker) {
            out = Cow::Owned(replaced);
        }
    }
    if let Some(replaced) = redact_userinfo(&out) {
        out = Cow::Owned(replaced);
    }
    out
}

/// Replaces the token after each case-insensitive `marker` (up to whitespace, a quote, a
/// comma or a closing bracket); `None` when there is none.
fn redact_after(text: &str, marker: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    if !lower.contains(marker) {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    let mut changed = false;
    while let Some(at) = lower[rest..].find(marker) {
        let start = rest + at + marker.len();
        out.push_str(&text[rest..start]);
        let token_len = |from: usize| {
            text[from..]
                .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | '}' | ']' | ')'))
                .unwrap_or(text.len() - from)
        };
        let (mut start, mut len) = (start, token_len(start));
        // `Authorization: Bearer X`: the scheme stays, the credential after it goes.
        let scheme = &text[start..start + len];
        if !marker.starts_with("bearer")
            && ["bearer", "basic", "token"].iter().any(|s| scheme.eq_ignore_ascii_case(s))
            && text[start + len..].starts_with(' ')
        {
            out.push_str(scheme);
            out.push(' ');
            start += len + 1;
            len = token_len(start);
        }
        let token = &text[start..start + len];
        if !token.is_empty() && token != REDACTED {
            out.push_str(REDACTED);
            changed = true;
        } else {
            out.push_str(token);
        }
        rest = start + len;
    }
    out.push_str(&text[rest..]);
    changed.then_some(out)
}

/// Replaces the user information of every URL (`scheme://USER:PASS@host`); `None` when there
/// is none.
fn redact_userinfo(text: &str) -> Option<String> {
    if !text.contains("://") || !text.contains('@') {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    let mut changed = false;
    while let Some(at) = text[rest..].find("://") {
        let start = rest + at + 3;
        out.push_str(&text[rest..start]);
        let authority_len = text[start..]
            .find(|c: char| c.is_whitespace() || matches!(c, '/' | '?' | '#' | '"' | '\'' | '>' | ')'))
            .unwrap_or(text.len() - start);
        let authority = &text[start..start + authority_len];
        match authority.rfind('@') {
            Some(userinfo) if userinfo > 0 && &authority[..userinfo] != REDACTED => {
                out.push_str(REDACTED);
                out.push_str(&authority[userinfo..]);
                changed = true;
            }
            _ => out.push_str(authority),
        }
        rest = start + authority_len;
    }
    out.push_str(&text[rest..]);
    changed.then_some(out)
}

/// `url` without its user information, and whether it had any (`http://u:p@h/v1` →
/// `http://h/v1`, true).
pub fn strip_url_credentials(url: &str) -> (String, bool) {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else { return (url.to_owned(), false) };
    let authority_end = url[scheme_end..].find(['/', '?', '#']).map_or(url.len(), |i| scheme_end + i);
    match url[scheme_end..authority_end].rfind('@') {
        Some(at) => (format!("{}{}", &url[..scheme_end], &url[scheme_end + at + 1..]), true),
        None => (url.to_owned(), false),
    }
}

/// A writer that passes what is written to it through [`redact`]: whole, when it is flushed or
/// dropped, so a secret split over two writes is still found. For a log subscriber, which
/// makes one writer per event (`tracing_subscriber`'s `with_writer(|| RedactingWriter::new(
/// std::io::stderr()))`).
#[derive(Debug)]
pub struct RedactingWriter<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> RedactingWriter<W> {
    /// Redacts what is written before passing it to `inner`.
    pub fn new(inner: W) -> Self {
        RedactingWriter { inner, buf: Vec::new() }
    }

    fn drain(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.buf);
        let redacted = redact(&text).into_owned();
        self.buf.clear();
        self.inner.write_all(redacted.as_bytes())
    }
}

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.drain()?;
        self.inner.flush()
    }
}

impl<W: Write> Drop for RedactingWriter<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_tokens_headers_and_userinfo_are_redacted() {
        register_secret("sk-unit-test-0123456789");
        let hex: String = "sk-unit-test-0123456789".bytes().map(|b| format!("{b:02x}")).collect();
        let text = format!(
            "key sk-unit-test-0123456789 hex {hex}; Authorization: Bearer abc.def-1; \
             {{\"authorization\":\"Basic Zm9v\"}} url http://user:pa55@host:8/v1 and https://h/v1 e@mail"
        );
        let r = redact(&text);
        for leaked in ["sk-unit-test", &hex, "abc.def-1", "Zm9v", "pa55", "user:"] {
            assert!(!r.contains(leaked), "{leaked} in {r}");
        }
        assert!(r.contains("Bearer <redacted>") && r.contains("http://<redacted>@host:8/v1"), "{r}");
        assert!(r.contains("https://h/v1 e@mail"), "{r}");
        assert!(matches!(redact("nothing here"), Cow::Borrowed(_)));
        // Short "secrets" are not registered.
        register_secret("ab");
        assert_eq!(redact("a b ab"), "a b ab");
    }

    #[test]
    fn a_secret_split_over_writes_is_redacted_and_credentials_stripped() {
        register_secret("split-secret-XYZ");
        let mut out = Vec::new();
        {
            let mut w = RedactingWriter::new(&mut out);
            w.write_all(b"a split-sec").unwrap();
            w.write_all(b"ret-XYZ b\n").unwrap();
        }
        assert_eq!(String::from_utf8(out).unwrap(), "a <redacted> b\n");
        assert_eq!(strip_url_credentials("http://u:p@h:1/v1?x=@"), ("http://h:1/v1?x=@".into(), true));
        assert_eq!(strip_url_credentials("http://h/v1"), ("http://h/v1".into(), false));
    }
}

//! The tokenizer text and dictionary terms share: alphanumeric tokens, soft separators
//! (hyphens, slashes, spaces) and hard breaks (sentence punctuation) that no match spans.

#[derive(Debug, Clone, Copy)]
pub(super) struct Token {
    pub(super) start: u32,
    pub(super) end: u32,
    /// A hard break (sentence punctuation, brackets) precedes the token.
    pub(super) hard_before: bool,
}

/// Byte classes of the tokenizer (ASCII; bytes from 0x80 start a multi-byte character).
const ALNUM: u8 = 0;
const SOFT: u8 = 1;
const APOSTROPHE: u8 = 2;
const NUMERIC_PUNCT: u8 = 3;
const HARD: u8 = 4;
const MULTIBYTE: u8 = 5;

const CLASS: [u8; 256] = {
    let mut t = [HARD; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = if c >= 0x80 {
            MULTIBYTE
        } else if c.is_ascii_alphanumeric() {
            ALNUM
        } else {
            match c {
                b' ' | b'\t' | b'\n' | b'\r' | b'-' | b'/' => SOFT,
                b'\'' => APOSTROPHE,
                b',' | b'.' => NUMERIC_PUNCT,
                _ => HARD,
            }
        };
        b += 1;
    }
    t
};

/// Classifies a non-ASCII character as a separator.
fn multibyte_class(c: char) -> u8 {
    match c {
        _ if c.is_alphanumeric() => ALNUM,
        '\u{2010}' | '\u{2011}' | '\u{2013}' | '\u{a0}' => SOFT,
        '\u{2019}' => APOSTROPHE,
        _ if c.is_whitespace() => SOFT,
        _ => HARD,
    }
}

/// Splits text into alphanumeric tokens (see the module docs for the separator rules),
/// packing each short ASCII token's lower-cased bytes on the way.
pub(super) fn tokenize(text: &str, out: &mut Vec<Token>) {
    out.clear();
    tokenize_with(text, |t, _| out.push(t));
}

/// [`tokenize`], handing each token to `emit` as it is found, with its bytes lower-cased and
/// packed little-endian (zero-padded) when it is ASCII of at most 16 bytes.
#[inline]
pub(super) fn tokenize_with(text: &str, mut emit: impl FnMut(Token, Option<u128>)) {
    let bytes = text.as_bytes();
    let len = bytes.len();
    let mut i = 0;
    let mut hard = false;
    let mut apostrophe = false;
    let char_at = |i: usize| text[i..].chars().next().unwrap_or(' ');
    while i < len {
        let mut class = CLASS[bytes[i] as usize];
        let mut width = 1;
        if class == MULTIBYTE {
            let c = char_at(i);
            class = multibyte_class(c);
            width = c.len_utf8();
        }
        match class {
            ALNUM => {
                let start = i;
                let mut buf = [0u8; 16];
                let mut ascii = width == 1;
                buf[0] = bytes[start].to_ascii_lowercase();
                i += width;
                while i < len {
                    let b = bytes[i];
                    match CLASS[b as usize] {
                        ALNUM => {
                            if let Some(slot) = buf.get_mut(i - start) {
                                *slot = b.to_ascii_lowercase();
                            }
                            i += 1;
                        }
                        MULTIBYTE => {
                            let c = char_at(i);
                            if !c.is_alphanumeric() {
                                break;
                            }
                            ascii = false;
                            i += c.len_utf8();
                        }
                        _ => break,
                    }
                }
                // Possessive `'s`: dropped.
                let possessive = apostrophe && i - start == 1 && (bytes[start] | 0x20) == b's';
                if !possessive {
                    let packed = (ascii && i - start <= 16).then(|| u128::from_le_bytes(buf));
                    emit(Token { start: start as u32, end: i as u32, hard_before: hard }, packed);
                    hard = false;
                }
                apostrophe = false;
                continue;
            }
            SOFT => {}
            APOSTROPHE => apostrophe = true,
            NUMERIC_PUNCT => {
                // Inside numbers (`2,4-D`, `1.5`) these are soft.
                let digit_before = i > 0 && bytes[i - 1].is_ascii_digit();
                let digit_after = bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
                if !(digit_before && digit_after) {
                    hard = true;
                }
            }
            _ => hard = true,
        }
        i += width;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::normalize::normalize;

    fn toks(s: &str) -> Vec<(String, bool)> {
        let mut v = Vec::new();
        tokenize(s, &mut v);
        let mut key = String::new();
        v.iter()
            .map(|t| {
                normalize(&s[t.start as usize..t.end as usize], &mut key);
                (key.clone(), t.hard_before)
            })
            .collect()
    }

    #[test]
    fn tokenizer_rules() {
        let t = toks("Alzheimer's diseases, and 2,4-dinitrophenol (DNP).");
        let words: Vec<&str> = t.iter().map(|(w, _)| w.as_str()).collect();
        assert_eq!(words, ["alzheimer", "disease", "and", "2", "4", "dinitrophenol", "dnp"]);
        let hard: Vec<bool> = t.iter().map(|(_, h)| *h).collect();
        assert_eq!(hard, [false, false, true, false, false, false, true]);
    }
}

//! Cutting text to a length counted in characters (never in bytes, never inside a
//! character): the one place every crate cuts prompts, contexts and messages.

/// The longest prefix of `text` of at most `max` characters.
pub fn cut_chars(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        None => text,
        Some((end, _)) => &text[..end],
    }
}

/// [`cut_chars`] followed by "…" when something was cut.
pub fn cut_chars_marked(text: &str, max: usize) -> String {
    let head = cut_chars(text, max);
    if head.len() < text.len() { format!("{head}…") } else { head.to_owned() }
}

/// The longest prefix of `text` of at most `max` characters that ends at a word boundary
/// (the whole cut prefix when it holds no whitespace).
pub fn cut_chars_at_word(text: &str, max: usize) -> &str {
    let head = cut_chars(text, max);
    if head.len() == text.len() {
        return head;
    }
    head.rfind(char::is_whitespace).map_or(head, |space| &head[..space])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_characters_not_bytes() {
        assert_eq!(cut_chars("αβγδ", 2), "αβ");
        assert_eq!(cut_chars("ab", 5), "ab");
        assert_eq!(cut_chars("", 0), "");
        assert_eq!(cut_chars_marked("αβγδ", 3), "αβγ…");
        assert_eq!(cut_chars_marked("αβ", 3), "αβ");
        assert_eq!(cut_chars_at_word("one two three", 9), "one two");
        assert_eq!(cut_chars_at_word("one two", 7), "one two");
        assert_eq!(cut_chars_at_word("abcdef", 3), "abc");
    }
}

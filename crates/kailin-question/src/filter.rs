//! What makes a generation a usable question: cleaning, the checks, and the measures of
//! question quality (well-formedness, ROUGE-L against a gold question).

use serde::{Deserialize, Serialize};

/// Why a generation was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    /// Nothing but whitespace or punctuation.
    Empty,
    /// Not one sentence ending in `?` (or fewer than three words).
    NotAQuestion,
    /// Six or more words of the document, in order, with a question mark added.
    CopiesDocument,
    /// The same words as a question already kept for the document.
    Duplicate,
}

/// Counts of a generation run: documents seen and skipped, generations made, kept and
/// filtered by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Documents given.
    pub documents: u64,
    /// Documents without text (skipped: no prompt was made).
    pub empty_documents: u64,
    /// Generations made.
    pub generated: u64,
    /// Questions kept.
    pub kept: u64,
    /// Filtered: empty.
    pub empty: u64,
    /// Filtered: not a question.
    pub not_a_question: u64,
    /// Filtered: a copy of the document.
    pub copies_document: u64,
    /// Filtered: a duplicate of a kept question.
    pub duplicates: u64,
    /// Generations made again, with the next derived seed, after one was filtered (counted
    /// in `generated` too).
    #[serde(default)]
    pub resampled: u64,
    /// Documents with text left without any kept question after every resample.
    #[serde(default)]
    pub without_question: u64,
}

impl Tally {
    /// Counts one rejection.
    pub fn reject(&mut self, why: Rejection) {
        match why {
            Rejection::Empty => self.empty += 1,
            Rejection::NotAQuestion => self.not_a_question += 1,
            Rejection::CopiesDocument => self.copies_document += 1,
            Rejection::Duplicate => self.duplicates += 1,
        }
    }

    /// Adds another run's counts.
    pub fn add(&mut self, other: &Tally) {
        self.documents += other.documents;
        self.empty_documents += other.empty_documents;
        self.generated += other.generated;
        self.kept += other.kept;
        self.empty += other.empty;
        self.not_a_question += other.not_a_question;
        self.copies_document += other.copies_document;
        self.duplicates += other.duplicates;
        self.resampled += other.resampled;
        self.without_question += other.without_question;
    }

    /// The share of generations that were well-formed questions (kept or duplicates of a
    /// kept one); `None` before any generation.
    pub fn well_formed(&self) -> Option<f64> {
        (self.generated > 0).then(|| (self.kept + self.duplicates) as f64 / self.generated as f64)
    }
}

/// The question in a raw generation: its first non-empty line, without a leading
/// `Question:` label, list marker or quotes, up to and including its first `?`.
pub fn clean_question(raw: &str) -> String {
    let line = raw.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    let mut s = line;
    for label in ["question:", "q:"] {
        if s.len() >= label.len() && s[..label.len()].eq_ignore_ascii_case(label) {
            s = s[label.len()..].trim_start();
        }
    }
    // A lead-in such as `The question is:` or `Here is a question:` before the question.
    let s = match (s.find('?'), s.find(':')) {
        (Some(mark), Some(colon)) if colon < mark && s[..colon].to_lowercase().contains("question") => &s[colon + 1..],
        _ => s,
    }
    .trim_start();
    let s = s.trim_start_matches(['-', '*', '•']).trim_start();
    // A list number: `1.` or `2)`.
    let digits = s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let s = match s[digits..].strip_prefix(['.', ')']) {
        Some(rest) if digits > 0 && rest.starts_with(' ') => rest.trim_start(),
        _ => s,
    };
    let s = s.trim_matches(|c: char| matches!(c, '"' | '\'' | '“' | '”' | '`')).trim();
    match s.find('?') {
        Some(end) => s[..=end].trim().to_owned(),
        None => s.to_owned(),
    }
}

/// Lower-case alphanumeric words.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// Checks a cleaned question against its document (title and text): `Ok` when it is one
/// sentence of at least three words ending in `?` and not a copy of the document.
pub fn check_question(question: &str, document: &str) -> Result<(), Rejection> {
    let q = words(question);
    if q.is_empty() {
        return Err(Rejection::Empty);
    }
    let q_text = question.trim();
    if !q_text.ends_with('?') || q.len() < 3 || q_text[..q_text.len() - 1].contains('?') || inner_sentence_end(q_text) {
        return Err(Rejection::NotAQuestion);
    }
    if q.len() >= 6 && contains_run(&words(document), &q) {
        return Err(Rejection::CopiesDocument);
    }
    Ok(())
}

/// A `.` or `!` followed by a space and an upper-case letter: two sentences.
fn inner_sentence_end(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    chars.windows(3).any(|w| matches!(w[0], '.' | '!') && w[1] == ' ' && w[2].is_uppercase())
}

/// Whether `needle` occurs as a contiguous run of `haystack`.
fn contains_run(haystack: &[String], needle: &[String]) -> bool {
    needle.len() <= haystack.len() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// ROUGE-L F1 of `candidate` against `reference`: the longest common subsequence of their
/// lower-case words, as the harmonic mean of its precision and recall; 0 when either is empty.
pub fn rouge_l(candidate: &str, reference: &str) -> f64 {
    let (c, r) = (words(candidate), words(reference));
    if c.is_empty() || r.is_empty() {
        return 0.0;
    }
    let mut row = vec![0usize; r.len() + 1];
    for cw in &c {
        let mut diagonal = 0;
        for (j, rw) in r.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if cw == rw { diagonal + 1 } else { row[j + 1].max(row[j]) };
            diagonal = above;
        }
    }
    let lcs = row[r.len()] as f64;
    if lcs == 0.0 {
        return 0.0;
    }
    let (p, rec) = (lcs / c.len() as f64, lcs / r.len() as f64);
    2.0 * p * rec / (p + rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning_keeps_the_question_only() {
        assert_eq!(
            clean_question("\n  Question: \"What does aspirin inhibit?\" It inhibits COX."),
            "What does aspirin inhibit?"
        );
        assert_eq!(clean_question("Is it safe"), "Is it safe");
        assert_eq!(clean_question("1. Is 5.2 mg safe?"), "Is 5.2 mg safe?");
        assert_eq!(clean_question("- Is it safe?"), "Is it safe?");
        assert_eq!(clean_question("The question is: \"What is the role of X?\""), "What is the role of X?");
        assert_eq!(clean_question("Ratio 1:2 in what question?"), "Ratio 1:2 in what question?");
        assert_eq!(clean_question(""), "");
    }

    #[test]
    fn checks_name_the_reason() {
        let doc = "Aspirin irreversibly inhibits cyclooxygenase in platelets of healthy adults.";
        assert_eq!(check_question("What does aspirin inhibit?", doc), Ok(()));
        assert_eq!(check_question(" ?! ", doc), Err(Rejection::Empty));
        assert_eq!(check_question("Aspirin inhibits COX.", doc), Err(Rejection::NotAQuestion));
        assert_eq!(check_question("Why?", doc), Err(Rejection::NotAQuestion));
        assert_eq!(check_question("It works. Does it?", doc), Err(Rejection::NotAQuestion));
        assert_eq!(
            check_question("Aspirin irreversibly inhibits cyclooxygenase in platelets?", doc),
            Err(Rejection::CopiesDocument)
        );
        // Six words, but not in the document's order.
        assert_eq!(check_question("In platelets, does aspirin inhibit cyclooxygenase irreversibly?", doc), Ok(()));
    }

    #[test]
    fn rouge_l_matches_hand_computed_values() {
        assert_eq!(rouge_l("what does aspirin inhibit", "What does aspirin inhibit?"), 1.0);
        // LCS "aspirin inhibit" = 2 of 3 and 2 of 4 words: P 2/3, R 1/2, F 4/7.
        assert!((rouge_l("aspirin inhibit platelets", "what does aspirin inhibit") - 4.0 / 7.0).abs() < 1e-12);
        assert_eq!(rouge_l("", "x"), 0.0);
        assert_eq!(rouge_l("a b", "c d"), 0.0);
    }

    #[test]
    fn well_formed_counts_duplicates_as_questions() {
        let mut t = Tally { generated: 4, kept: 2, ..Default::default() };
        t.reject(Rejection::Duplicate);
        t.reject(Rejection::NotAQuestion);
        assert_eq!(t.well_formed(), Some(0.75));
        assert_eq!(Tally::default().well_formed(), None);
    }
}

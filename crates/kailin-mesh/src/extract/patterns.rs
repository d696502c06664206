//! The dictionary's patterns: what each normalised term maps to, and its case rule.

use rustc_hash::FxHashMap;

/// Case rule of one dictionary pattern: the one representation, one byte per pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Case {
    /// Any case.
    Any,
    /// The text may not contain lower-case letters (acronyms such as `ALL`).
    NoLower,
    /// The text's letters and digits must equal the pattern's spelling exactly (very short
    /// terms); the spelling is kept aside, in [`Patterns::exact`].
    Exact,
}

/// Whether the text `span` satisfies `case`; `spelling` is the letters and digits an
/// [`Case::Exact`] pattern must equal.
pub(super) fn case_ok(case: Case, spelling: &str, span: &str) -> bool {
    match case {
        Case::Any => true,
        Case::NoLower => !span.chars().any(char::is_lowercase),
        Case::Exact => span.chars().filter(|c| c.is_alphanumeric()).eq(spelling.chars()),
    }
}

/// One pattern as the builder makes it.
#[derive(Debug, Clone)]
pub(super) struct Pattern {
    pub(super) descriptor: u32,
    pub(super) case: Case,
    /// The letters and digits of the term, for a [`Case::Exact`] pattern.
    pub(super) spelling: Option<Box<str>>,
    /// Lower is preferred when several descriptors share a normalised pattern.
    pub(super) priority: u8,
    /// The descriptor names a protein, enzyme, receptor or channel (tree D08 or D12).
    pub(super) protein: bool,
    /// The descriptor names a chemical (tree category D).
    pub(super) chemical: bool,
}

/// Flag bit: the pattern's descriptor names a protein, enzyme, receptor or channel.
pub(super) const PROTEIN: u8 = 1;
/// Flag bit: the pattern's descriptor names a chemical.
pub(super) const CHEMICAL: u8 = 1 << 1;

/// The patterns in struct-of-arrays form: what every match reads (descriptor, case, flags)
/// packed in small arrays that stay in cache; the rare exact spellings aside.
#[derive(Debug, Clone)]
pub(super) struct Patterns {
    pub(super) descriptor: Vec<u32>,
    case: Vec<Case>,
    flags: Vec<u8>,
    exact: FxHashMap<u32, Box<str>>,
}

impl Patterns {
    pub(super) fn new(patterns: Vec<Pattern>) -> Patterns {
        let n = patterns.len();
        let mut out = Patterns {
            descriptor: Vec::with_capacity(n),
            case: Vec::with_capacity(n),
            flags: Vec::with_capacity(n),
            exact: FxHashMap::default(),
        };
        for (i, p) in patterns.into_iter().enumerate() {
            if let Some(spelling) = p.spelling {
                out.exact.insert(i as u32, spelling);
            }
            out.descriptor.push(p.descriptor);
            out.case.push(p.case);
            out.flags.push(if p.protein { PROTEIN } else { 0 } | if p.chemical { CHEMICAL } else { 0 });
        }
        out
    }

    #[inline]
    pub(super) fn has(&self, p: u32, flag: u8) -> bool {
        self.flags[p as usize] & flag != 0
    }

    /// Whether the text `span` satisfies pattern `p`'s case rule.
    #[inline]
    pub(super) fn case_ok(&self, p: u32, span: &str) -> bool {
        match self.case[p as usize] {
            Case::Exact => case_ok(Case::Exact, self.exact.get(&p).map_or("", |s| s), span),
            case => case_ok(case, "", span),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_rules() {
        assert!(case_ok(Case::NoLower, "", "ALL"));
        assert!(!case_ok(Case::NoLower, "", "all"));
        assert!(case_ok(Case::Exact, "Ca", "Ca"));
        assert!(!case_ok(Case::Exact, "Ca", "ca"));
        assert!(case_ok(Case::Any, "", "whatever"));
    }
}

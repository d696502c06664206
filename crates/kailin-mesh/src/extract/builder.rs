//! Building an [`Extractor`]: which descriptors and spellings are indexed, and how.

use rustc_hash::FxHashMap;

use super::Extractor;
use super::normalize::{ELEMENTS, normalize};
use super::patterns::{Case, Pattern, Patterns};
use super::tokenize::tokenize;
use super::vocab::{FIXED, Vocab};
use crate::error::{Error, Result};
use crate::mesh::Mesh;
use crate::trie::TokenTrie;

/// Configures an [`Extractor`].
#[derive(Debug, Clone)]
pub struct ExtractorBuilder<'m> {
    pub(super) mesh: &'m Mesh,
    pub(super) abbreviations: bool,
    pub(super) categories: Option<Vec<char>>,
    pub(super) exclude: Vec<String>,
    pub(super) min_chars: usize,
}

/// Sub-trees left out by default: they name roles, dosage forms and generic classes, not
/// entities.
///
/// - `D26` Pharmaceutical Preparations (dosage forms: "drugs", "tablets", "solutions");
/// - `D27` Chemical Actions and Uses (roles: "analgesics", "antioxidants");
/// - `C23.550.288` the class nouns Disease and Syndrome ("the disease", "this syndrome").
///
/// On BC5CDR, D26 and D27 gave 808 false positives against 55 true positives, and Disease and
/// Syndrome 107 false positives against none; see `docs/benchmarks.md`. A descriptor is
/// left out only if *all* its tree numbers lie in excluded sub-trees.
pub const DEFAULT_EXCLUDED_TREES: &[&str] = &["D26", "D27", "C23.550.288"];

impl<'m> ExtractorBuilder<'m> {
    /// Leave out descriptors all of whose tree numbers lie under these tree-number prefixes
    /// (replaces [`DEFAULT_EXCLUDED_TREES`]; pass an empty list to index everything).
    pub fn exclude_trees<S: Into<String>>(mut self, prefixes: impl IntoIterator<Item = S>) -> Self {
        self.exclude = prefixes.into_iter().map(Into::into).collect();
        self
    }

    /// Resolve abbreviations defined in the text (on by default).
    pub fn abbreviations(mut self, on: bool) -> Self {
        self.abbreviations = on;
        self
    }

    /// Index only descriptors with a tree number in one of these categories (`'C'`, `'D'`…);
    /// all descriptors by default.
    pub fn categories(mut self, letters: impl IntoIterator<Item = char>) -> Self {
        self.categories = Some(letters.into_iter().collect());
        self
    }

    /// Skip terms with fewer letters and digits than this (default 2).
    pub fn min_chars(mut self, n: usize) -> Self {
        self.min_chars = n;
        self
    }

    /// Builds the automaton (about a second for all of MeSH).
    pub fn build(self) -> Result<Extractor> {
        let mesh = self.mesh;
        let mut vocab = Vocab::default();
        let mut by_key: FxHashMap<Vec<u32>, Pattern> = FxHashMap::default();
        let mut toks = Vec::new();
        let mut key = String::new();
        for id in mesh.ids() {
            let d = mesh.descriptor(id);
            if let Some(cats) = &self.categories
                && !cats.iter().any(|&c| d.in_category(c))
            {
                continue;
            }
            let under = |t: &str| {
                self.exclude
                    .iter()
                    .any(|p| t.starts_with(p.as_str()) && t[p.len()..].chars().next().is_none_or(|c| c == '.'))
            };
            if !self.exclude.is_empty() && d.in_hierarchy() && d.tree_numbers().all(under) {
                continue;
            }
            let symbol = ELEMENTS.iter().find(|(_, name)| *name == d.name()).map(|(sym, _)| (*sym, 2u8));
            let terms = std::iter::once((d.name(), 0u8)).chain(d.entry_terms().map(|e| (e, 2u8))).chain(symbol);
            for (term, base) in terms {
                for (variant, extra) in variants(term) {
                    let alnum: String = variant.chars().filter(|c| c.is_alphanumeric()).collect();
                    let n_chars = alnum.chars().count();
                    if n_chars < self.min_chars || alnum.chars().all(|c| c.is_ascii_digit()) {
                        continue;
                    }
                    let (case, spelling) = if n_chars <= 3 {
                        (Case::Exact, Some(alnum.into()))
                    } else if variant.chars().any(char::is_uppercase) && !variant.chars().any(char::is_lowercase) {
                        (Case::NoLower, None)
                    } else {
                        (Case::Any, None)
                    };
                    tokenize(&variant, &mut toks);
                    let mut ids = Vec::with_capacity(toks.len());
                    // A singular mention names the compound, a plural the class: when both
                    // normalise alike (`glutamate` from Glutamic Acid and from Glutamates),
                    // the term that was singular wins.
                    let mut plural = false;
                    for tok in &toks {
                        let raw = &variant[tok.start as usize..tok.end as usize];
                        normalize(raw, &mut key);
                        plural = key.len() < raw.len() && raw.ends_with(['s', 'S']);
                        ids.push(vocab.intern(&key));
                    }
                    if ids.is_empty() {
                        continue;
                    }
                    let p = Pattern {
                        descriptor: id.0,
                        protein: d.tree_numbers().any(|t| t.starts_with("D08") || t.starts_with("D12")),
                        chemical: d.in_category('D'),
                        case,
                        spelling,
                        priority: base + extra + if plural { 4 } else { 0 },
                    };
                    match by_key.get_mut(&ids) {
                        Some(old) if (p.priority, p.descriptor) < (old.priority, old.descriptor) => *old = p,
                        Some(_) => {}
                        None => {
                            by_key.insert(ids, p);
                        }
                    }
                }
            }
        }
        if vocab.len() >= FIXED as usize {
            return Err(Error::parse(mesh.origin(), 0, "extractor vocabulary exceeds 2^31 tokens"));
        }
        let mut entries: Vec<(Vec<u32>, Pattern)> = by_key.into_iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let (terms, patterns): (Vec<Vec<u32>>, Vec<Pattern>) = entries.into_iter().unzip();
        let trie = TokenTrie::new(&terms, vocab.len());
        tracing::debug!(patterns = patterns.len(), vocab = vocab.len(), "built MeSH extractor");
        let patterns = Patterns::new(patterns);
        Ok(Extractor { vocab, trie, patterns, abbreviations: self.abbreviations })
    }
}

/// Spellings under which a term is indexed, with a priority penalty:
/// - the term itself, or for inverted terms (`Neoplasms, Lung`;
///   `Cardiomyopathy, Hypertrophic, Familial`) the natural order (`Lung Neoplasms`;
///   `Familial Hypertrophic Cardiomyopathy`) instead;
/// - for acids, the name of the conjugate base, which is how the literature names the
///   compound (`Glutamic Acid` → `glutamate`, `Nitrous Acid` → `nitrite`).
pub(super) fn variants(term: &str) -> Vec<(String, u8)> {
    let term = term.trim();
    let mut out = Vec::new();
    let mut base = term.to_owned();
    if term.contains(", ") {
        let parts: Vec<&str> = term.split(", ").collect();
        // Chemical names use commas inside (`4-Benzoxazolecarboxylic acid, 5-(…)…`); only
        // invert when every part is plain words.
        let plain = parts.iter().all(|p| p.chars().all(|c| c.is_alphabetic() || c == ' ' || c == '-' || c == '\''));
        if plain {
            let inverted: Vec<&str> = parts.iter().rev().copied().collect();
            base = inverted.join(" ");
        }
    }
    let penalty = u8::from(base != term);
    let lower = base.to_ascii_lowercase();
    for (acid, ion) in [("ic acid", "ate"), ("ous acid", "ite")] {
        if lower.ends_with(acid) && lower.len() > acid.len() + 2 {
            out.push((format!("{}{ion}", &base[..base.len() - acid.len()]), penalty + 1));
        }
    }
    out.insert(0, (base, penalty));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverted_terms() {
        assert_eq!(variants("Neoplasms, Lung"), vec![("Lung Neoplasms".to_owned(), 1)]);
        assert_eq!(
            variants("Cardiomyopathy, Hypertrophic, Familial"),
            vec![("Familial Hypertrophic Cardiomyopathy".to_owned(), 1)]
        );
        assert_eq!(variants("Acid, 5-(methyl)")[0].0, "Acid, 5-(methyl)");
        assert_eq!(variants("L-Glutamic Acid"), vec![("L-Glutamic Acid".to_owned(), 0), ("L-Glutamate".to_owned(), 1)]);
        assert_eq!(variants("Nitrous Acid")[1].0, "Nitrite");
    }
}

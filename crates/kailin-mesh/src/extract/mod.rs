//! MeSH term extraction from free text: a dictionary matcher over preferred names and entry
//! terms.
//!
//! Text and dictionary terms go through the same normaliser: split into alphanumeric tokens
//! (hyphens, slashes and spaces are soft separators; sentence punctuation is a hard break
//! that no match spans), lower-case, drop a possessive `'s`, reduce regular plurals (`-ies` →
//! `-y`, final `-s`), spell British forms the American way, map adjectival suffixes to the
//! noun MeSH uses (`hypertensive` → `hypertension`), Roman numerals to digits and Greek
//! letters to their names. Each token becomes a vocabulary id, and a trie over token ids
//! ([`crate::trie`]) finds the longest term starting at each token, leftmost first: every
//! match starts and ends on a token boundary, whole-word by construction. (An Aho–Corasick
//! automaton over a byte encoding of the ids did the same at half the speed; see
//! `docs/benchmarks.md`.)
//!
//! On top of that: inverted entry terms (`Neoplasms, Lung`) are indexed in natural order
//! (`Lung Neoplasms`); acronym-like terms (`ALL`, `AIDS`) match only text without lower-case
//! letters, and terms of at most three characters only their exact spelling; abbreviations
//! defined in the text (`Parkinson disease (PD)`) are resolved for the rest of the text.

mod abbrev;
mod builder;
mod normalize;
mod patterns;
mod tokenize;
mod vocab;

pub use self::builder::{DEFAULT_EXCLUDED_TREES, ExtractorBuilder};

use self::abbrev::resolve_abbreviations;
use self::normalize::{may_normalize, normalize, normalize_lowercase};
use self::patterns::{CHEMICAL, PROTEIN, Patterns};
use self::tokenize::{Token, tokenize_with};
use self::vocab::{FIXED, Vocab};
use crate::error::Result;
use crate::mesh::{DescriptorId, Mesh};
use crate::trie::{NONE as TRIE_NONE, TokenTrie};

/// One extracted mention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    /// The descriptor the mention names.
    pub descriptor: DescriptorId,
    /// Byte offset of the first character of the mention.
    pub start: usize,
    /// Byte offset one past the mention.
    pub end: usize,
}

impl Match {
    /// The matched text.
    pub fn text<'t>(&self, text: &'t str) -> &'t str {
        &text[self.start..self.end]
    }
}

/// Finds MeSH descriptors mentioned in text. Build once ([`Extractor::new`] or
/// [`Extractor::builder`]), then call [`extract`](Self::extract) from any number of threads.
#[derive(Debug, Clone)]
pub struct Extractor {
    vocab: Vocab,
    trie: TokenTrie,
    patterns: Patterns,
    abbreviations: bool,
}

/// Reusable buffers for [`Extractor::extract_with`].
#[derive(Debug, Default)]
pub struct Scratch {
    tokens: Vec<Token>,
    /// Token id of each token, `NONE` if unknown.
    ids: Vec<u32>,
    /// Dictionary matches of the last call: (first token, end token, pattern).
    spans: Vec<(u32, u32, u32)>,
    /// Terminals met on one walk: (end token, pattern).
    path: Vec<(u32, u32)>,
    key: String,
}

impl Extractor {
    /// An extractor over every descriptor of `mesh`, with default settings.
    pub fn new(mesh: &Mesh) -> Result<Extractor> {
        Self::builder(mesh).build()
    }

    /// Configure before building.
    pub fn builder(mesh: &Mesh) -> ExtractorBuilder<'_> {
        ExtractorBuilder {
            mesh,
            abbreviations: true,
            categories: None,
            exclude: DEFAULT_EXCLUDED_TREES.iter().map(|s| (*s).to_owned()).collect(),
            min_chars: 2,
        }
    }

    /// Number of distinct normalised tokens in the dictionary.
    pub fn vocabulary_size(&self) -> usize {
        self.vocab.len()
    }

    /// Number of distinct normalised patterns.
    pub fn pattern_count(&self) -> usize {
        self.patterns.descriptor.len()
    }

    /// Mentions in `text`, sorted by position, non-overlapping (longest match wins).
    pub fn extract(&self, text: &str) -> Vec<Match> {
        let mut out = Vec::new();
        self.extract_with(text, &mut Scratch::default(), &mut out);
        out
    }

    /// Like [`extract`](Self::extract), plus chemicals nested at the start of the name of a
    /// protein, enzyme, receptor or channel (tree D08 or D12) that acts on them: `creatine` in
    /// `creatine kinase`, `calcium` in `calcium channel`, `dopamine` in `dopamine receptors`.
    /// Other nested terms are left out: a nested head (`disease` in `Parkinson disease`) only
    /// repeats the longer term's class, and adjectival modifiers (`ischemic stroke`) are part
    /// of the disease's name. Matches may overlap; sorted by start, longer first.
    pub fn extract_all(&self, text: &str) -> Vec<Match> {
        let mut out = Vec::new();
        self.extract_all_with(text, &mut Scratch::default(), &mut out);
        out
    }

    /// The set of descriptors a text mentions, nested mentions included, ids ascending: the
    /// document's MeSH terms for set similarity.
    pub fn descriptors(&self, text: &str) -> Vec<DescriptorId> {
        let mut ids: Vec<DescriptorId> = self.extract_all(text).iter().map(|m| m.descriptor).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Like [`extract`](Self::extract), reusing buffers across calls; `out` is cleared first.
    pub fn extract_with(&self, text: &str, scratch: &mut Scratch, out: &mut Vec<Match>) {
        out.clear();
        self.lookup(text, scratch);
        let Scratch { tokens, ids, spans, path, .. } = scratch;
        spans.clear();
        let n = tokens.len();
        let mut i = 0;
        while i < n {
            // Most tokens start no term: one array read rejects them. A one-token term that
            // nothing extends needs no walk either.
            let Some(node) = self.trie.start(ids[i]) else {
                i += 1;
                continue;
            };
            if !self.trie.has_children(node) {
                if let Some(p) = self.trie.terminal(node)
                    && self.case_ok_at(text, tokens, i, i + 1, p)
                {
                    spans.push((i as u32, i as u32 + 1, p));
                    out.push(self.to_match(tokens, i, i + 1, p));
                }
                i += 1;
                continue;
            }
            // Longest term starting at token i whose case rule the text satisfies.
            let end = self.walk(tokens, ids, i, n, path).and_then(|_| {
                path.iter().rev().find(|&&(end, p)| self.case_ok_at(text, tokens, i, end as usize, p)).copied()
            });
            match end {
                Some((end, p)) => {
                    spans.push((i as u32, end, p));
                    out.push(self.to_match(tokens, i, end as usize, p));
                    i = end as usize;
                }
                None => i += 1,
            }
        }
        if self.abbreviations {
            resolve_abbreviations(text, out);
        }
    }

    /// Like [`extract_all`](Self::extract_all), reusing buffers; `out` is cleared first.
    pub fn extract_all_with(&self, text: &str, scratch: &mut Scratch, out: &mut Vec<Match>) {
        self.extract_with(text, scratch, out);
        let Scratch { tokens, ids, spans, path, .. } = scratch;
        for &(first, end, p) in spans.iter() {
            // The longest proper prefix that is a term, when a chemical names the protein
            // acting on it (`creatine` in `creatine kinase`, `calcium` in `calcium channel`).
            if !self.patterns.has(p, PROTEIN) {
                continue;
            }
            let first = first as usize;
            if self.walk(tokens, ids, first, end as usize - 1, path).is_none() {
                continue;
            }
            let inner = path
                .iter()
                .rev()
                .find(|&&(e, q)| self.patterns.has(q, CHEMICAL) && self.case_ok_at(text, tokens, first, e as usize, q));
            if let Some(&(e, q)) = inner {
                out.push(self.to_match(tokens, first, e as usize, q));
            }
        }
        out.sort_unstable_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
        out.dedup();
    }

    /// Walks the trie from token `i`, never past token `limit` or a hard break, collecting
    /// the terms met in `path` (shortest first). `None` if no term starts at `i`.
    #[inline]
    fn walk(&self, tokens: &[Token], ids: &[u32], i: usize, limit: usize, path: &mut Vec<(u32, u32)>) -> Option<()> {
        path.clear();
        let mut node = self.trie.start(ids[i])?;
        let mut j = i + 1;
        loop {
            if let Some(p) = self.trie.terminal(node) {
                path.push((j as u32, p));
            }
            if j >= limit || tokens[j].hard_before {
                break;
            }
            match self.trie.child(node, ids[j]) {
                Some(next) => node = next,
                None => break,
            }
            j += 1;
        }
        (!path.is_empty()).then_some(())
    }

    /// Looks every token up in the vocabulary: fills `scratch.tokens` and `scratch.ids`.
    fn lookup(&self, text: &str, scratch: &mut Scratch) {
        let Scratch { tokens, ids, key, .. } = scratch;
        tokens.clear();
        ids.clear();
        tokenize_with(text, |tok, packed| {
            tokens.push(tok);
            ids.push(self.id_of(text, &tok, packed, key));
        });
    }

    /// The vocabulary id of a token, `TRIE_NONE` if unknown. `packed` is the token
    /// lower-cased and packed by the tokenizer (ASCII tokens of at most 16 bytes).
    #[inline]
    fn id_of(&self, text: &str, tok: &Token, packed: Option<u128>, key: &mut String) -> u32 {
        // Fast path: an ASCII token found as written, when that form is its own normal form
        // (most known tokens), needs neither a String nor normalisation.
        if let Some(packed) = packed {
            let n = (tok.end - tok.start) as usize;
            let found = self.vocab.get_packed(packed, n);
            if let Some(v) = found.filter(|v| v & FIXED != 0) {
                return v & !FIXED;
            }
            // Most misses are words no rule of `normalize` touches: they stay unknown.
            if !may_normalize(&packed.to_le_bytes()[..n]) {
                return found.map_or(TRIE_NONE, |v| v & !FIXED);
            }
            // Reuse the lower-cased bytes.
            key.clear();
            key.extend(packed.to_le_bytes()[..n].iter().map(|&b| char::from(b)));
            normalize_lowercase(key);
            return self.vocab.get(key).map_or(TRIE_NONE, |v| v & !FIXED);
        }
        normalize(&text[tok.start as usize..tok.end as usize], key);
        self.vocab.get(key).map_or(TRIE_NONE, |v| v & !FIXED)
    }

    #[inline]
    fn case_ok_at(&self, text: &str, tokens: &[Token], first: usize, end: usize, p: u32) -> bool {
        self.patterns.case_ok(p, &text[tokens[first].start as usize..tokens[end - 1].end as usize])
    }

    fn to_match(&self, tokens: &[Token], first: usize, end: usize, p: u32) -> Match {
        Match {
            descriptor: DescriptorId(self.patterns.descriptor[p as usize]),
            start: tokens[first].start as usize,
            end: tokens[end - 1].end as usize,
        }
    }
}

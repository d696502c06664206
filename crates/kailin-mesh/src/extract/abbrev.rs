//! Abbreviations a text defines (`Parkinson disease (PD)`), resolved for the rest of it.

use super::Match;
use crate::mesh::DescriptorId;

/// Adds mentions of abbreviations defined as `LONG FORM (ABBR)` right after a match: the
/// definition binds `ABBR` to the long form's descriptor for the whole text, and overrides
/// a dictionary match of exactly the same span.
pub(super) fn resolve_abbreviations(text: &str, out: &mut Vec<Match>) {
    let mut defs: Vec<(&str, DescriptorId)> = Vec::new();
    for m in out.iter() {
        let rest = text[m.end..].trim_start_matches([' ', '\t']);
        let Some(inner) = rest.strip_prefix('(') else {
            continue;
        };
        let Some(close) = inner.find([')', ';', ',']) else {
            continue;
        };
        let abbr = inner[..close].trim();
        let long = &text[m.start..m.end];
        let plausible = (2..=10).contains(&abbr.len())
            && abbr.chars().any(|c| c.is_uppercase())
            && abbr.chars().all(|c| c.is_alphanumeric() || c == '-')
            && abbr
                .chars()
                .next()
                .map(|c| c.to_lowercase().eq(long.chars().next().into_iter().flat_map(char::to_lowercase)))
                == Some(true)
            && !abbr.eq_ignore_ascii_case(long);
        if plausible && !defs.iter().any(|(a, _)| *a == abbr) {
            defs.push((abbr, m.descriptor));
        }
    }
    if defs.is_empty() {
        return;
    }
    let mut added = Vec::new();
    for (abbr, descriptor) in defs {
        for (start, _) in text.match_indices(abbr) {
            let end = start + abbr.len();
            let before = text[..start].chars().next_back();
            let after = text[end..].chars().next();
            if before.is_some_and(char::is_alphanumeric) || after.is_some_and(char::is_alphanumeric) {
                continue;
            }
            match out.iter_mut().find(|m| m.start < end && start < m.end) {
                Some(m) if m.start == start && m.end == end => m.descriptor = descriptor,
                Some(_) => {}
                None => added.push(Match { descriptor, start, end }),
            }
        }
    }
    out.extend(added);
    out.sort_unstable_by_key(|m| m.start);
}

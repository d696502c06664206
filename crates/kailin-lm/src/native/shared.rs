//! Prompt passes that compute what prompts share once: identical prompts (n samples of one
//! prompt) run once, and a prefix common to all of a call's prompts (a fixed instruction)
//! runs once before each prompt's own tokens; its keys and values are copied into every
//! sequence's cache.

use std::collections::HashMap;

use super::{NativeLlama, SeqCache};
use crate::error::Result;

/// A common prefix shorter than this is run with each prompt (the copy and the extra pass
/// would cost more than they save).
const MIN_SHARED: usize = 16;

impl NativeLlama {
    /// Runs `prompts` (each non-empty) into new caches with room for `extra` more positions
    /// each, and returns the caches and the logits `[prompts, vocab]` at each prompt's last
    /// position: what [`forward`](Self::forward) returns for the same call, with shared work
    /// done once (equal up to the products' rounding: a row's product may take another path
    /// in a pass of another size).
    pub(crate) fn prefill_shared(&self, prompts: &[&[u32]], extra: usize) -> Result<(Vec<SeqCache>, Vec<f32>)> {
        // Identical prompts: the first of each runs.
        let mut first: HashMap<&[u32], usize> = HashMap::new();
        let mut unique: Vec<&[u32]> = Vec::new();
        let of: Vec<usize> = prompts
            .iter()
            .map(|&p| {
                *first.entry(p).or_insert_with(|| {
                    unique.push(p);
                    unique.len() - 1
                })
            })
            .collect();
        // What every distinct prompt starts with, leaving each at least its last token.
        let shortest = unique.iter().map(|p| p.len()).min().unwrap_or(0);
        let common = match unique.split_first() {
            Some((head, rest)) if !rest.is_empty() => {
                (0..shortest - 1).take_while(|&i| rest.iter().all(|p| p[i] == head[i])).count()
            }
            _ => 0,
        };
        let (mut caches, logits) = if common >= MIN_SHARED {
            let prefix = &unique[0][..common];
            let mut shared = vec![self.cache(common)];
            self.forward(&[prefix], &mut shared, &[vec![]])?;
            let mut caches: Vec<SeqCache> =
                unique.iter().map(|p| shared[0].with_capacity(p.len() + extra, self.head_dim)).collect();
            let rests: Vec<&[u32]> = unique.iter().map(|p| &p[common..]).collect();
            let want: Vec<Vec<usize>> = rests.iter().map(|r| vec![r.len() - 1]).collect();
            let logits = self.forward(&rests, &mut caches, &want)?;
            (caches, logits)
        } else {
            let mut caches: Vec<SeqCache> = unique.iter().map(|p| self.cache(p.len() + extra)).collect();
            let want: Vec<Vec<usize>> = unique.iter().map(|p| vec![p.len() - 1]).collect();
            let logits = self.forward(&unique, &mut caches, &want)?;
            (caches, logits)
        };
        if unique.len() == prompts.len() {
            return Ok((caches, logits));
        }
        // Every prompt its own cache and row: its first occurrence's, copied (moved at the
        // last use).
        let v = self.vocab;
        let mut uses = vec![0usize; unique.len()];
        for &u in &of {
            uses[u] += 1;
        }
        let mut slots: Vec<Option<SeqCache>> = caches.drain(..).map(Some).collect();
        let mut rows = Vec::with_capacity(prompts.len() * v);
        for &u in &of {
            rows.extend_from_slice(&logits[u * v..(u + 1) * v]);
            uses[u] -= 1;
            caches.extend(if uses[u] == 0 { slots[u].take() } else { slots[u].clone() });
        }
        Ok((caches, rows))
    }
}

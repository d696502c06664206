//! A trie over token ids: the dictionary of the extractor.
//!
//! Terms are sequences of token ids. The root's children sit in a dense array indexed by
//! token id (one read rejects a token that starts no term, the common case); deeper nodes keep
//! their children as sorted `(token, node)` runs in one flat array (CSR).

use rustc_hash::FxHashMap;

/// "No node" / "no pattern".
pub(crate) const NONE: u32 = u32::MAX;

#[derive(Debug, Clone)]
pub(crate) struct TokenTrie {
    /// Node reached from the root by each token id, or `NONE`.
    root: Vec<u32>,
    /// Per node, its children's range and terminal together: one cache line per step.
    nodes: Vec<Node>,
    /// Children of all nodes, sorted by token within each node's range.
    child_tok: Vec<u32>,
    child_node: Vec<u32>,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    /// A one-hash Bloom signature of the children's tokens: most failed steps (the next
    /// token continues no term) are rejected here, without searching the child run.
    child_bloom: u64,
    child_start: u32,
    child_len: u32,
    /// Pattern ending here, or `NONE`.
    terminal: u32,
}

#[inline]
fn bloom_bit(tok: u32) -> u64 {
    1 << (tok.wrapping_mul(0x9E37_79B1) >> 26)
}

impl TokenTrie {
    /// Builds the trie of `terms` (token-id sequences, none empty); term `i` is pattern `i`.
    /// `vocab` bounds the token ids.
    pub(crate) fn new(terms: &[Vec<u32>], vocab: usize) -> TokenTrie {
        // Build with hash maps, then freeze into flat arrays.
        let mut root = vec![NONE; vocab];
        let mut edges: FxHashMap<(u32, u32), u32> = FxHashMap::default();
        let mut terminal: Vec<u32> = Vec::new();
        for (pattern, term) in terms.iter().enumerate() {
            let mut node = NONE;
            for (k, &tok) in term.iter().enumerate() {
                let slot = if k == 0 { root[tok as usize] } else { edges.get(&(node, tok)).copied().unwrap_or(NONE) };
                node = if slot == NONE {
                    let fresh = terminal.len() as u32;
                    terminal.push(NONE);
                    if k == 0 {
                        root[tok as usize] = fresh;
                    } else {
                        edges.insert((node, tok), fresh);
                    }
                    fresh
                } else {
                    slot
                };
            }
            if node != NONE && terminal[node as usize] == NONE {
                terminal[node as usize] = pattern as u32;
            }
        }
        let mut sorted: Vec<((u32, u32), u32)> = edges.into_iter().collect();
        sorted.sort_unstable();
        let n = terminal.len();
        let mut child_off = vec![0u32; n + 1];
        for &((parent, _), _) in &sorted {
            child_off[parent as usize + 1] += 1;
        }
        for i in 0..n {
            child_off[i + 1] += child_off[i];
        }
        let child_tok = sorted.iter().map(|&((_, tok), _)| tok).collect();
        let child_node = sorted.iter().map(|&(_, node)| node).collect();
        let mut nodes: Vec<Node> = (0..n)
            .map(|i| Node {
                child_bloom: 0,
                child_start: child_off[i],
                child_len: child_off[i + 1] - child_off[i],
                terminal: terminal[i],
            })
            .collect();
        for &((parent, tok), _) in &sorted {
            nodes[parent as usize].child_bloom |= bloom_bit(tok);
        }
        TokenTrie { root, nodes, child_tok, child_node }
    }

    /// The node reached from the root by `tok`.
    #[inline]
    pub(crate) fn start(&self, tok: u32) -> Option<u32> {
        self.root.get(tok as usize).copied().filter(|&n| n != NONE)
    }

    /// The child of `node` along `tok`.
    #[inline]
    pub(crate) fn child(&self, node: u32, tok: u32) -> Option<u32> {
        let n = self.nodes[node as usize];
        if n.child_bloom & bloom_bit(tok) == 0 {
            return None;
        }
        let range = n.child_start as usize..(n.child_start + n.child_len) as usize;
        let toks = &self.child_tok[range.clone()];
        let at = if toks.len() <= 8 { toks.iter().position(|&t| t == tok) } else { toks.binary_search(&tok).ok() };
        at.map(|i| self.child_node[range.start + i])
    }

    /// The pattern ending at `node`, if any.
    #[inline]
    pub(crate) fn terminal(&self, node: u32) -> Option<u32> {
        Some(self.nodes[node as usize].terminal).filter(|&p| p != NONE)
    }

    /// Whether any term continues past `node`.
    #[inline]
    pub(crate) fn has_children(&self, node: u32) -> bool {
        self.nodes[node as usize].child_len > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_nodes_are_searched() {
        let terms: Vec<Vec<u32>> = (0..40).map(|t| vec![1, 10 + t]).collect();
        let t = TokenTrie::new(&terms, 60);
        let n1 = t.start(1).unwrap();
        for k in 0..40 {
            assert_eq!(t.terminal(t.child(n1, 10 + k).unwrap()), Some(k));
        }
        assert_eq!(t.child(n1, 5), None);
    }

    #[test]
    fn walks_prefixes_and_branches() {
        let terms = vec![vec![1, 2], vec![1, 2, 3], vec![1, 4], vec![5]];
        let t = TokenTrie::new(&terms, 6);
        let n1 = t.start(1).unwrap();
        assert_eq!(t.terminal(n1), None);
        let n12 = t.child(n1, 2).unwrap();
        assert_eq!(t.terminal(n12), Some(0));
        assert_eq!(t.terminal(t.child(n12, 3).unwrap()), Some(1));
        assert_eq!(t.terminal(t.child(n1, 4).unwrap()), Some(2));
        assert_eq!(t.terminal(t.start(5).unwrap()), Some(3));
        assert_eq!(t.child(n1, 5), None);
        assert!(t.has_children(n1) && !t.has_children(t.start(5).unwrap()));
        assert_eq!(t.start(0), None);
        assert_eq!(t.start(99), None);
    }
}

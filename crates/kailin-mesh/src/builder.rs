//! `MeshBuilder`: collects descriptor records from any source and validates them into a
//! [`Mesh`].

use petgraph::graph::DiGraph;
use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::ic::InformationContent;
use crate::mesh::{DescriptorId, Mesh, NONE, Span, Tables};

/// One descriptor as read from a source, before validation.
#[derive(Debug, Clone)]
struct Record {
    ui: String,
    name: String,
    entry_terms: Vec<String>,
    tree_numbers: Vec<String>,
    /// Line (file input) or 1-based record number (in-memory input), for error messages.
    line: u64,
}

/// Collects descriptors and validates them into a [`Mesh`].
///
/// ```
/// use kailin_mesh::MeshBuilder;
/// let mut b = MeshBuilder::new();
/// b.add("D1", "Diseases", ["Disorders"], ["C01"]);
/// b.add("D2", "Lung Diseases", [] as [&str; 0], ["C01.001"]);
/// let mesh = b.build()?;
/// assert_eq!(mesh.len(), 2);
/// # Ok::<(), kailin_mesh::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct MeshBuilder {
    origin: String,
    records: Vec<Record>,
}

impl Default for MeshBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl MeshBuilder {
    /// An empty builder whose errors name `<memory>` as the origin.
    pub fn new() -> Self {
        MeshBuilder { origin: "<memory>".to_owned(), records: Vec::new() }
    }

    /// Names the source (a path) in error messages.
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = origin.into();
        self
    }

    /// Adds one descriptor. Validation (duplicate UIs, tree numbers, missing parents) happens
    /// in [`build`](Self::build).
    pub fn add<E, T>(
        &mut self,
        ui: impl Into<String>,
        name: impl Into<String>,
        entry_terms: E,
        tree_numbers: T,
    ) -> &mut Self
    where
        E: IntoIterator,
        E::Item: Into<String>,
        T: IntoIterator,
        T::Item: Into<String>,
    {
        let line = self.records.len() as u64 + 1;
        let entry_terms = entry_terms.into_iter().map(Into::into).collect();
        let tree_numbers = tree_numbers.into_iter().map(Into::into).collect();
        self.add_at(line, ui.into(), name.into(), entry_terms, tree_numbers)
    }

    /// Like [`add`](Self::add), with the source line for error messages.
    pub(crate) fn add_at(
        &mut self,
        line: u64,
        ui: String,
        name: String,
        entry_terms: Vec<String>,
        tree_numbers: Vec<String>,
    ) -> &mut Self {
        self.records.push(Record { ui, name, entry_terms, tree_numbers, line });
        self
    }

    /// Adds a tree number to record `index` (the ASCII tree format lists one tree number per
    /// line, so descriptors grow as the file is read).
    pub(crate) fn push_tree_number(&mut self, index: usize, tree: String) {
        self.records[index].tree_numbers.push(tree);
    }

    /// Validates the records and builds the hierarchy.
    ///
    /// Errors: no records; an empty or duplicate UI; a malformed tree number; a tree number
    /// owned twice; a tree number whose parent no descriptor owns. A descriptor-level cycle
    /// is accepted (real MeSH has one) and reported by [`Mesh::cycles`].
    pub fn build(self) -> Result<Mesh> {
        let origin = self.origin;
        if self.records.is_empty() {
            return Err(Error::Empty { origin });
        }
        if self.records.len() >= NONE as usize {
            return Err(Error::parse(&origin, 0, "more than 2^32-1 descriptors"));
        }
        let mut by_ui: FxHashMap<&str, usize> = FxHashMap::default();
        for (i, r) in self.records.iter().enumerate() {
            if r.ui.trim().is_empty() {
                return Err(Error::parse(&origin, r.line, "descriptor without a UI"));
            }
            if let Some(&j) = by_ui.get(r.ui.as_str()) {
                return Err(Error::DuplicateUi {
                    origin,
                    ui: r.ui.clone(),
                    first: self.records[j].line,
                    second: r.line,
                });
            }
            by_ui.insert(&r.ui, i);
            for tree in &r.tree_numbers {
                if !valid_tree_number(tree) {
                    return Err(Error::BadTreeNumber { origin, line: r.line, ui: r.ui.clone(), tree: tree.clone() });
                }
            }
        }

        let mut t = Tables::default();
        let push = |arena: &mut String, s: &str| {
            let span = Span { start: arena.len() as u32, len: s.len() as u32 };
            arena.push_str(s);
            span
        };
        t.entry_off.push(0);
        t.tree_off.push(0);
        for (d, r) in self.records.iter().enumerate() {
            t.ui.push(push(&mut t.strings, &r.ui));
            t.name.push(push(&mut t.strings, &r.name));
            for e in &r.entry_terms {
                t.entries.push(push(&mut t.strings, e));
            }
            t.entry_off.push(t.entries.len() as u32);
            let mut seen: Vec<&str> = Vec::new();
            for tree in &r.tree_numbers {
                // A tree number listed twice for the same descriptor is harmless: keep one.
                if seen.contains(&tree.as_str()) {
                    continue;
                }
                seen.push(tree);
                t.tree.push(push(&mut t.strings, tree));
                t.tree_owner.push(d as u32);
            }
            t.tree_off.push(t.tree.len() as u32);
        }
        if t.strings.len() >= u32::MAX as usize {
            return Err(Error::parse(&origin, 0, "string data exceeds 4 GiB"));
        }

        // Tree-number rows: owner uniqueness and parents.
        let mut row_of: FxHashMap<&str, u32> = FxHashMap::default();
        for (row, span) in t.tree.iter().enumerate() {
            let tree = span.get(&t.strings);
            if let Some(&prev) = row_of.get(tree) {
                let ui = |row: u32| self.records[t.tree_owner[row as usize] as usize].ui.clone();
                return Err(Error::DuplicateTreeNumber {
                    origin,
                    tree: tree.to_owned(),
                    first: ui(prev),
                    second: ui(row as u32),
                });
            }
            row_of.insert(tree, row as u32);
        }
        t.tree_parent = Vec::with_capacity(t.tree.len());
        for (row, span) in t.tree.iter().enumerate() {
            let tree = span.get(&t.strings);
            let parent = match tree.rfind('.') {
                None => NONE,
                Some(cut) => match row_of.get(&tree[..cut]) {
                    Some(&p) => p,
                    None => {
                        return Err(Error::MissingParent {
                            origin,
                            ui: self.records[t.tree_owner[row] as usize].ui.clone(),
                            tree: tree.to_owned(),
                            parent: tree[..cut].to_owned(),
                        });
                    }
                },
            };
            t.tree_parent.push(parent);
        }

        // Anc(d) by tree prefixes: walk each tree number's parent chain.
        t.anc_off.push(0);
        let mut set: Vec<u32> = Vec::new();
        for d in 0..t.len() {
            set.clear();
            set.push(d as u32);
            for row in Tables::range(&t.tree_off, d) {
                let mut r = t.tree_parent[row];
                while r != NONE {
                    set.push(t.tree_owner[r as usize]);
                    r = t.tree_parent[r as usize];
                }
            }
            set.sort_unstable();
            set.dedup();
            t.anc.extend_from_slice(&set);
            t.anc_off.push(t.anc.len() as u32);
        }

        // Lookup indices.
        t.ui_index = (0..t.len() as u32).collect();
        t.ui_index.sort_unstable_by(|&a, &b| t.ui[a as usize].get(&t.strings).cmp(t.ui[b as usize].get(&t.strings)));
        let mut rows: Vec<(String, u32, u8)> = Vec::with_capacity(t.len() + t.entries.len());
        for d in 0..t.len() {
            rows.push((t.name[d].get(&t.strings).trim().to_lowercase(), d as u32, 1));
            for e in &t.entries[Tables::range(&t.entry_off, d)] {
                rows.push((e.get(&t.strings).trim().to_lowercase(), d as u32, 0));
            }
        }
        rows.retain(|r| !r.0.is_empty());
        // Equal keys: preferred names first, then ascending id.
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.2.cmp(&a.2)).then(a.1.cmp(&b.1)));
        rows.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
        for (key, d, is_name) in rows {
            t.key_span.push(push(&mut t.keys, &key));
            t.key_desc.push(d);
            t.key_is_name.push(is_name);
        }

        let graph = build_graph(&t);
        if petgraph::algo::is_cyclic_directed(&graph) {
            tracing::debug!(origin = %origin, "the descriptor graph has a cycle (see Mesh::cycles); closure ancestry treats its members as one");
        }
        finish(t, graph, origin)
    }
}

/// Derived state shared by the builder and the cache loader.
pub(crate) fn finish(t: Tables, graph: DiGraph<DescriptorId, ()>, origin: String) -> Result<Mesh> {
    let intrinsic = InformationContent::intrinsic_from_tables(&t, &graph, crate::Ancestry::TreePrefix);
    Ok(Mesh { tables: t, graph, intrinsic, origin, ui_lookup: std::sync::OnceLock::new() })
}

/// Parent → child edges from the tree table, deduplicated.
pub(crate) fn build_graph(t: &Tables) -> DiGraph<DescriptorId, ()> {
    let mut edges: Vec<(u32, u32)> = t
        .tree_parent
        .iter()
        .enumerate()
        .filter(|&(_, &p)| p != NONE)
        .map(|(row, &p)| (t.tree_owner[p as usize], t.tree_owner[row]))
        .collect();
    edges.sort_unstable();
    edges.dedup();
    let mut graph = DiGraph::with_capacity(t.len(), edges.len());
    for d in 0..t.len() as u32 {
        graph.add_node(DescriptorId(d));
    }
    graph.extend_with_edges(edges);
    graph
}

/// `X00.000.000`: dot-separated, non-empty segments of ASCII letters and digits.
fn valid_tree_number(tree: &str) -> bool {
    !tree.is_empty() && tree.split('.').all(|seg| !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_number_syntax() {
        assert!(valid_tree_number("C04.557.337"));
        assert!(valid_tree_number("A01"));
        assert!(!valid_tree_number(""));
        assert!(!valid_tree_number("C04..557"));
        assert!(!valid_tree_number("C04.557."));
        assert!(!valid_tree_number("C04 557"));
    }

    #[test]
    fn duplicate_ui_names_both_records() {
        let mut b = MeshBuilder::new();
        b.add("D1", "A", [""; 0], ["A01"]);
        b.add("D1", "B", [""; 0], ["A02"]);
        let err = b.build().unwrap_err().to_string();
        assert!(err.contains("duplicate descriptor UI D1 (records 1 and 2)"), "{err}");
    }

    #[test]
    fn missing_parent_is_reported() {
        let mut b = MeshBuilder::new();
        b.add("D1", "A", [""; 0], ["A01"]);
        b.add("D2", "B", [""; 0], ["A02.005"]);
        let err = b.build().unwrap_err();
        assert!(matches!(&err, Error::MissingParent { parent, ui, .. } if parent == "A02" && ui == "D2"), "{err}");
    }

    #[test]
    fn tree_number_owned_twice() {
        let mut b = MeshBuilder::new();
        b.add("D1", "A", [""; 0], ["A01"]);
        b.add("D2", "B", [""; 0], ["A01"]);
        assert!(matches!(b.build(), Err(Error::DuplicateTreeNumber { .. })));
    }

    #[test]
    fn cycle_is_accepted_and_reported() {
        // D1 sits under D2 (via B01.001) and D2 under D1 (via A01.001), as in MeSH 2024's
        // Ocular Motility Disorders / Strabismus.
        let mut b = MeshBuilder::new();
        b.add("D1", "A", [""; 0], ["A01", "B01.001"]);
        b.add("D2", "B", [""; 0], ["B01", "A01.001"]);
        b.add("D3", "C", [""; 0], ["A01.001.001"]);
        let mesh = b.build().unwrap();
        assert_eq!(mesh.cycles(), vec![vec![DescriptorId(0), DescriptorId(1)]]);
        let closure = crate::InformationContent::intrinsic(&mesh, crate::Ancestry::Closure);
        // Both members of the cycle are ancestors of D3 and of each other: same IC.
        assert_eq!(closure.get(DescriptorId(0)), closure.get(DescriptorId(1)));
        assert!(closure.get(DescriptorId(2)) > closure.get(DescriptorId(0)));
    }

    #[test]
    fn empty_is_rejected() {
        assert!(matches!(MeshBuilder::new().build(), Err(Error::Empty { .. })));
    }
}

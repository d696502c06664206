//! The loaded hierarchy: descriptors in a string arena, the tree-number table, the ancestor
//! lists, lookup indices and the `petgraph` DAG.

use std::path::Path;

use petgraph::graph::{DiGraph, NodeIndex};

use crate::error::{Error, Result};
use crate::ic::{Ancestry, InformationContent};

/// Index of a descriptor inside one [`Mesh`]; stable for the life of that `Mesh` (and of any
/// cache written from it), meaningless across different hierarchies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct DescriptorId(pub(crate) u32);

impl DescriptorId {
    /// The 0-based position of the descriptor in its hierarchy (input order).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// `NONE` marks "no parent" in the tree-number table.
pub(crate) const NONE: u32 = u32::MAX;

/// A byte range in one of the string arenas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) len: u32,
}

impl Span {
    pub(crate) fn get(self, arena: &str) -> &str {
        // Spans are validated when built or loaded from a cache, so this never falls back.
        arena.get(self.start as usize..(self.start + self.len) as usize).unwrap_or("")
    }
}

/// The raw tables of a hierarchy; everything a cache stores. Kept separate from the derived
/// state (graph, information content) so that builder, cache and `Mesh` share one layout.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tables {
    /// Every UI, name, entry term and tree number, concatenated.
    pub(crate) strings: String,
    pub(crate) ui: Vec<Span>,
    pub(crate) name: Vec<Span>,
    /// CSR: entry terms of descriptor `d` are `entries[entry_off[d]..entry_off[d+1]]`.
    pub(crate) entry_off: Vec<u32>,
    pub(crate) entries: Vec<Span>,
    /// CSR: tree numbers of descriptor `d` are rows `tree_off[d]..tree_off[d+1]` of the tree table.
    pub(crate) tree_off: Vec<u32>,
    pub(crate) tree: Vec<Span>,
    /// Tree-number row of the parent (the number without its last segment), or `NONE`.
    pub(crate) tree_parent: Vec<u32>,
    /// CSR: `Anc(d)` by the tree-prefix definition, descriptor ids ascending, `d` included.
    pub(crate) anc_off: Vec<u32>,
    pub(crate) anc: Vec<u32>,
    /// Descriptor ids sorted by UI.
    pub(crate) ui_index: Vec<u32>,
    /// Lower-cased names and entry terms, concatenated.
    pub(crate) keys: String,
    /// Lookup rows sorted by key: (key span in `keys`, descriptor, 1 if preferred name else 0).
    pub(crate) key_span: Vec<Span>,
    pub(crate) key_desc: Vec<u32>,
    pub(crate) key_is_name: Vec<u8>,
    /// Tree-number row owning each row's descriptor (derived from `tree_off`, kept for speed).
    pub(crate) tree_owner: Vec<u32>,
}

impl Tables {
    pub(crate) fn len(&self) -> usize {
        self.ui.len()
    }

    pub(crate) fn range(off: &[u32], d: usize) -> std::ops::Range<usize> {
        off[d] as usize..off[d + 1] as usize
    }

    /// Ancestor lists under `ancestry`, as CSR over descriptor ids (each list ascending,
    /// the descriptor itself included).
    pub(crate) fn ancestors(&self, graph: &DiGraph<DescriptorId, ()>, ancestry: Ancestry) -> (Vec<u32>, Vec<u32>) {
        match ancestry {
            Ancestry::TreePrefix => (self.anc_off.clone(), self.anc.clone()),
            Ancestry::Closure => closure_ancestors(graph, self.len()),
        }
    }
}

/// Transitive closure of the parent relation. Members of a cycle (MeSH 2024 has one) share
/// one ancestor set: strongly connected components are processed parents-first.
fn closure_ancestors(graph: &DiGraph<DescriptorId, ()>, n: usize) -> (Vec<u32>, Vec<u32>) {
    // Tarjan yields components children-first (edges run parent -> child); reverse it.
    let sccs = petgraph::algo::tarjan_scc(graph);
    let mut sets: Vec<Vec<u32>> = vec![Vec::new(); n];
    for scc in sccs.iter().rev() {
        let mut set: Vec<u32> = scc.iter().map(|v| v.index() as u32).collect();
        for &v in scc {
            for parent in graph.neighbors_directed(v, petgraph::Direction::Incoming) {
                if !scc.contains(&parent) {
                    set.extend_from_slice(&sets[parent.index()]);
                }
            }
        }
        set.sort_unstable();
        set.dedup();
        for &v in scc {
            sets[v.index()] = set.clone();
        }
    }
    let mut off = Vec::with_capacity(n + 1);
    let mut flat = Vec::new();
    off.push(0);
    for set in sets {
        flat.extend_from_slice(&set);
        off.push(flat.len() as u32);
    }
    (off, flat)
}

/// The MeSH descriptor hierarchy.
///
/// Built by [`MeshBuilder`](crate::MeshBuilder) or loaded with [`Mesh::load`] from NLM's
/// descriptor XML, NLM's ASCII tree file, the TSV layout, or this crate's binary cache.
/// Cheap queries: lookups by UI and term, tree numbers, ancestors, the `petgraph` DAG, and the
/// intrinsic [`InformationContent`] (precomputed).
#[derive(Debug, Clone)]
pub struct Mesh {
    pub(crate) tables: Tables,
    pub(crate) graph: DiGraph<DescriptorId, ()>,
    pub(crate) intrinsic: InformationContent,
    pub(crate) origin: String,
    /// UI → descriptor, made on the first [`Mesh::by_ui`]: a table indexed by the UI's number
    /// instead of a binary search over the sorted UIs (batch scoring looks up two UIs per pair).
    pub(crate) ui_lookup: std::sync::OnceLock<crate::ui::UiLookup>,
}

/// A borrowed view of one descriptor.
#[derive(Debug, Clone, Copy)]
pub struct Descriptor<'m> {
    mesh: &'m Mesh,
    id: DescriptorId,
}

impl<'m> Descriptor<'m> {
    /// The descriptor's id in its hierarchy.
    pub fn id(&self) -> DescriptorId {
        self.id
    }
    /// The descriptor UI (`D009369`); for a hierarchy read from an ASCII tree file, which
    /// carries no UIs, this is the preferred name.
    pub fn ui(&self) -> &'m str {
        self.mesh.tables.ui[self.id.index()].get(&self.mesh.tables.strings)
    }
    /// The preferred name (`Neoplasms`).
    pub fn name(&self) -> &'m str {
        self.mesh.tables.name[self.id.index()].get(&self.mesh.tables.strings)
    }
    /// Entry terms (synonyms) other than the preferred name.
    pub fn entry_terms(&self) -> impl ExactSizeIterator<Item = &'m str> + 'm {
        let t = &self.mesh.tables;
        t.entries[Tables::range(&t.entry_off, self.id.index())].iter().map(|s| s.get(&t.strings))
    }
    /// Tree numbers (`C04`, `C04.557`…); empty for descriptors outside the hierarchy.
    pub fn tree_numbers(&self) -> impl ExactSizeIterator<Item = &'m str> + 'm {
        let t = &self.mesh.tables;
        t.tree[Tables::range(&t.tree_off, self.id.index())].iter().map(|s| s.get(&t.strings))
    }
    /// Whether the descriptor has a tree number (Female and Male, for instance, have none).
    pub fn in_hierarchy(&self) -> bool {
        let r = Tables::range(&self.mesh.tables.tree_off, self.id.index());
        !r.is_empty()
    }
    /// Whether one of the tree numbers starts with the category letter (`'C'` = Diseases).
    pub fn in_category(&self, letter: char) -> bool {
        self.tree_numbers().any(|t| t.starts_with(letter))
    }
}

impl Mesh {
    /// Loads a hierarchy from `path`, detecting the format: NLM descriptor XML (plain or
    /// `.gz`), NLM ASCII tree file (`Name;TreeNumber`), the TSV layout
    /// (`UI<TAB>name<TAB>entry|terms<TAB>tree|numbers[<TAB>…]`) or a cache written by
    /// [`Mesh::save_cache`].
    pub fn load(path: impl AsRef<Path>) -> Result<Mesh> {
        crate::load::load(path.as_ref())
    }

    /// Writes the compact binary cache; [`Mesh::load`] reads it back memory-mapped.
    /// The write is atomic: a temporary file is renamed into place.
    pub fn save_cache(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::cache::save(self, path.as_ref())
    }

    /// Where this hierarchy came from (a path, or `<memory>`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Number of descriptors.
    pub fn len(&self) -> usize {
        self.tables.len()
    }

    /// Whether there is no descriptor (never true for a built `Mesh`).
    pub fn is_empty(&self) -> bool {
        self.tables.len() == 0
    }

    /// Number of descriptors with at least one tree number (`N` of the intrinsic IC).
    pub fn descriptors_in_tree(&self) -> usize {
        (0..self.len()).filter(|&d| !Tables::range(&self.tables.tree_off, d).is_empty()).count()
    }

    /// Number of tree numbers.
    pub fn tree_number_count(&self) -> usize {
        self.tables.tree.len()
    }

    /// Number of entry terms (preferred names not counted).
    pub fn entry_term_count(&self) -> usize {
        self.tables.entries.len()
    }

    /// All descriptor ids, in input order.
    pub fn ids(&self) -> impl ExactSizeIterator<Item = DescriptorId> + use<> {
        (0..self.len() as u32).map(DescriptorId)
    }

    /// The descriptor behind `id`.
    ///
    /// # Panics
    /// If `id` comes from another hierarchy with more descriptors.
    pub fn descriptor(&self, id: DescriptorId) -> Descriptor<'_> {
        assert!(id.index() < self.len(), "descriptor id from another hierarchy");
        Descriptor { mesh: self, id }
    }

    /// Finds a descriptor by UI (exact, e.g. `D009369`).
    pub fn by_ui(&self, ui: &str) -> Option<DescriptorId> {
        let lookup = self.ui_lookup.get_or_init(|| {
            let t = &self.tables;
            crate::ui::UiLookup::new(t.ui_index.iter().map(|&d| (t.ui[d as usize].get(&t.strings), d)))
        });
        lookup.get(ui).map(DescriptorId)
    }

    /// Finds a descriptor by preferred name or entry term, case-insensitively. When a term
    /// belongs to several descriptors, a preferred name wins, then the lowest id.
    pub fn by_term(&self, term: &str) -> Option<DescriptorId> {
        self.all_by_term(term).next()
    }

    /// Every descriptor a term names (preferred names first), case-insensitively.
    pub fn all_by_term(&self, term: &str) -> impl Iterator<Item = DescriptorId> + '_ {
        let key = term.trim().to_lowercase();
        let t = &self.tables;
        let lo = t.key_span.partition_point(|s| s.get(&t.keys) < key.as_str());
        let hi = lo + t.key_span[lo..].partition_point(|s| s.get(&t.keys) == key.as_str());
        // Rows with equal keys are sorted preferred-name first, then by id (see builder).
        (lo..hi).map(move |i| DescriptorId(t.key_desc[i]))
    }

    /// Finds a descriptor by UI, or else by name or entry term.
    pub fn resolve(&self, s: &str) -> Result<DescriptorId> {
        self.by_ui(s.trim()).or_else(|| self.by_term(s)).ok_or_else(|| Error::UnknownDescriptor(s.to_owned()))
    }

    /// The hierarchy as a `petgraph` graph: node `i` carries `DescriptorId(i)`; an edge runs
    /// from parent to child for every tree number whose parent number the parent owns.
    ///
    /// It is a DAG except where the source itself has a cycle: MeSH 2024 has exactly one
    /// (Ocular Motility Disorders, `C10.292.562`, also sits at `C10.292.562.887.825` under its
    /// own child Strabismus). See [`Mesh::cycles`].
    pub fn graph(&self) -> &DiGraph<DescriptorId, ()> {
        &self.graph
    }

    /// Groups of descriptors that are each other's ancestors (strongly connected components
    /// of more than one descriptor); empty for a proper DAG.
    pub fn cycles(&self) -> Vec<Vec<DescriptorId>> {
        let mut out: Vec<Vec<DescriptorId>> = petgraph::algo::tarjan_scc(&self.graph)
            .into_iter()
            .filter(|c| c.len() > 1)
            .map(|c| {
                let mut ids: Vec<DescriptorId> = c.iter().map(|v| DescriptorId(v.index() as u32)).collect();
                ids.sort_unstable();
                ids
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// The graph node of a descriptor.
    pub fn node(&self, id: DescriptorId) -> NodeIndex {
        NodeIndex::new(id.index())
    }

    /// Direct parents (owners of each tree number's parent number), deduplicated.
    pub fn parents(&self, id: DescriptorId) -> impl Iterator<Item = DescriptorId> + '_ {
        self.graph
            .neighbors_directed(self.node(id), petgraph::Direction::Incoming)
            .map(|n| DescriptorId(n.index() as u32))
    }

    /// Direct children, deduplicated.
    pub fn children(&self, id: DescriptorId) -> impl Iterator<Item = DescriptorId> + '_ {
        self.graph
            .neighbors_directed(self.node(id), petgraph::Direction::Outgoing)
            .map(|n| DescriptorId(n.index() as u32))
    }

    /// `Anc(t)`: `t` itself plus every descriptor that owns a dot-prefix of one of `t`'s tree
    /// numbers, ids ascending. (See [`Ancestry`] for the alternative, transitive definition.)
    pub fn ancestors(&self, id: DescriptorId) -> impl ExactSizeIterator<Item = DescriptorId> + '_ {
        self.tables.anc[Tables::range(&self.tables.anc_off, id.index())].iter().map(|&d| DescriptorId(d))
    }

    /// The intrinsic information content under [`Ancestry::TreePrefix`] (precomputed).
    pub fn intrinsic_ic(&self) -> &InformationContent {
        &self.intrinsic
    }

    /// The owner of a tree number (`C04.557`), if any.
    pub fn by_tree_number(&self, tree: &str) -> Option<DescriptorId> {
        // Tree numbers are few (64k) and this is not a hot path: a linear scan keeps the cache
        // free of a second index.
        self.tables
            .tree
            .iter()
            .position(|s| s.get(&self.tables.strings) == tree)
            .map(|row| DescriptorId(self.tables.tree_owner[row]))
    }
}

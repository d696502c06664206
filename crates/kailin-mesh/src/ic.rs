//! Information content (intrinsic and corpus-based) and the MICA-based pair measures.

use petgraph::graph::DiGraph;

use crate::error::{Error, Result};
use crate::mesh::{DescriptorId, Mesh, Tables};

/// Which descriptors count as ancestors of a descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ancestry {
    /// The project's definition (default): `Anc(t)` is `t` plus every descriptor that owns a
    /// dot-prefix of one of `t`'s own tree numbers.
    ///
    /// Note: with this definition IC is *not* monotone along every edge of real MeSH. When a
    /// descriptor `c` sits under `p` through one tree number but has children only under
    /// another of its tree numbers (2024: Whey → Whey Proteins, whose children sit under
    /// D12 only), those children count as descendants of `c` but not of `p`, and
    /// `IC(p) > IC(c)` can follow (151 of the 42,021 descriptor edges of MeSH 2024).
    #[default]
    TreePrefix,
    /// The transitive closure of the parent relation of the DAG: `t` plus its parents, their
    /// parents, and so on. IC is then non-increasing from child to parent on every edge.
    Closure,
}

/// Which formula produced an [`InformationContent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcKind {
    /// `IC(t) = 1 - ln(desc(t)+1) / ln(N)` (Seco et al.), from the hierarchy alone.
    Intrinsic,
    /// `IC(t) = -ln((freq(t)+1)/(total+1))` (Resnik), from annotation counts.
    Corpus,
}

/// Information content of every descriptor of one hierarchy, with the ancestor lists
/// prepared so that the most informative common ancestor (MICA) of two descriptors is found
/// by one short merge.
///
/// Definitions (other crates rely on these exactly):
/// - `Anc(t)`: see [`Ancestry`]; `t ∈ Anc(t)` always.
/// - intrinsic: `IC(t) = 1 - ln(desc(t)+1) / ln(N)` where `desc(t)` is the number of
///   descriptors `u ≠ t` with `t ∈ Anc(u)` and `N` the number of descriptors with a tree
///   number (if `N < 2`, every IC is 1);
/// - corpus: `freq(t) = Σ count(u)` over annotated `u` with `t ∈ Anc(u)`,
///   `IC(t) = -ln((freq(t)+1)/(total+1))`, `total` = number of annotations;
/// - `Resnik(a,b) = max IC(t)` over `t ∈ Anc(a) ∩ Anc(b)`, 0 if empty;
/// - `Lin(a,b) = 2·Resnik(a,b) / (IC(a)+IC(b))`, 1 if `a == b`, 0 if the denominator is 0.
#[derive(Debug, Clone)]
pub struct InformationContent {
    kind: IcKind,
    ancestry: Ancestry,
    /// IC by descriptor id.
    values: Vec<f64>,
    /// IC by rank (rank 0 = highest IC; ties broken by descriptor id).
    by_rank: Vec<f64>,
    /// Descriptor id by rank.
    desc_of_rank: Vec<u32>,
    /// CSR over descriptor ids: ancestors as ranks, ascending (most informative first).
    anc_off: Vec<u32>,
    anc_rank: Vec<u32>,
    /// Per descriptor, a 128-bit Bloom signature of its ancestor set: disjoint signatures
    /// prove an empty intersection, so most unrelated pairs skip the merge.
    signature: Vec<u128>,
}

impl InformationContent {
    /// Intrinsic IC of `mesh` under `ancestry`. ([`Mesh::intrinsic_ic`] holds the
    /// [`Ancestry::TreePrefix`] one, precomputed.)
    pub fn intrinsic(mesh: &Mesh, ancestry: Ancestry) -> Self {
        Self::intrinsic_from_tables(&mesh.tables, &mesh.graph, ancestry)
    }

    pub(crate) fn intrinsic_from_tables(t: &Tables, graph: &DiGraph<DescriptorId, ()>, ancestry: Ancestry) -> Self {
        let (anc_off, anc) = t.ancestors(graph, ancestry);
        let n = t.len();
        let mut desc = vec![0u64; n];
        for u in 0..n {
            for &a in &anc[Tables::range(&anc_off, u)] {
                if a as usize != u {
                    desc[a as usize] += 1;
                }
            }
        }
        let with_tree = (0..n).filter(|&d| !Tables::range(&t.tree_off, d).is_empty()).count();
        let ln_n = (with_tree as f64).ln();
        let values =
            desc.iter().map(|&k| if with_tree < 2 { 1.0 } else { 1.0 - ((k + 1) as f64).ln() / ln_n }).collect();
        Self::from_parts(IcKind::Intrinsic, ancestry, values, &anc_off, &anc)
    }

    /// Corpus IC (Resnik) from annotation counts: `counts` yields `(descriptor, count)`
    /// pairs, e.g. how many documents carry each MeSH heading; repeated descriptors add up.
    pub fn from_annotations(
        mesh: &Mesh,
        counts: impl IntoIterator<Item = (DescriptorId, u64)>,
        ancestry: Ancestry,
    ) -> Result<Self> {
        let (anc_off, anc) = mesh.tables.ancestors(&mesh.graph, ancestry);
        let n = mesh.len();
        let mut freq = vec![0u64; n];
        let mut total = 0u64;
        for (d, c) in counts {
            let u = d.index();
            if u >= n {
                return Err(Error::AnnotationOutOfRange(u));
            }
            total += c;
            for &a in &anc[Tables::range(&anc_off, u)] {
                freq[a as usize] += c;
            }
        }
        let denom = (total + 1) as f64;
        let values = freq.iter().map(|&f| -(((f + 1) as f64) / denom).ln()).collect();
        Ok(Self::from_parts(IcKind::Corpus, ancestry, values, &anc_off, &anc))
    }

    pub(crate) fn from_parts(kind: IcKind, ancestry: Ancestry, values: Vec<f64>, anc_off: &[u32], anc: &[u32]) -> Self {
        let n = values.len();
        let mut desc_of_rank: Vec<u32> = (0..n as u32).collect();
        desc_of_rank.sort_by(|&a, &b| values[b as usize].total_cmp(&values[a as usize]).then(a.cmp(&b)));
        let mut rank = vec![0u32; n];
        for (r, &d) in desc_of_rank.iter().enumerate() {
            rank[d as usize] = r as u32;
        }
        let by_rank = desc_of_rank.iter().map(|&d| values[d as usize]).collect();
        let mut anc_rank: Vec<u32> = anc.iter().map(|&a| rank[a as usize]).collect();
        for d in 0..n {
            anc_rank[Tables::range(anc_off, d)].sort_unstable();
        }
        let bit = |a: u32| 1u128 << (a.wrapping_mul(0x9E37_79B9) >> 25);
        let signature = (0..n).map(|d| anc[Tables::range(anc_off, d)].iter().fold(0, |s, &a| s | bit(a))).collect();
        InformationContent {
            kind,
            ancestry,
            values,
            by_rank,
            desc_of_rank,
            anc_off: anc_off.to_vec(),
            anc_rank,
            signature,
        }
    }

    /// Which formula produced these values.
    pub fn kind(&self) -> IcKind {
        self.kind
    }

    /// The ancestor definition these values use.
    pub fn ancestry(&self) -> Ancestry {
        self.ancestry
    }

    /// `IC(t)`.
    pub fn get(&self, t: DescriptorId) -> f64 {
        self.values[t.index()]
    }

    /// All values, indexed by [`DescriptorId::index`].
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// Rank of the MICA of `a` and `b` (the first common entry of two ascending lists).
    #[inline]
    fn mica_rank(&self, a: DescriptorId, b: DescriptorId) -> Option<u32> {
        let x = &self.anc_rank[Tables::range(&self.anc_off, a.index())];
        if a == b {
            return x.first().copied();
        }
        if self.signature[a.index()] & self.signature[b.index()] == 0 {
            return None;
        }
        let y = &self.anc_rank[Tables::range(&self.anc_off, b.index())];
        first_common(x, y)
    }

    /// `Resnik` of many pairs into `out` (cleared first), as [`resnik`](Self::resnik) per
    /// pair, but faster on large batches of random pairs: a block's tables are loaded before
    /// any of its pairs is merged, so that their cache misses overlap instead of waiting one
    /// behind another's branches.
    pub fn resnik_many(&self, pairs: &[(DescriptorId, DescriptorId)], out: &mut Vec<f64>) {
        /// Pairs whose loads are in flight together (their offsets stay in L1).
        const BLOCK: usize = 64;
        out.clear();
        out.reserve(pairs.len());
        let mut span = [(0u32, 0u32, 0u32, 0u32); BLOCK];
        for block in pairs.chunks(BLOCK) {
            // Pass 1, without branches: signatures, offsets and the first ancestor of each
            // side, each load independent of the other pairs'. The first ancestors are only
            // loaded (into cache), so their values are folded and dropped.
            let mut touched = 0u32;
            for (s, &(a, b)) in span.iter_mut().zip(block) {
                let (a, b) = (a.index(), b.index());
                let related = self.signature[a] & self.signature[b] != 0 || a == b;
                let (xa, xb) = (self.anc_off[a], self.anc_off[a + 1]);
                let (ya, yb) = (self.anc_off[b], self.anc_off[b + 1]);
                touched ^= self.anc_rank.get(xa as usize).copied().unwrap_or(0)
                    ^ self.anc_rank.get(ya as usize).copied().unwrap_or(0);
                // An unrelated pair gets empty lists: its merge ends at once.
                *s = if related { (xa, xb, ya, yb) } else { (xa, xa, ya, ya) };
            }
            std::hint::black_box(touched);
            // Pass 2: the merges, on lists now in cache.
            for (&(xa, xb, ya, yb), &(a, b)) in span.iter().zip(block) {
                let x = &self.anc_rank[xa as usize..xb as usize];
                let y = &self.anc_rank[ya as usize..yb as usize];
                let r = if a == b { x.first().copied() } else { first_common(x, y) };
                out.push(r.map_or(0.0, |r| self.by_rank[r as usize]));
            }
        }
    }

    /// `Lin` of many pairs into `out` (cleared first), as [`lin`](Self::lin) per pair.
    pub fn lin_many(&self, pairs: &[(DescriptorId, DescriptorId)], out: &mut Vec<f64>) {
        self.resnik_many(pairs, out);
        for (s, &(a, b)) in out.iter_mut().zip(pairs) {
            *s = if a == b { 1.0 } else { lin_ratio(*s, self.get(a), self.get(b)) };
        }
    }

    /// The most informative common ancestor of `a` and `b` and its IC, if they share one.
    pub fn mica(&self, a: DescriptorId, b: DescriptorId) -> Option<(DescriptorId, f64)> {
        self.mica_rank(a, b).map(|r| (DescriptorId(self.desc_of_rank[r as usize]), self.by_rank[r as usize]))
    }

    /// `Resnik(a,b)`: IC of the MICA, 0 without a common ancestor.
    #[inline]
    pub fn resnik(&self, a: DescriptorId, b: DescriptorId) -> f64 {
        self.mica_rank(a, b).map_or(0.0, |r| self.by_rank[r as usize])
    }

    /// `Lin(a,b) = 2·Resnik / (IC(a)+IC(b))`; 1 if `a == b`; 0 if the denominator is 0.
    ///
    /// Under [`Ancestry::TreePrefix`] an ancestor can be more informative than its
    /// descendant (see [`Ancestry`]), which could push the ratio past 1; it is capped at 1,
    /// the value for identical descriptors, so that Lin stays in `[0, 1]`.
    #[inline]
    pub fn lin(&self, a: DescriptorId, b: DescriptorId) -> f64 {
        if a == b {
            return 1.0;
        }
        lin_ratio(self.resnik(a, b), self.get(a), self.get(b))
    }
}

/// The first entry two ascending lists share.
#[inline]
fn first_common(x: &[u32], y: &[u32]) -> Option<u32> {
    let (mut i, mut j) = (0, 0);
    while i < x.len() && j < y.len() {
        let (p, q) = (x[i], y[j]);
        if p == q {
            return Some(p);
        }
        i += usize::from(p < q);
        j += usize::from(q < p);
    }
    None
}

/// `2·r / (ia+ib)` capped to `[0, 1]`, 0 when the denominator is not positive.
pub(crate) fn lin_ratio(r: f64, ia: f64, ib: f64) -> f64 {
    let denom = ia + ib;
    if denom <= 0.0 { 0.0 } else { (2.0 * r / denom).clamp(0.0, 1.0) }
}

//! Pair and set similarity between descriptors (the paper's knowledge-hierarchy similarity,
//! Eq. 4).

use crate::ic::{InformationContent, lin_ratio};
use crate::mesh::{DescriptorId, Mesh, NONE, Tables};

/// The pair measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Measure {
    /// IC of the lowest common ancestor (default).
    #[default]
    Resnik,
    /// `2·IC(lca) / (IC(a)+IC(b))`, in `[0, 1]`.
    Lin,
}

/// How the "lowest common ancestor" of two descriptors is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lca {
    /// The most informative common ancestor over `Anc(a) ∩ Anc(b)` (default).
    #[default]
    Mica,
    /// Strict tree LCA: over every pair of tree numbers of `a` and `b`, the owner of their
    /// longest common dot-prefix; the most informative of those, 0 if none.
    Tree,
}

/// How pair scores between two descriptor sets are aggregated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Aggregate {
    /// Mean over all pairs (default; the paper's Eq. 4).
    #[default]
    Mean,
    /// Best-match average: the mean, over both sides, of each term's best score on the other.
    BestMatch,
}

/// Result of a set similarity, with what was left out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SetScore {
    /// The aggregated score; 0 when a side is empty after dropping.
    pub score: f64,
    /// Number of pairs scored.
    pub pairs: usize,
    /// Terms of the left side dropped for being outside the hierarchy.
    pub dropped_left: usize,
    /// Terms of the right side dropped for being outside the hierarchy.
    pub dropped_right: usize,
}

/// Why two descriptors score what they score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairExplanation {
    /// The chosen common ancestor, if any.
    pub lca: Option<DescriptorId>,
    /// IC of the common ancestor (the Resnik score), 0 without one.
    pub lca_ic: f64,
    /// IC of the left descriptor.
    pub ic_a: f64,
    /// IC of the right descriptor.
    pub ic_b: f64,
    /// The score under the configured measure.
    pub score: f64,
}

/// A configured similarity over one hierarchy and one [`InformationContent`].
///
/// ```
/// use kailin_mesh::{Mesh, Measure, Similarity};
/// # let mesh = Mesh::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/mesh/mini.tsv"))?;
/// let lung = mesh.resolve("Lung Neoplasms")?;
/// let breast = mesh.resolve("Breast Neoplasms")?;
/// let sim = Similarity::new(&mesh);
/// let why = sim.explain(lung, breast);
/// assert_eq!(mesh.descriptor(why.lca.unwrap()).name(), "Neoplasms by Site");
/// assert!(Similarity::new(&mesh).measure(Measure::Lin).pair(lung, breast) <= 1.0);
/// # Ok::<(), kailin_mesh::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Similarity<'m> {
    mesh: &'m Mesh,
    ic: &'m InformationContent,
    measure: Measure,
    lca: Lca,
}

impl<'m> Similarity<'m> {
    /// Resnik over MICA with the mesh's intrinsic IC.
    pub fn new(mesh: &'m Mesh) -> Self {
        Self::with_ic(mesh, mesh.intrinsic_ic())
    }

    /// Uses another information content (e.g. corpus IC, or [`Ancestry::Closure`](crate::Ancestry::Closure)).
    pub fn with_ic(mesh: &'m Mesh, ic: &'m InformationContent) -> Self {
        Similarity { mesh, ic, measure: Measure::Resnik, lca: Lca::Mica }
    }

    /// Sets the pair measure.
    pub fn measure(mut self, measure: Measure) -> Self {
        self.measure = measure;
        self
    }

    /// Sets the LCA definition.
    pub fn lca(mut self, lca: Lca) -> Self {
        self.lca = lca;
        self
    }

    /// The information content in use.
    pub fn ic(&self) -> &'m InformationContent {
        self.ic
    }

    /// The score of a pair under the configured measure.
    #[inline]
    pub fn pair(&self, a: DescriptorId, b: DescriptorId) -> f64 {
        match (self.measure, self.lca) {
            (Measure::Resnik, Lca::Mica) => self.ic.resnik(a, b),
            (Measure::Lin, Lca::Mica) => self.ic.lin(a, b),
            _ => self.explain(a, b).score,
        }
    }

    /// The scores of many pairs into `out` (cleared first), each as [`pair`](Self::pair)
    /// gives it; with MICA, faster than one call per pair on large batches of random pairs
    /// (the tables' cache misses of a block of pairs overlap).
    pub fn pairs(&self, pairs: &[(DescriptorId, DescriptorId)], out: &mut Vec<f64>) {
        match (self.measure, self.lca) {
            (Measure::Resnik, Lca::Mica) => self.ic.resnik_many(pairs, out),
            (Measure::Lin, Lca::Mica) => self.ic.lin_many(pairs, out),
            _ => {
                out.clear();
                out.extend(pairs.iter().map(|&(a, b)| self.pair(a, b)));
            }
        }
    }

    /// The score of a pair with its common ancestor.
    pub fn explain(&self, a: DescriptorId, b: DescriptorId) -> PairExplanation {
        let (lca, lca_ic) = match self.lca {
            Lca::Mica => self.ic.mica(a, b).map_or((None, 0.0), |(d, ic)| (Some(d), ic)),
            Lca::Tree => self.tree_lca(a, b).map_or((None, 0.0), |(d, ic)| (Some(d), ic)),
        };
        let (ic_a, ic_b) = (self.ic.get(a), self.ic.get(b));
        let score = match self.measure {
            Measure::Resnik => lca_ic,
            Measure::Lin if a == b => 1.0,
            Measure::Lin => lin_ratio(lca_ic, ic_a, ic_b),
        };
        PairExplanation { lca, lca_ic, ic_a, ic_b, score }
    }

    /// Strict tree LCA: the most informative owner of the longest common dot-prefix of any
    /// pair of tree numbers.
    fn tree_lca(&self, a: DescriptorId, b: DescriptorId) -> Option<(DescriptorId, f64)> {
        let t = &self.mesh.tables;
        let depth = |row: u32| t.tree[row as usize].get(&t.strings).bytes().filter(|&c| c == b'.').count();
        let mut best: Option<(DescriptorId, f64)> = None;
        for ra in Tables::range(&t.tree_off, a.index()) {
            for rb in Tables::range(&t.tree_off, b.index()) {
                let (mut x, mut y) = (ra as u32, rb as u32);
                let (mut dx, mut dy) = (depth(x), depth(y));
                while dx > dy {
                    x = t.tree_parent[x as usize];
                    dx -= 1;
                }
                while dy > dx {
                    y = t.tree_parent[y as usize];
                    dy -= 1;
                }
                while x != y && x != NONE && y != NONE {
                    x = t.tree_parent[x as usize];
                    y = t.tree_parent[y as usize];
                }
                if x == y && x != NONE {
                    let owner = DescriptorId(t.tree_owner[x as usize]);
                    let ic = self.ic.get(owner);
                    if best.is_none_or(|(_, b)| ic > b) {
                        best = Some((owner, ic));
                    }
                }
            }
        }
        best
    }

    /// Similarity between a document's descriptors and a context's (the paper's Eq. 4).
    /// Descriptors outside the hierarchy are dropped first and counted; an empty side gives 0.
    pub fn set_score(&self, left: &[DescriptorId], right: &[DescriptorId], agg: Aggregate) -> SetScore {
        let keep = |s: &[DescriptorId]| -> Vec<DescriptorId> {
            s.iter().copied().filter(|&d| self.mesh.descriptor(d).in_hierarchy()).collect()
        };
        let (l, r) = (keep(left), keep(right));
        let mut out = SetScore {
            score: 0.0,
            pairs: l.len() * r.len(),
            dropped_left: left.len() - l.len(),
            dropped_right: right.len() - r.len(),
        };
        if l.is_empty() || r.is_empty() {
            out.pairs = 0;
            return out;
        }
        out.score = match agg {
            Aggregate::Mean => {
                let sum: f64 =
                    l.iter().flat_map(|&a| r.iter().map(move |&b| (a, b))).map(|(a, b)| self.pair(a, b)).sum();
                sum / out.pairs as f64
            }
            Aggregate::BestMatch => {
                let best = |xs: &[DescriptorId], ys: &[DescriptorId]| -> f64 {
                    xs.iter().map(|&x| ys.iter().map(|&y| self.pair(x, y)).fold(0.0, f64::max)).sum::<f64>()
                        / xs.len() as f64
                };
                (best(&l, &r) + best(&r, &l)) / 2.0
            }
        };
        out
    }
}

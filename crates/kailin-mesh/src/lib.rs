//! The MeSH descriptor hierarchy for knowledge-guided similarity and term extraction.
//!
//! `kailin-mesh` loads NLM's Medical Subject Headings from any of the formats NLM and others
//! ship — descriptor XML (`descYYYY.xml[.gz]`), the ASCII tree file (`mtreesYYYY.bin`), a
//! TSV of `UI, name, entry|terms, tree|numbers` — or from its own memory-mapped binary cache
//! (all of MeSH reloads in milliseconds). On top of the hierarchy it provides:
//!
//! - lookups by UI, preferred name and entry term, and the hierarchy as a `petgraph` DAG;
//! - information content (intrinsic, or corpus-based from annotation counts) and the pair
//!   measures Resnik and Lin over the most informative common ancestor (or the strict tree
//!   LCA), with set similarity between a document's and a context's descriptors;
//! - dictionary term extraction from free text ([`Extractor`]).
//!
//! It depends on no other kailin crate: use it on its own.
//!
//! # Definitions
//!
//! - `Anc(t)`: `t` plus every descriptor owning a dot-prefix of one of `t`'s tree numbers
//!   ([`Ancestry::TreePrefix`], default), or the DAG's transitive closure ([`Ancestry::Closure`]).
//!   Descriptors without tree numbers (Female, Male) are outside the hierarchy.
//! - Intrinsic `IC(t) = 1 - ln(desc(t)+1)/ln(N)`: `desc(t)` = descriptors `u ≠ t` with
//!   `t ∈ Anc(u)`, `N` = descriptors with a tree number.
//! - Corpus `IC(t) = -ln((freq(t)+1)/(total+1))`, `freq(t)` = annotations of descriptors
//!   under `t` (itself included), `total` = number of annotations.
//! - `Resnik(a,b) = max IC(t), t ∈ Anc(a) ∩ Anc(b)` (0 if empty);
//!   `Lin(a,b) = 2·Resnik/(IC(a)+IC(b))`, 1 if `a == b`, 0 if the denominator is 0.
//! - Strict tree LCA: over all pairs of tree numbers, IC of the owner of their longest common
//!   dot-prefix; the maximum, 0 if none.
//! - Set similarity (m-KAILIN Eq. 4): mean of the pair score over all pairs (or best-match
//!   average), after dropping terms outside the hierarchy; an empty side gives 0.
//!
//! # Example
//!
//! ```
//! use kailin_mesh::{Aggregate, Extractor, Mesh, Similarity};
//!
//! # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/mesh/mini.tsv");
//! let mesh = Mesh::load(path)?; // TSV, XML, ASCII trees or cache: detected
//! let extractor = Extractor::new(&mesh)?;
//!
//! let doc = "Levodopa remains the main therapy of Parkinson disease (PD). \
//!            In PD, dopamine neurons are lost.";
//! let ctx = "Dopamine loss also marks other neurodegenerative diseases.";
//!
//! // Spans: longest match wins; "PD" resolves through its definition in the text.
//! let pd = mesh.resolve("Parkinson Disease")?;
//! let mentions = extractor.extract(doc);
//! assert_eq!(mentions.iter().filter(|m| m.descriptor == pd).count(), 3);
//!
//! // Knowledge-hierarchy similarity of the two texts' descriptor sets (m-KAILIN Eq. 4).
//! let sim = Similarity::new(&mesh);
//! let score = sim.set_score(&extractor.descriptors(doc), &extractor.descriptors(ctx), Aggregate::Mean);
//! assert!(score.score > 0.0);
//! # Ok::<(), kailin_mesh::Error>(())
//! ```
#![deny(missing_docs)]

mod builder;
mod cache;
mod error;
mod extract;
mod ic;
mod load;
mod mesh;
mod similarity;
mod trie;
mod ui;

pub use crate::{
    builder::MeshBuilder,
    error::{Error, Result},
    extract::{DEFAULT_EXCLUDED_TREES, Extractor, ExtractorBuilder, Match, Scratch},
    ic::{Ancestry, IcKind, InformationContent},
    load::{Format, detect_format, read_mtrees, read_tsv, read_xml},
    mesh::{Descriptor, DescriptorId, Mesh},
    similarity::{Aggregate, Lca, Measure, PairExplanation, SetScore, Similarity},
};

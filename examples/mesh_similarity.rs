//! Load MeSH, extract the descriptors two texts mention, and score their knowledge-hierarchy
//! similarity (m-KAILIN Eq. 4) with every pair's most informative common ancestor explained.
//!
//! ```text
//! cargo run --release --example mesh_similarity                       # real MeSH 2024 if present
//! cargo run --release --example mesh_similarity -- MESH_FILE "doc" "context"
//! ```
//!
//! Without arguments it reads `../shared/data/mesh/mesh2024.tsv` (or `$KAILIN_DATA/mesh/…`) and
//! falls back to the small hand-made hierarchy in `fixtures/mesh/mini.tsv`.
#![allow(clippy::print_stdout)]

use anyhow::{Context, Result};
use kailin_examples::{default_mesh_path, short};
use kailin_mesh::{Aggregate, Extractor, Mesh, Similarity};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().map(Into::into).unwrap_or_else(default_mesh_path);
    let doc = args.next().unwrap_or_else(|| {
        "Levodopa remains the main therapy of Parkinson disease (PD), although PD patients develop \
         dyskinesias."
            .into()
    });
    let ctx = args.next().unwrap_or_else(|| {
        "Dopamine agonists delay motor complications in early Parkinsonian disorders and \
         Alzheimer disease."
            .into()
    });

    let started = std::time::Instant::now();
    let mesh = Mesh::load(&path).with_context(|| format!("loading {}", path.display()))?;
    let extractor = Extractor::new(&mesh)?;
    println!(
        "MeSH: {} descriptors ({} in the tree) from {} in {:.0?}\n",
        mesh.len(),
        mesh.descriptors_in_tree(),
        path.display(),
        started.elapsed()
    );

    let mut sides = Vec::new();
    for (label, text) in [("document", &doc), ("context", &ctx)] {
        println!("{label}: {text}");
        for m in extractor.extract(text) {
            let d = mesh.descriptor(m.descriptor);
            println!("  {:>3}..{:<3} {:<28} -> {} {}", m.start, m.end, short(m.text(text), 28), d.ui(), d.name());
        }
        sides.push(extractor.descriptors(text));
        println!();
    }

    let sim = Similarity::new(&mesh);
    println!("pair scores (Resnik = IC of the most informative common ancestor):");
    for &a in &sides[0] {
        for &b in &sides[1] {
            let why = sim.explain(a, b);
            let lca = why.lca.map_or("-".to_owned(), |l| mesh.descriptor(l).name().to_owned());
            println!(
                "  {:<28} x {:<28} = {:.3}  via {lca}",
                short(mesh.descriptor(a).name(), 28),
                short(mesh.descriptor(b).name(), 28),
                why.score
            );
        }
    }
    let mean = sim.set_score(&sides[0], &sides[1], Aggregate::Mean);
    let bma = sim.set_score(&sides[0], &sides[1], Aggregate::BestMatch);
    println!(
        "\nset similarity: mean {:.3} over {} pairs, best-match average {:.3} (dropped outside the tree: {}/{})",
        mean.score, mean.pairs, bma.score, mean.dropped_left, mean.dropped_right
    );
    Ok(())
}

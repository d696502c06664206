//! Checks on the complete MeSH 2024 hierarchy. The data is read from `$KAILIN_DATA` or
//! `../shared/data` beside the repository; the tests are ignored by default and run by CI with `--include-ignored`.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::OnceLock;

use kailin_mesh::{Ancestry, DescriptorId, Extractor, InformationContent, Lca, Mesh, Similarity};

fn data_dir() -> PathBuf {
    std::env::var_os("KAILIN_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
}

/// The real hierarchy, loaded once per test binary.
fn mesh() -> &'static Mesh {
    static MESH: OnceLock<Mesh> = OnceLock::new();
    MESH.get_or_init(|| {
        let path = data_dir().join("mesh/mesh2024.tsv");
        assert!(path.exists(), "{} not found: set KAILIN_DATA to the data directory", path.display());
        Mesh::load(&path).expect("MeSH 2024 loads")
    })
}

fn ui(m: &Mesh, ui: &str) -> DescriptorId {
    m.by_ui(ui).unwrap_or_else(|| panic!("{ui} missing"))
}

/// Deterministic pseudo-random descriptor pairs.
fn pairs(m: &Mesh, n: usize) -> impl Iterator<Item = (DescriptorId, DescriptorId)> + '_ {
    let ids: Vec<DescriptorId> = m.ids().collect();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    (0..n).map(move |_| {
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ids[(state % ids.len() as u64) as usize]
        };
        (next(), next())
    })
}

#[test]
#[ignore = "needs the real data: $KAILIN_DATA or ../shared/data"]
fn counts_match_nlm() {
    let m = mesh();
    assert_eq!(m.len(), 30_764);
    assert_eq!(m.descriptors_in_tree(), 30_762);
    assert_eq!(m.tree_number_count(), 64_457);
    assert_eq!(m.entry_term_count(), 137_409);
    for outside in ["D005260", "D008297"] {
        let d = m.descriptor(ui(m, outside));
        assert!(!d.in_hierarchy(), "{} has no tree position", d.name());
    }
}

#[test]
#[ignore = "needs the real data: $KAILIN_DATA or ../shared/data"]
fn the_one_cycle_of_mesh_2024() {
    let m = mesh();
    let cycles = m.cycles();
    assert_eq!(cycles.len(), 1);
    let names: Vec<&str> = cycles[0].iter().map(|&d| m.descriptor(d).name()).collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"Ocular Motility Disorders") && names.contains(&"Strabismus"), "{names:?}");
}

#[test]
#[ignore = "needs the real data: $KAILIN_DATA or ../shared/data"]
fn known_lca_of_siblings() {
    let m = mesh();
    let (lung, breast) = (ui(m, "D008175"), ui(m, "D001943"));
    for lca in [Lca::Mica, Lca::Tree] {
        let why = Similarity::new(m).lca(lca).explain(lung, breast);
        assert_eq!(why.lca.map(|d| m.descriptor(d).name()), Some("Neoplasms by Site"), "{lca:?}");
    }
}

#[test]
#[ignore = "needs the real data: $KAILIN_DATA or ../shared/data"]
fn resnik_symmetric_and_lin_bounded_on_random_pairs() {
    let m = mesh();
    let closure = InformationContent::intrinsic(m, Ancestry::Closure);
    for ic in [m.intrinsic_ic(), &closure] {
        let lin = Similarity::with_ic(m, ic).measure(kailin_mesh::Measure::Lin);
        for (a, b) in pairs(m, 200_000) {
            let r = ic.resnik(a, b);
            assert_eq!(r, ic.resnik(b, a));
            assert!((0.0..=1.0).contains(&r));
            assert!((0.0..=1.0).contains(&lin.pair(a, b)));
            if ic.ancestry() == Ancestry::Closure && a != b {
                // Under the closure the MICA is never more informative than either side, so
                // Lin needs no cap.
                assert!(2.0 * r <= ic.get(a) + ic.get(b) + 1e-12);
            }
        }
    }
}

#[test]
#[ignore = "needs the real data: $KAILIN_DATA or ../shared/data"]
fn resnik_equals_its_definition_on_random_pairs() {
    let m = mesh();
    let ic = m.intrinsic_ic();
    let mut shared = 0;
    for (a, b) in pairs(m, 200_000) {
        let bs: Vec<DescriptorId> = m.ancestors(b).collect();
        let expect = m.ancestors(a).filter(|t| bs.contains(t)).map(|t| ic.get(t)).fold(0.0, f64::max);
        assert_eq!(ic.resnik(a, b), expect);
        shared += usize::from(expect > 0.0);
    }
    assert!(shared > 1_000, "the sample must exercise common ancestors too ({shared})");
}

#[test]
#[ignore = "needs the real data: $KAILIN_DATA or ../shared/data"]
fn ic_along_edges() {
    let m = mesh();
    let closure = InformationContent::intrinsic(m, Ancestry::Closure);
    let prefix = m.intrinsic_ic();
    let (mut edges, mut rising) = (0, 0);
    for child in m.ids() {
        for parent in m.parents(child) {
            edges += 1;
            assert!(closure.get(parent) <= closure.get(child), "closure: IC must not rise on an edge");
            if prefix.get(parent) > prefix.get(child) {
                rising += 1;
                // The documented cause: the child has descendants outside the parent's
                // sub-trees (they list the child's other tree numbers, not the parent's).
                let escapes = m.ids().any(|u| {
                    let anc: Vec<_> = m.ancestors(u).collect();
                    anc.contains(&child) && !anc.contains(&parent)
                });
                assert!(escapes);
            }
        }
    }
    assert_eq!(edges, 42_021);
    // The spec's tree-prefix ancestry is not monotone on real MeSH: see `Ancestry`.
    assert_eq!(rising, 151, "documented in `Ancestry::TreePrefix`");
    eprintln!("tree-prefix ancestry: IC rises on {rising} of {edges} edges");
}

#[test]
#[ignore = "needs the real data: $KAILIN_DATA or ../shared/data"]
fn ascii_trees_and_cache_agree_with_tsv() {
    let m = mesh();
    let trees = Mesh::load(data_dir().join("mesh/mtrees2024.bin")).expect("mtrees loads");
    assert_eq!(trees.len(), 30_762);
    assert_eq!(trees.tree_number_count(), 64_457);
    for d in trees.ids() {
        let name = trees.descriptor(d).name();
        let t = m.all_by_term(name).find(|&t| m.descriptor(t).name() == name).expect(name);
        assert_eq!(trees.intrinsic_ic().get(d), m.intrinsic_ic().get(t), "{name}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mesh.cache");
    m.save_cache(&path).unwrap();
    let cached = Mesh::load(&path).unwrap();
    for (a, b) in pairs(m, 20_000) {
        assert_eq!(m.intrinsic_ic().resnik(a, b), cached.intrinsic_ic().resnik(a, b));
        assert_eq!(m.descriptor(a).ui(), cached.descriptor(a).ui());
    }
}

#[test]
#[ignore = "needs the real data: $KAILIN_DATA or ../shared/data"]
fn extraction_on_real_terms() {
    let m = mesh();
    let ex = Extractor::new(m).unwrap();
    let text = "Hypertensive patients with non-small cell lung cancer (NSCLC) received cisplatin; \
                NSCLC progressed. Serum creatine kinase increased.";
    let names: Vec<&str> = ex.extract(text).iter().map(|x| m.descriptor(x.descriptor).name()).collect();
    assert_eq!(
        names,
        [
            "Hypertension",
            "Patients",
            "Carcinoma, Non-Small-Cell Lung",
            "Carcinoma, Non-Small-Cell Lung",
            "Cisplatin",
            "Carcinoma, Non-Small-Cell Lung",
            "Serum",
            "Creatine Kinase"
        ]
    );
    let set: Vec<&str> = ex.descriptors(text).iter().map(|&d| m.descriptor(d).name()).collect();
    assert!(set.contains(&"Creatine"), "chemical nested in an enzyme name: {set:?}");
}

#[test]
#[ignore = "needs the real data: $KAILIN_DATA or ../shared/data"]
fn batched_scores_equal_one_pair_at_a_time() {
    let m = mesh();
    let closure = InformationContent::intrinsic(m, Ancestry::Closure);
    // Random pairs, a descriptor with itself, and the two descriptors with no tree number.
    let mut batch: Vec<(DescriptorId, DescriptorId)> = pairs(m, 50_000).collect();
    let (female, neoplasms) = (ui(m, "D005260"), ui(m, "D009369"));
    batch.extend([(neoplasms, neoplasms), (female, female), (female, neoplasms), (neoplasms, female)]);
    let mut out = Vec::new();
    for ic in [m.intrinsic_ic(), &closure] {
        for measure in [kailin_mesh::Measure::Resnik, kailin_mesh::Measure::Lin] {
            for lca in [Lca::Mica, Lca::Tree] {
                let sim = Similarity::with_ic(m, ic).measure(measure).lca(lca);
                // Blocks of every length, the empty one included.
                for take in [0, 1, 63, 64, 65, batch.len()] {
                    sim.pairs(&batch[..take], &mut out);
                    assert_eq!(out.len(), take);
                    for (&(a, b), &s) in batch.iter().zip(&out) {
                        assert_eq!(s.to_bits(), sim.pair(a, b).to_bits(), "{measure:?} {lca:?} {a:?} {b:?}");
                    }
                }
            }
        }
    }
}

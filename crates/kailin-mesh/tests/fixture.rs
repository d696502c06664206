//! Behaviour on the hand-made fixture hierarchy in `fixtures/mesh/` (30 descriptors, 28 with
//! tree numbers), with expected values computed by hand from the documented formulas.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::io::Write;
use std::path::PathBuf;

use kailin_mesh::{
    Aggregate, Ancestry, DescriptorId, Error, Extractor, InformationContent, Lca, Measure, Mesh, MeshBuilder,
    Similarity,
};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/mesh").join(name)
}

fn mesh() -> Mesh {
    Mesh::load(fixture("mini.tsv")).expect("fixture loads")
}

fn id(mesh: &Mesh, name: &str) -> DescriptorId {
    mesh.resolve(name).unwrap_or_else(|e| panic!("{e}"))
}

/// Intrinsic IC by the formula, with N = 28 descriptors in the hierarchy.
fn ic(desc: u32) -> f64 {
    1.0 - f64::from(desc + 1).ln() / 28f64.ln()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[test]
fn counts_and_lookups() {
    let m = mesh();
    assert_eq!((m.len(), m.descriptors_in_tree(), m.tree_number_count()), (30, 28, 35));
    let lung = m.by_ui("D900003").unwrap();
    assert_eq!(m.descriptor(lung).name(), "Lung Neoplasms");
    assert_eq!(m.by_term("lung NEOPLASMS"), Some(lung), "case-insensitive name");
    assert_eq!(m.by_term("pulmonary neoplasms"), Some(lung), "entry term");
    assert_eq!(m.by_tree_number("C08.381.540"), Some(lung));
    assert!(matches!(m.resolve("D999999"), Err(Error::UnknownDescriptor(s)) if s == "D999999"));
    let parents: Vec<&str> = m.parents(lung).map(|p| m.descriptor(p).name()).collect();
    assert_eq!(parents.len(), 2);
    assert!(parents.contains(&"Neoplasms by Site") && parents.contains(&"Lung Diseases"));
    assert!(m.cycles().is_empty());
}

#[test]
fn female_has_no_tree_position() {
    let m = mesh();
    let female = id(&m, "Female");
    let d = m.descriptor(female);
    assert!(!d.in_hierarchy());
    assert_eq!(d.tree_numbers().len(), 0);
    assert_eq!(m.ancestors(female).collect::<Vec<_>>(), vec![female]);
    let lung = id(&m, "Lung Neoplasms");
    assert_eq!(m.intrinsic_ic().resnik(female, lung), 0.0);
    assert_eq!(m.intrinsic_ic().resnik(female, id(&m, "Male")), 0.0);
    // Set similarity drops it and says so.
    let s = Similarity::new(&m).set_score(&[female, lung], &[lung], Aggregate::Mean);
    assert_eq!((s.dropped_left, s.dropped_right, s.pairs), (1, 0, 1));
    assert!(close(s.score, ic(1)));
}

#[test]
fn intrinsic_ic_by_hand() {
    let m = mesh();
    let ic_of = |name: &str| m.intrinsic_ic().get(id(&m, name));
    // Neoplasms: Neoplasms by Site, Lung, Breast, Carcinoma, NSCLC.
    assert!(close(ic_of("Neoplasms"), ic(5)));
    assert!(close(ic_of("Neoplasms by Site"), ic(3)));
    assert!(close(ic_of("Lung Neoplasms"), ic(1)));
    assert!(close(ic_of("Breast Neoplasms"), 1.0));
    // Respiratory Tract Diseases: Lung Diseases, Lung Neoplasms, NSCLC, Asthma, Bronchial.
    assert!(close(ic_of("Respiratory Tract Diseases"), ic(5)));
}

#[test]
fn mica_of_siblings_is_their_parent() {
    let m = mesh();
    let (lung, breast) = (id(&m, "Lung Neoplasms"), id(&m, "Breast Neoplasms"));
    let sim = Similarity::new(&m);
    let why = sim.explain(lung, breast);
    assert_eq!(why.lca, Some(id(&m, "Neoplasms by Site")));
    assert!(close(why.score, ic(3)));
    let tree = sim.lca(Lca::Tree).explain(lung, breast);
    assert_eq!(tree.lca, Some(id(&m, "Neoplasms by Site")), "C04.588.531 and C04.588.180 meet at C04.588");
    let lin = Similarity::new(&m).measure(Measure::Lin).pair(lung, breast);
    assert!(close(lin, 2.0 * ic(3) / (ic(1) + 1.0)));
    assert_eq!(Similarity::new(&m).measure(Measure::Lin).pair(lung, lung), 1.0);
    // Different top-level trees share nothing.
    assert_eq!(sim.pair(lung, id(&m, "Dopamine")), 0.0);
}

#[test]
fn tree_lca_differs_from_mica_across_positions() {
    // Z sits at A01.001 and B01.001; X only under A01.001, Y only under B01.001.
    // MICA(X, Y) = Z (an ancestor of both), but their tree numbers share no prefix.
    let mut b = MeshBuilder::new();
    b.add("DA", "A", [""; 0], ["A01"]);
    b.add("DB", "B", [""; 0], ["B01"]);
    b.add("DZ", "Z", [""; 0], ["A01.001", "B01.001"]);
    b.add("DX", "X", [""; 0], ["A01.001.001"]);
    b.add("DY", "Y", [""; 0], ["B01.001.001"]);
    let m = b.build().unwrap();
    let (x, y, z) = (m.by_ui("DX").unwrap(), m.by_ui("DY").unwrap(), m.by_ui("DZ").unwrap());
    let sim = Similarity::new(&m);
    assert_eq!(sim.explain(x, y).lca, Some(z));
    assert_eq!(sim.lca(Lca::Tree).explain(x, y).lca, None);
    assert_eq!(sim.lca(Lca::Tree).pair(x, y), 0.0);
}

#[test]
fn properties_on_every_pair() {
    let m = mesh();
    for ancestry in [Ancestry::TreePrefix, Ancestry::Closure] {
        let ic = InformationContent::intrinsic(&m, ancestry);
        let lin = Similarity::with_ic(&m, &ic).measure(Measure::Lin);
        for a in m.ids() {
            for b in m.ids() {
                assert_eq!(ic.resnik(a, b), ic.resnik(b, a), "Resnik symmetric");
                let l = lin.pair(a, b);
                assert!((0.0..=1.0).contains(&l), "Lin {l} outside [0,1]");
            }
            // Closure: IC never rises from a child to its parent. Tree prefix: a child under
            // one tree number has its descendants inside its parent's, so neither does IC
            // there; a child under several numbers may have descendants outside the parent.
            for p in m.parents(a) {
                let monotone = ancestry == Ancestry::Closure || m.descriptor(a).tree_numbers().len() == 1;
                if monotone {
                    assert!(ic.get(p) <= ic.get(a), "{ancestry:?}: IC rises on an edge");
                }
            }
        }
    }
    // The fixture has the case: Catecholamines (D02.065.199, D02.092.200) has Levodopa and
    // Norepinephrine under its first number only, so under tree-prefix ancestry its parent
    // Phenols (3 descendants) is more informative than it (4).
    let (phenols, catecholamines) = (id(&m, "Phenols"), id(&m, "Catecholamines"));
    let prefix = InformationContent::intrinsic(&m, Ancestry::TreePrefix);
    assert!(prefix.get(phenols) > prefix.get(catecholamines), "IC rises from Catecholamines to Phenols");
    let closure = InformationContent::intrinsic(&m, Ancestry::Closure);
    assert!(closure.get(phenols) <= closure.get(catecholamines));
}

/// Resnik by its definition: the most informative descriptor in both ancestor sets.
fn brute_resnik(m: &Mesh, a: DescriptorId, b: DescriptorId) -> f64 {
    let bs: Vec<DescriptorId> = m.ancestors(b).collect();
    m.ancestors(a).filter(|t| bs.contains(t)).map(|t| m.intrinsic_ic().get(t)).fold(0.0, f64::max)
}

#[test]
fn resnik_equals_its_definition_on_every_pair() {
    let m = mesh();
    for a in m.ids() {
        for b in m.ids() {
            assert_eq!(m.intrinsic_ic().resnik(a, b), brute_resnik(&m, a, b));
        }
    }
}

#[test]
fn prefix_and_closure_ancestry_differ_as_documented() {
    // P has child C (via A01.001); C's children G and H sit only under C's other number
    // B01.001.
    // Prefix ancestry: G is no descendant of P, so IC(P) > IC(C). Closure: monotone.
    let mut b = MeshBuilder::new();
    b.add("DA", "A", [""; 0], ["A01"]);
    b.add("DB", "B", [""; 0], ["B01"]);
    b.add("DP", "P", [""; 0], ["A01.001"]);
    b.add("DC", "C", [""; 0], ["A01.001.001", "B01.001"]);
    b.add("DG", "G", [""; 0], ["B01.001.001"]);
    b.add("DH", "H", [""; 0], ["B01.001.002"]);
    let m = b.build().unwrap();
    let (p, c) = (m.by_ui("DP").unwrap(), m.by_ui("DC").unwrap());
    let prefix = m.intrinsic_ic();
    assert!(prefix.get(p) > prefix.get(c));
    let closure = InformationContent::intrinsic(&m, Ancestry::Closure);
    assert!(closure.get(p) < closure.get(c));
}

#[test]
fn corpus_ic_by_hand() {
    let m = mesh();
    let (lung, breast, nsclc) =
        (id(&m, "Lung Neoplasms"), id(&m, "Breast Neoplasms"), id(&m, "Carcinoma, Non-Small-Cell Lung"));
    let ic =
        InformationContent::from_annotations(&m, [(lung, 3), (breast, 1), (nsclc, 2), (lung, 1)], Ancestry::TreePrefix)
            .unwrap();
    let total = 7.0f64;
    let expect = |freq: f64| -((freq + 1.0) / (total + 1.0)).ln();
    assert!(close(ic.get(lung), expect(6.0)), "4 direct + 2 via NSCLC");
    assert!(close(ic.get(breast), expect(1.0)));
    assert!(close(ic.get(id(&m, "Neoplasms")), expect(7.0)));
    assert!(close(ic.get(id(&m, "Asthma")), expect(0.0)));
    assert!(ic.get(id(&m, "Neoplasms")) <= ic.get(lung));
}

#[test]
fn set_similarity_mean_and_best_match() {
    let m = mesh();
    let sim = Similarity::new(&m);
    let (lung, breast, asthma) = (id(&m, "Lung Neoplasms"), id(&m, "Breast Neoplasms"), id(&m, "Asthma"));
    let (r_lb, r_ll, r_ab, r_al) =
        (sim.pair(lung, breast), sim.pair(lung, lung), sim.pair(asthma, breast), sim.pair(asthma, lung));
    assert_eq!(r_ab, 0.0);
    let mean = sim.set_score(&[lung, asthma], &[breast, lung], Aggregate::Mean);
    assert!(close(mean.score, (r_lb + r_ll + r_ab + r_al) / 4.0));
    assert_eq!(mean.pairs, 4);
    let bma = sim.set_score(&[lung, asthma], &[breast, lung], Aggregate::BestMatch);
    let left = (r_lb.max(r_ll) + r_ab.max(r_al)) / 2.0;
    let right = (r_lb.max(r_ab) + r_ll.max(r_al)) / 2.0;
    assert!(close(bma.score, (left + right) / 2.0));
    assert_eq!(sim.set_score(&[], &[lung], Aggregate::Mean).score, 0.0);
}

#[test]
fn all_formats_agree() {
    let tsv = mesh();
    let xml = Mesh::load(fixture("mini_desc.xml")).unwrap();
    let trees = Mesh::load(fixture("mini_mtrees.bin")).unwrap();
    // Gzipped XML, written here.
    let dir = tempfile::tempdir().unwrap();
    let gz_path = dir.path().join("desc.xml.gz");
    let mut gz = flate2::write::GzEncoder::new(std::fs::File::create(&gz_path).unwrap(), flate2::Compression::fast());
    gz.write_all(&std::fs::read(fixture("mini_desc.xml")).unwrap()).unwrap();
    gz.finish().unwrap();
    let xml_gz = Mesh::load(&gz_path).unwrap();
    let cache_path = dir.path().join("mesh.cache");
    tsv.save_cache(&cache_path).unwrap();
    let cached = Mesh::load(&cache_path).unwrap();

    for other in [&xml, &xml_gz, &cached] {
        assert_eq!(other.len(), tsv.len());
        for d in tsv.ids() {
            let (a, b) = (tsv.descriptor(d), other.descriptor(d));
            assert_eq!((a.ui(), a.name()), (b.ui(), b.name()));
            assert_eq!(a.entry_terms().collect::<Vec<_>>(), b.entry_terms().collect::<Vec<_>>());
            assert_eq!(a.tree_numbers().collect::<Vec<_>>(), b.tree_numbers().collect::<Vec<_>>());
            assert_eq!(tsv.intrinsic_ic().get(d), other.intrinsic_ic().get(d));
        }
    }
    // The ASCII tree file has no UIs and no descriptors outside the tree: compare by name.
    assert_eq!(trees.len(), 28);
    for d in trees.ids() {
        let name = trees.descriptor(d).name();
        assert_eq!(trees.descriptor(d).ui(), name);
        let t = tsv.by_term(name).unwrap();
        assert_eq!(trees.intrinsic_ic().get(d), tsv.intrinsic_ic().get(t), "{name}");
    }
}

#[test]
fn extraction_rules() {
    let m = mesh();
    let ex = Extractor::new(&m).unwrap();
    let found = |text: &str| -> Vec<(String, String)> {
        ex.extract(text)
            .iter()
            .map(|x| (m.descriptor(x.descriptor).name().to_owned(), x.text(text).to_owned()))
            .collect()
    };
    let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    // Longest match wins over the nested "Lung Neoplasms"; plural and hyphen variants.
    assert_eq!(
        found("Non-small cell lung cancers and lung cancers; tumors."),
        vec![
            pair("Carcinoma, Non-Small-Cell Lung", "Non-small cell lung cancers"),
            pair("Lung Neoplasms", "lung cancers"),
            pair("Neoplasms", "tumors")
        ]
    );
    // Inverted entry term "Neoplasms, Breast" reads naturally; possessive 's.
    assert_eq!(found("breast neoplasms"), vec![pair("Breast Neoplasms", "breast neoplasms")]);
    assert_eq!(found("Alzheimer's disease"), vec![pair("Alzheimer Disease", "Alzheimer's disease")]);
    // Acronyms match only in capitals; whole words only; no match across a sentence end.
    assert_eq!(found("AIDS"), vec![pair("Acquired Immunodeficiency Syndrome", "AIDS")]);
    assert!(found("hearing aids").is_empty());
    assert!(found("Asthmatically").is_empty());
    assert!(found("The lung. Neoplasms").iter().all(|(n, _)| n != "Lung Neoplasms"));
    // Abbreviation defined in the text.
    let text = "Parkinson disease (PD) is common. PD progresses.";
    let pd: Vec<_> = ex.extract(text).iter().map(|x| x.text(text)).collect();
    assert_eq!(pd, vec!["Parkinson disease", "PD", "PD"]);
    // Spans are byte offsets into the original text, also after non-ASCII characters.
    let text = "Ünïcode α: asthma";
    let got = ex.extract(text);
    assert_eq!(got.len(), 1);
    assert_eq!(&text[got[0].start..got[0].end], "asthma");
}

#[test]
fn excluded_subtrees_and_nested_chemicals() {
    let m = mesh();
    // "Drug Therapy" lives only under E01 here: exclude it explicitly.
    let all = Extractor::builder(&m).exclude_trees([] as [&str; 0]).build().unwrap();
    let no_e = Extractor::builder(&m).exclude_trees(["E01"]).build().unwrap();
    let text = "Drug therapy with levodopa";
    assert_eq!(all.extract(text).len(), 2);
    assert_eq!(no_e.extract(text).len(), 1);
    let ids = all.descriptors(text);
    assert_eq!(ids, {
        let mut v = vec![id(&m, "Drug Therapy"), id(&m, "Levodopa")];
        v.sort();
        v
    });
}

#[test]
fn bad_input_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    // Truncated XML.
    let xml = std::fs::read(fixture("mini_desc.xml")).unwrap();
    let err = Mesh::load(write("cut.xml", &xml[..xml.len() / 2])).unwrap_err().to_string();
    assert!(err.contains("cut.xml:") && (err.contains("truncated") || err.contains("malformed")), "{err}");
    let err = Mesh::load(write("open.xml", b"<DescriptorRecordSet><DescriptorRecord>")).unwrap_err().to_string();
    assert!(err.contains("open.xml:1:") && err.contains("truncated"), "{err}");
    // Truncated gzip.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&xml).unwrap();
    let gz = gz.finish().unwrap();
    assert!(Mesh::load(write("cut.xml.gz", &gz[..gz.len() / 2])).is_err());
    // TSV with too few columns names the line.
    let err = Mesh::load(write("short.tsv", b"D1\tA\t\tA01\nD2\tB\n")).unwrap_err().to_string();
    assert!(err.contains("short.tsv:2:"), "{err}");
    // A parent nobody owns.
    let err = Mesh::load(write("orphan.tsv", b"D1\tA\t\tA01\nD2\tB\t\tB01.002\n")).unwrap_err();
    assert!(matches!(err, Error::MissingParent { .. }), "{err}");
    // Duplicate UI.
    let err = Mesh::load(write("dup.tsv", b"D1\tA\t\tA01\nD1\tB\t\tB01\n")).unwrap_err().to_string();
    assert!(err.contains("duplicate descriptor UI D1 (records 1 and 2)"), "{err}");
    // Not UTF-8: the line is named.
    let err = Mesh::load(write("latin1.tsv", b"D1\tA\t\tA01\nD2\tB\xe9\t\tB01\n")).unwrap_err().to_string();
    assert!(err.contains("latin1.tsv:2:") && err.contains("UTF-8"), "{err}");
    // Empty and unrecognisable files.
    assert!(matches!(Mesh::load(write("empty.tsv", b"")), Err(Error::UnknownFormat { .. })));
    assert!(matches!(Mesh::load(write("blank.tsv", b"\t\n")), Err(Error::UnknownFormat { .. })));
    assert!(matches!(kailin_mesh::read_tsv("\n\n", "blank"), Err(Error::Empty { .. })));
    assert!(matches!(Mesh::load(dir.path().join("missing.tsv")), Err(Error::Io { .. })));
    // Corrupt and truncated caches.
    let cache = dir.path().join("m.cache");
    mesh().save_cache(&cache).unwrap();
    let mut bytes = std::fs::read(&cache).unwrap();
    let cut = write("cut.cache", &bytes[..bytes.len() - 100]);
    assert!(matches!(Mesh::load(cut), Err(Error::Cache { .. })));
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    assert!(matches!(Mesh::load(write("flip.cache", &bytes)), Err(Error::Cache { .. })));
}

/// Deterministic xorshift for the mutation tests.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn mutated_sources_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for name in ["mini.tsv", "mini_desc.xml", "mini_mtrees.bin"] {
        let good = std::fs::read(fixture(name)).unwrap();
        let path = dir.path().join(name);
        for _ in 0..400 {
            let mut bytes = good.clone();
            for _ in 0..1 + xorshift(&mut state) % 4 {
                if bytes.is_empty() {
                    break;
                }
                let at = xorshift(&mut state) as usize % bytes.len();
                match xorshift(&mut state) % 3 {
                    0 => bytes[at] = xorshift(&mut state) as u8,
                    1 => {
                        bytes.remove(at);
                    }
                    _ => bytes.truncate(at),
                }
            }
            std::fs::write(&path, &bytes).unwrap();
            // Ok or a typed error; a panic fails the test.
            let _ = Mesh::load(&path);
        }
    }
}

#[test]
fn extraction_never_panics_on_random_text() {
    let m = mesh();
    let ex = Extractor::new(&m).unwrap();
    let alphabet: Vec<char> = "aAeiou sSnNtT-'’.,;()[]0123456789αβÄü\u{a0}\u{2013}PDAIDSlung cancer".chars().collect();
    let mut state = 42u64;
    for _ in 0..2000 {
        let len = (xorshift(&mut state) % 80) as usize;
        let text: String = (0..len).map(|_| alphabet[xorshift(&mut state) as usize % alphabet.len()]).collect();
        for found in ex.extract_all(&text) {
            assert!(text.is_char_boundary(found.start) && text.is_char_boundary(found.end) && found.start < found.end);
        }
    }
}

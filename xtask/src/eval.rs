//! `cargo xtask eval-extraction`: MeSH term extraction against BC5CDR gold annotations.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result, bail};
use kailin_mesh::{Extractor, Mesh};

/// One PubTator document: text (title + space + abstract) and gold descriptor UIs.
struct GoldDoc {
    pmid: String,
    text: String,
    gold: BTreeSet<String>,
}

/// Reads a PubTator file: `PMID|t|title`, `PMID|a|abstract`, then
/// `PMID<TAB>start<TAB>end<TAB>text<TAB>type<TAB>id[|id…]` mention lines; blank line between
/// documents. Relation lines (`PMID<TAB>CID<TAB>…`) are skipped.
fn read_pubtator(path: &Path) -> Result<Vec<GoldDoc>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut docs: Vec<GoldDoc> = Vec::new();
    let mut title = String::new();
    for (i, line) in text.lines().enumerate() {
        let at = || format!("{}:{}", path.display(), i + 1);
        if line.trim().is_empty() {
            continue;
        }
        if let Some((pmid, rest)) = line.split_once("|t|") {
            title = rest.to_owned();
            docs.push(GoldDoc { pmid: pmid.to_owned(), text: String::new(), gold: BTreeSet::new() });
            continue;
        }
        if let Some((_, rest)) = line.split_once("|a|") {
            let doc = docs.last_mut().with_context(|| format!("{}: abstract before title", at()))?;
            doc.text = format!("{title} {rest}");
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() >= 2 && cols[1] == "CID" {
            continue;
        }
        if cols.len() < 6 {
            bail!("{}: expected a mention line with 6 tab-separated columns", at());
        }
        let doc = docs.last_mut().with_context(|| format!("{}: mention before title", at()))?;
        if doc.pmid != cols[0] {
            bail!("{}: mention of {} inside document {}", at(), cols[0], doc.pmid);
        }
        if matches!(cols[4], "Chemical" | "Disease") {
            for id in cols[5].split('|') {
                if id.starts_with('D') {
                    doc.gold.insert(id.to_owned());
                }
            }
        }
    }
    Ok(docs)
}

/// Micro precision/recall over (document, descriptor) pairs.
#[derive(Default)]
struct Counts {
    tp: usize,
    fp: usize,
    fn_: usize,
}

impl Counts {
    fn p(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fp).max(1) as f64
    }
    fn r(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fn_).max(1) as f64
    }
    fn f1(&self) -> f64 {
        let (p, r) = (self.p(), self.r());
        if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) }
    }
}

pub(crate) fn run(data: &Path, verbose: bool) -> Result<()> {
    let mesh_path = data.join("mesh/mesh2024.tsv");
    let gold_path = data.join("bc5cdr/CDR_TrainingSet.PubTator.txt");
    let mesh = Mesh::load(&mesh_path).with_context(|| format!("loading {}", mesh_path.display()))?;
    let docs = read_pubtator(&gold_path)?;
    println!("BC5CDR {}: {} documents", gold_path.display(), docs.len());
    println!("| configuration | precision | recall | F1 | TP | FP | FN |");
    println!("|---|---|---|---|---|---|---|");
    for (label, abbreviations, nested) in [
        ("descriptors(): nested mentions, abbreviations", true, true),
        ("extract(): longest non-overlapping spans", true, false),
        ("extract(), no abbreviations", false, false),
    ] {
        let extractor = Extractor::builder(&mesh).abbreviations(abbreviations).build()?;
        let mentions = |text: &str| {
            if nested { extractor.extract_all(text) } else { extractor.extract(text) }
        };
        let mut c = Counts::default();
        let mut fps: std::collections::BTreeMap<String, usize> = Default::default();
        let mut fns: std::collections::BTreeMap<String, usize> = Default::default();
        for doc in &docs {
            let predicted: BTreeSet<String> = mentions(&doc.text)
                .iter()
                .map(|m| mesh.descriptor(m.descriptor))
                .filter(|d| d.in_category('C') || d.in_category('D'))
                .map(|d| d.ui().to_owned())
                .collect();
            c.tp += predicted.intersection(&doc.gold).count();
            for ui in predicted.difference(&doc.gold) {
                c.fp += 1;
                *fps.entry(ui.clone()).or_default() += 1;
            }
            for ui in doc.gold.difference(&predicted) {
                c.fn_ += 1;
                *fns.entry(ui.clone()).or_default() += 1;
            }
        }
        println!("| {label} | {:.3} | {:.3} | {:.3} | {} | {} | {} |", c.p(), c.r(), c.f1(), c.tp, c.fp, c.fn_);
        if verbose {
            let mut by_tree: std::collections::BTreeMap<String, (usize, usize, usize)> = Default::default();
            for doc in &docs {
                let predicted: BTreeSet<String> = extractor
                    .extract(&doc.text)
                    .iter()
                    .map(|m| mesh.descriptor(m.descriptor))
                    .filter(|d| d.in_category('C') || d.in_category('D'))
                    .map(|d| d.ui().to_owned())
                    .collect();
                let cats = |ui: &str| -> BTreeSet<String> {
                    mesh.by_ui(ui)
                        .map(|d| mesh.descriptor(d).tree_numbers().map(|t| t[..3].to_owned()).collect())
                        .unwrap_or_default()
                };
                for ui in predicted.union(&doc.gold) {
                    for c in cats(ui) {
                        let e = by_tree.entry(c).or_default();
                        match (predicted.contains(ui), doc.gold.contains(ui)) {
                            (true, true) => e.0 += 1,
                            (true, false) => e.1 += 1,
                            _ => e.2 += 1,
                        }
                    }
                }
            }
            for (c, (tp, fp, fn_)) in &by_tree {
                if tp + fp + fn_ > 30 {
                    println!("{c}: tp {tp} fp {fp} fn {fn_}");
                }
            }
            let top = |m: &std::collections::BTreeMap<String, usize>| {
                let mut v: Vec<_> = m.iter().collect();
                v.sort_by(|a, b| b.1.cmp(a.1));
                v.iter()
                    .take(40)
                    .map(|(ui, n)| {
                        let name = mesh.by_ui(ui).map(|d| mesh.descriptor(d).name()).unwrap_or("?");
                        format!(
                            "{n} {ui} {name} ic={:.3}",
                            mesh.by_ui(ui).map(|d| mesh.intrinsic_ic().get(d)).unwrap_or(0.0)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n  ")
            };
            println!("top false positives:\n  {}", top(&fps));
            println!("top false negatives:\n  {}", top(&fns));
        }
    }
    Ok(())
}

//! The real PubMedQA data (`$KAILIN_DATA`, default `../shared/data`): the official test split
//! as the paper counts it.
#![allow(clippy::unwrap_used)]

use kailin_eval::{Decision, MESH_SUBSETS, YEAR_SPANS};

fn data() -> std::path::PathBuf {
    std::env::var_os("KAILIN_DATA").map_or_else(
        || std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
        std::path::PathBuf::from,
    )
}

#[test]
#[ignore = "needs ../shared/data (PubMedQA PQA-L)"]
fn the_official_test_split_has_500_items_with_their_answers_years_and_headings() {
    let items = kailin_eval::load_test_set(data()).unwrap();
    assert_eq!(items.len(), 500);
    let count = |d| items.iter().filter(|i| i.truth == d).count();
    assert_eq!((count(Decision::Yes), count(Decision::No), count(Decision::Maybe)), (276, 169, 55));
    // Always "yes" is the majority baseline the issue quotes: 55.2%.
    let preds: Vec<Decision> = vec![Decision::Yes; 500];
    let truth: Vec<Decision> = items.iter().map(|i| i.truth).collect();
    assert!((kailin_eval::metrics(&truth, &preds).accuracy - 0.552).abs() < 1e-12);
    let in_spans =
        items.iter().filter(|i| i.year.is_some_and(|y| YEAR_SPANS.iter().any(|&(a, b)| (a..=b).contains(&y))));
    assert_eq!(in_spans.count(), 478, "22 test items have no year");
    let female = items.iter().filter(|i| i.meshes.iter().any(|m| m == MESH_SUBSETS[0])).count();
    assert_eq!(female, 385);
}

#[test]
#[ignore = "needs ../shared/data (BioASQ golden batches)"]
fn the_agents_held_out_bioasq_batches_hold_34_yes_no_questions() {
    let only = ["10B5_golden.json".to_owned(), "10B6_golden.json".to_owned()];
    let set = kailin_eval::load_bioasq_yesno(data().join("bioasq"), &only).unwrap();
    assert_eq!(set.items.len(), 34);
    assert_eq!(set.items.iter().filter(|i| i.truth == Decision::Yes).count(), 18);
    assert!(set.items.iter().all(|i| !i.contexts.is_empty()));
    // Every batch: each yes/no question once.
    let all = kailin_eval::load_bioasq_yesno(data().join("bioasq"), &[]).unwrap();
    assert!(all.items.len() > 34 && all.files.len() == 21, "{} items, {} files", all.items.len(), all.files.len());
}

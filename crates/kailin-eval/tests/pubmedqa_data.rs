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

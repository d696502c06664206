//! `kailin eval pubmedqa` on a tiny model and the invented PubMedQA-shaped fixture: the output
//! files' shapes, both settings, and the official semantics of the saved predictions.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

mod common;

use common::{fixture, kailin_timed, tiny_llama};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn pubmedqa_writes_official_predictions_and_metrics_by_year_and_mesh() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    tiny_llama(&model);
    let data = fixture("data");
    let truth = data.join("pubmedqa/test_ground_truth.json");
    for setting in ["reasoning-required", "question-only"] {
        let out = dir.path().join(setting);
        let run = kailin_timed(
            &["eval", "pubmedqa", "--model", s(&model), "--data", s(&data), "--setting", setting, "--out", s(&out)],
            b"",
            Duration::from_secs(120),
        );
        let stdout = String::from_utf8_lossy(&run.output.stdout);
        assert!(run.output.status.success(), "{}", String::from_utf8_lossy(&run.output.stderr));
        assert!(stdout.contains(&format!("PubMedQA ({setting}; 16 items)")), "{stdout}");

        // The official shape: every test PMID, one of the three answers.
        let predictions = json(&out.join("predictions/pubmedqa.json"));
        let predictions = predictions.as_object().unwrap();
        let gt = json(&truth);
        let gt = gt.as_object().unwrap();
        assert_eq!(predictions.keys().collect::<Vec<_>>(), gt.keys().collect::<Vec<_>>());
        assert!(predictions.values().all(|v| ["yes", "no", "maybe"].contains(&v.as_str().unwrap())));

        // metrics.json: the report, with the paper's 8 year spans and 6 MeSH subsets.
        let metrics = json(&out.join("metrics.json"));
        let report = &metrics["report"];
        assert_eq!(report["setting"], setting);
        assert_eq!(report["overall"]["n"], 16);
        let years: Vec<&str> =
            report["by_year"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
        assert_eq!(
            years,
            ["1989-2000", "2001-2004", "2005-2007", "2008-2009", "2010-2011", "2012-2013", "2014-2015", "2016-2017"]
        );
        let in_spans: u64 =
            report["by_year"].as_array().unwrap().iter().map(|g| g["metrics"]["n"].as_u64().unwrap()).sum();
        assert_eq!(in_spans + report["outside_year_spans"].as_u64().unwrap(), 16);
        assert_eq!(report["outside_year_spans"], 4, "two items without a year, two from 1985");
        let mesh: Vec<&str> =
            report["by_mesh"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
        assert_eq!(mesh, ["Female", "Male", "Middle Aged", "Aged", "Adult", "Adolescent"]);
        assert_eq!(metrics["predictions"].as_array().unwrap().len(), 16);

        // The saved predictions score, under the official script's semantics, what metrics.json says.
        let (accuracy, macro_f1) = kailin_eval::official_scores(&truth, out.join("predictions/pubmedqa.json")).unwrap();
        assert_eq!(report["overall"]["accuracy"].as_f64().unwrap(), accuracy);
        assert_eq!(report["overall"]["macro_f1"].as_f64().unwrap(), macro_f1);
        let correct = predictions.iter().filter(|(k, v)| gt[k.as_str()] == **v).count();
        assert_eq!(accuracy, correct as f64 / 16.0);
    }
}

#[test]
fn pubmedqa_refuses_what_it_cannot_measure() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    tiny_llama(&model);
    let out = dir.path().join("out");
    let fail = |args: &[&str], want: &str| {
        let run = kailin_timed(args, b"", Duration::from_secs(60));
        let err = String::from_utf8_lossy(&run.output.stderr);
        assert!(!run.output.status.success() && err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    };
    // No data directory.
    fail(
        &["eval", "pubmedqa", "--model", s(&model), "--data", s(&dir.path().join("nowhere")), "--out", s(&out)],
        "test_ground_truth.json: cannot read",
    );
    // A test PMID without its record.
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("pubmedqa")).unwrap();
    std::fs::copy(fixture("data/pubmedqa/ori_pqal.json"), data.join("pubmedqa/ori_pqal.json")).unwrap();
    std::fs::write(data.join("pubmedqa/test_ground_truth.json"), r#"{"123": "yes"}"#).unwrap();
    fail(&["eval", "pubmedqa", "--model", s(&model), "--data", s(&data), "--out", s(&out)], "test PMID 123");
    // An answer that is not yes/no/maybe.
    std::fs::write(data.join("pubmedqa/test_ground_truth.json"), r#"{"91000010": "probably"}"#).unwrap();
    fail(&["eval", "pubmedqa", "--model", s(&model), "--data", s(&data), "--out", s(&out)], "\"probably\"");
    assert!(!out.exists(), "nothing written on failure");
}

#[test]
fn bioasq_and_compare_measure_and_pair_evaluations() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    tiny_llama(&model);
    let bioasq = fixture("data/bioasq");
    let out = dir.path().join("bioasq");
    let run = kailin_timed(
        &["eval", "bioasq", "--model", s(&model), "--data", s(&bioasq), "--out", s(&out)],
        b"",
        Duration::from_secs(120),
    );
    let stdout = String::from_utf8_lossy(&run.output.stdout);
    assert!(run.output.status.success(), "{}", String::from_utf8_lossy(&run.output.stderr));
    assert!(
        stdout.contains("BioASQ yes/no (reasoning-required; 9 items)") && stdout.contains("calibrated"),
        "{stdout}"
    );
    let predictions = json(&out.join("predictions/bioasq.json"));
    assert!(predictions.as_object().unwrap().values().all(|v| ["yes", "no"].contains(&v.as_str().unwrap())));
    let metrics = json(&out.join("metrics.json"));
    assert_eq!(metrics["benchmark"], "bioasq");
    assert!(metrics["report"]["overall"]["accuracy_ci95"].as_array().is_some_and(|c| c.len() == 2));

    // An evaluation compared with itself: no difference, p = 1, written where asked.
    let file = dir.path().join("cmp.json");
    let run = kailin_timed(
        &["eval", "compare", "--a", s(&out), "--b", s(&out), "--out", s(&file)],
        b"",
        Duration::from_secs(30),
    );
    assert!(run.output.status.success(), "{}", String::from_utf8_lossy(&run.output.stderr));
    let c = json(&file);
    assert_eq!(
        (c["n"].as_u64(), c["accuracy_diff"].as_f64(), c["mcnemar_p"].as_f64()),
        (Some(9), Some(0.0), Some(1.0))
    );
    assert_eq!(c["discordant"], serde_json::json!([0, 0]));
    assert!(String::from_utf8_lossy(&run.output.stdout).contains("no detectable difference"));

    // Another benchmark's items: refused, naming the difference; no yes/no question: refused.
    let pqa = dir.path().join("pqa");
    let run = kailin_timed(
        &["eval", "pubmedqa", "--model", s(&model), "--data", s(&fixture("data")), "--out", s(&pqa)],
        b"",
        Duration::from_secs(120),
    );
    assert!(run.output.status.success(), "{}", String::from_utf8_lossy(&run.output.stderr));
    let run = kailin_timed(&["eval", "compare", "--a", s(&out), "--b", s(&pqa)], b"", Duration::from_secs(30));
    let err = String::from_utf8_lossy(&run.output.stderr);
    assert!(!run.output.status.success() && err.contains("the benchmark differs: bioasq in a, pubmedqa in b"), "{err}");
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("1_golden.json"), r#"{"questions": [{"id": "x", "body": "What?", "type": "factoid"}]}"#)
        .unwrap();
    let run = kailin_timed(
        &["eval", "bioasq", "--model", s(&model), "--data", s(&empty), "--out", s(&dir.path().join("o2"))],
        b"",
        Duration::from_secs(60),
    );
    let err = String::from_utf8_lossy(&run.output.stderr);
    assert!(!run.output.status.success() && err.contains("no yes/no question"), "{err}");
}

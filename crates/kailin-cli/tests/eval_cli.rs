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

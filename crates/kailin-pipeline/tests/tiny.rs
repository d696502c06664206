//! The `tiny` preset end to end: every output file's shape and counts; a rerun reuses every
//! stage; a run killed (SIGKILL) at several points and restarted ends with the same outputs as
//! an uninterrupted one; bad configuration and missing data are named.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use burn::backend::{Autodiff, Flex};
use kailin_core::{CptRecord, DpoExample, SftRecord};
use kailin_pipeline::{Config, Error, Summary};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tiny(overrides: &[&str]) -> Config {
    let mut all = vec![format!("data.dir={:?}", repo().join("fixtures/data").display().to_string())];
    all.extend(overrides.iter().map(|s| (*s).to_owned()));
    Config::load(Some("tiny"), None, &all).unwrap()
}

fn run(config: &Config, out: &Path) -> kailin_pipeline::Result<Summary> {
    kailin_pipeline::run::<Autodiff<Flex>>(config, out, &Default::default(), &mut |_| ())
}

fn records<T: serde::de::DeserializeOwned>(path: &Path) -> Vec<T> {
    kailin_core::read_jsonl(path).unwrap()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The run's published files, with the output directory's path taken out (provenance names
/// model paths), for comparing two runs.
fn published(out: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for rel in ["datasets/preference.jsonl", "datasets/cpt.jsonl", "datasets/sft.jsonl", "predictions/pubmedqa.json"] {
        let text = std::fs::read_to_string(out.join(rel)).unwrap();
        files.push((rel.to_owned(), text.replace(&out.display().to_string(), "OUT")));
    }
    files
}

#[test]
fn the_tiny_preset_writes_every_output_with_consistent_counts_and_a_rerun_reuses_all() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let summary = run(&tiny(&[]), &out).unwrap();

    // Every stage ran, in the method's order.
    let stages: Vec<&str> = summary.stages.iter().map(|s| s.stage.as_str()).collect();
    for want in
        kailin_pipeline::STAGES.iter().filter(|s| **s != "eval").copied().chain(["eval-kailin-reasoning-required"])
    {
        assert!(stages.contains(&want), "{want} missing from {stages:?}");
    }
    assert!(summary.stages.iter().all(|s| !s.cached));

    // The domain encoder: the tiny one fine-tuned on the fixtures' pairs, in
    // sentence-transformers' layout, and the store built with it.
    let encoder = summary.stages.iter().find(|s| s.stage == "encoder").unwrap();
    let kailin_pipeline::StageSummary::Train(t) = &encoder.summary else { panic!("encoder: {:?}", encoder.summary) };
    assert!(t.records > 0 && t.steps > 0 && t.note.as_deref().is_some_and(|n| n.contains("BioASQ")), "{t:?}");
    for f in ["model.safetensors", "config.json", "modules.json", "1_Pooling/config.json"] {
        assert!(out.join("stages/encoder/model").join(f).is_file(), "{f}");
    }
    assert!(!out.join("stages/encoder.checkpoints").exists(), "spent checkpoints are removed");
    let store_encoder = json(&out.join("stages/store/store/store.json"))["encoder"].clone();

    // The corpus: the fixture's 24 records less the 16 of the test split.
    let kailin_pipeline::StageSummary::Corpus(corpus) = &summary.stages[0].summary else { panic!("corpus first") };
    assert_eq!((corpus.read, corpus.test_split, corpus.documents), (24, 16, 8));
    let docs: Vec<kailin_core::Document> = records(&out.join("stages/corpus/documents.jsonl"));
    let test = kailin_eval::read_labels(repo().join("fixtures/data/pubmedqa/test_ground_truth.json")).unwrap();
    assert!(docs.iter().all(|d| !test.contains_key(&d.id)), "no test document in the corpus");

    // The retrieval corpus: the corpus, PQA-L outside the test split (the same 8 again) and
    // the two corpus files (a PubTator record without text is skipped, an XML citation
    // without an abstract left out).
    let rc = summary.stages.iter().find(|s| s.stage == "retrieval-corpus").unwrap();
    let kailin_pipeline::StageSummary::RetrievalCorpus(rc) = &rc.summary else { panic!("retrieval corpus") };
    let sources: Vec<(&str, usize)> = rc.by_source.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(sources, [("../corpus/articles.xml", 1), ("../corpus/docs.pubtator", 2), ("generation", 8)], "{rc:?}");
    assert_eq!((rc.documents, rc.duplicate_ids, rc.test_split, rc.empty), (11, 8, 16, 1), "{rc:?}");
    let contexts: Vec<kailin_core::Document> = records(&out.join("stages/retrieval-corpus/documents.jsonl"));
    assert_eq!(contexts.len(), rc.documents);
    assert!(contexts.iter().all(|d| !test.contains_key(&d.id)), "no test document among the contexts");
    let kailin_pipeline::StageSummary::Store(store) =
        &summary.stages.iter().find(|s| s.stage == "store").unwrap().summary
    else {
        panic!("store")
    };
    assert_eq!(store.documents as usize, contexts.len(), "the store embeds the retrieval corpus");

    // Datasets: shapes and counts as metrics.json reports them.
    let metrics = json(&out.join("metrics.json"));
    let counts: std::collections::BTreeMap<String, u64> = metrics["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d[0].as_str().unwrap().to_owned(), d[1].as_u64().unwrap()))
        .collect();
    let pref: Vec<DpoExample> = records(&out.join("datasets/preference.jsonl"));
    let cpt: Vec<CptRecord> = records(&out.join("datasets/cpt.jsonl"));
    let sft: Vec<SftRecord> = records(&out.join("datasets/sft.jsonl"));
    assert_eq!(counts["preference"], pref.len() as u64);
    assert_eq!(counts["cpt"], cpt.len() as u64);
    assert_eq!(counts["sft"], sft.len() as u64);
    let labels = summary.stages.iter().find(|s| s.stage == "labels").unwrap();
    let kailin_pipeline::StageSummary::Labels(labels) = &labels.summary else { panic!("labels") };
    assert_eq!(labels.pairs, pref.len());
    assert!(!pref.is_empty() && !cpt.is_empty(), "the tiny agents keep questions and the rule labels pairs");
    assert!(pref.iter().all(|p| p.chosen != p.rejected && p.prompt.ends_with("ending with \"?\".")));

    // DPO holds whole documents' pairs out and measures its implicit reward on them over the
    // steps; its check scores the general agent's questions on held-out documents before and
    // after DPO.
    let dpo = summary.stages.iter().find(|s| s.stage == "dpo").unwrap();
    let kailin_pipeline::StageSummary::Train(dpo) = &dpo.summary else { panic!("dpo") };
    assert_eq!(dpo.records + dpo.eval_records, pref.len(), "every pair trains or is held out");
    assert!(dpo.eval_records >= 2 && dpo.note.is_none(), "dpo.eval_pairs = 2: {dpo:?}");
    assert!(dpo.eval_curve.len() >= 2 && dpo.eval_curve.iter().all(|e| e.2.is_some_and(|a| (0.0..=1.0).contains(&a))));
    assert_eq!(dpo.eval_curve.last().map(|e| e.0), Some(dpo.steps as u64), "evaluated after the last step");
    let check = summary.stages.iter().find(|s| s.stage == "dpo-check").unwrap();
    let kailin_pipeline::StageSummary::DpoCheck(check) = &check.summary else { panic!("dpo-check") };
    // The three retrieval-corpus documents outside the generation corpus (both corpus files').
    assert_eq!((check.documents, check.eligible), (3, 3), "{check:?}");
    assert_eq!(check.scored + check.unscored.values().sum::<usize>(), check.documents);
    assert_eq!(check.reward.as_ref().map(|r| r.n), Some(check.scored));
    let rows: Vec<serde_json::Value> = records(&out.join("stages/dpo-check/check.jsonl"));
    assert_eq!(rows.len(), check.documents);
    assert!(rows.iter().all(|r| docs.iter().all(|d| d.id != r["doc_id"].as_str().unwrap())), "held-out documents");
    assert_eq!(sft.len(), cpt.len(), "one answer per CPT record");
    for (c, s) in cpt.iter().zip(&sft) {
        assert_eq!((&c.id, &c.question), (&s.id, &s.question));
        assert!(c.question.ends_with('?'));
        assert!(!c.context.doc_ids.is_empty() && c.context.doc_ids.len() <= 2, "top-k = 2 contexts");
        assert!(c.context.doc_ids.iter().all(|id| contexts.iter().any(|d| &d.id == id)));
    }

    // Predictions: the official shape, every test PMID.
    let predictions = json(&out.join("predictions/pubmedqa.json"));
    let predictions = predictions.as_object().unwrap();
    assert_eq!(predictions.len(), 16);
    assert!(predictions.keys().all(|k| test.contains_key(k)));
    let (accuracy, _) = kailin_eval::official_scores(
        repo().join("fixtures/data/pubmedqa/test_ground_truth.json"),
        out.join("predictions/pubmedqa.json"),
    )
    .unwrap();
    let kailin = summary
        .pubmedqa
        .iter()
        .find(|p| p.model == "kailin" && p.setting == kailin_eval::Setting::ReasoningRequired)
        .unwrap();
    assert_eq!(kailin.report.overall.accuracy, accuracy, "the saved predictions score what metrics.json says");
    let models: Vec<&str> = summary.pubmedqa.iter().map(|p| p.model.as_str()).collect();
    assert_eq!(models, ["base", "base", "kailin", "kailin", "control", "control"]);
    // Every figure with its interval, the scores past the label bias, the calibration prior.
    let o = &kailin.report.overall;
    let [lo, hi] = o.accuracy_ci95.unwrap();
    assert!(lo <= o.accuracy && o.accuracy <= hi && o.macro_f1_ci95.is_some());
    assert!(kailin.report.scores.calibrated.is_some() && kailin.report.scores.gold_logprob <= 0.0);
    assert!(kailin.report.scores.mean_calibrated.is_some() && kailin.report.scores.mean_prior.is_some());
    // BioASQ yes/no on the held-out batch (2 of its 3 questions have a yes/no answer).
    let models: Vec<&str> = summary.bioasq.iter().map(|p| p.model.as_str()).collect();
    assert_eq!(models, ["base", "kailin", "control"]);
    assert!(summary.bioasq.iter().all(|p| p.report.overall.n == 2));
    assert!(json(&out.join("predictions/bioasq.json")).as_object().unwrap().len() == 2);
    // Paired comparisons in both settings and on BioASQ, each in words; the stage directories
    // are `kailin eval compare` inputs.
    let pairs: Vec<(&str, &str)> = summary.comparisons.iter().map(|c| (c.a.as_str(), c.b.as_str())).collect();
    assert_eq!(pairs.len(), 9, "{pairs:?}");
    assert_eq!(pairs[..3], [("control", "kailin"), ("control", "kailin"), ("control", "kailin")]);
    for c in &summary.comparisons {
        assert_eq!(c.comparison.n, if c.benchmark == "bioasq" { 2 } else { 16 });
        assert!(
            c.words.starts_with(&format!("{} − {}: ", c.b, c.a)) && c.words.contains("McNemar p = "),
            "{}",
            c.words
        );
    }
    let eval_dir = out.join("stages/eval-kailin-reasoning-required");
    let again = kailin_eval::Evaluation::read(&eval_dir).unwrap();
    assert_eq!(again.compare(&again).unwrap().mcnemar_p, 1.0);
    let arms: Vec<&str> = summary.arms.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(arms, ["kailin", "control", "base"]);
    assert!(summary.arms[1].1.contains("PQA-L's training half alone"), "{}", summary.arms[1].1);

    // Models: Hugging Face directories.
    for m in ["agent-general", "agent-domain", "dpo", "target-cpt", "target", "control"] {
        let d = out.join("models").join(m);
        for f in ["config.json", "model.safetensors", "tokenizer.json", "report.json", kailin_pipeline::STAGE_FILE] {
            assert!(d.join(f).is_file(), "{}", d.join(f).display());
        }
    }

    // report.md holds the tables.
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    for s in [
        "## Stages",
        "## Datasets",
        "## PubMedQA",
        "## BioASQ yes/no",
        "## Comparisons (paired, same items)",
        "## What each arm trained on",
        "DPO's implicit reward (chosen above rejected): held-out preference accuracy on ",
        "held-out documents (of 3 eligible), ",
        "kailin − control: ",
        "PubMedQA accuracy by publication year",
        "PubMedQA accuracy by MeSH subset",
        "calibrated accuracy",
        "mean-prediction calibrated accuracy",
        "Agents' overlap",
        "with MeSH headings) of 24 read",
    ] {
        assert!(report.contains(s), "{s}");
    }

    assert!(!report.contains("{\""), "the stage table is in words, not JSON");
    let card = std::fs::read_to_string(out.join("datasets/README.md")).unwrap();
    for s in
        ["configs:", "config_name: sft", "data_files: sft.jsonl", "National Library of Medicine", "BioASQ", "PubMedQA"]
    {
        assert!(card.contains(s), "the dataset card has {s}");
    }

    // The plots (where a font exists to draw their text).
    match &summary.plots {
        Ok(plots) => {
            for name in [
                "records",
                "margins",
                "training_loss",
                "dpo_reward_margin",
                "dpo_heldout_accuracy",
                "pubmedqa_years",
                "pubmedqa_mesh",
            ] {
                let rel = format!("plots/{name}.png");
                assert!(plots.contains(&rel), "{rel} in {plots:?}");
                assert!(std::fs::read(out.join(&rel)).unwrap().starts_with(b"\x89PNG"), "{rel} is a PNG");
                assert!(report.contains(&format!("]({rel})")));
            }
        }
        Err(why) => assert!(why.contains("KAILIN_FONT") && report.contains(why.as_str()), "{why}"),
    }

    // The ablations: each a variant that reuses the main run's stages before the one it changes.
    let names: Vec<&str> = summary.ablations.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["same-agents", "no-mesh", "general-embedding", "bm25", "top-k-1"]);
    for a in &summary.ablations {
        assert!(!a.stages_ran.iter().any(|s| s == "corpus" || s == "agent-general"), "{}: {:?}", a.name, a.stages_ran);
        assert!(a.stages_ran.iter().any(|s| s == "labels" || s == "candidates"), "{}: {:?}", a.name, a.stages_ran);
        assert_eq!(a.pubmedqa.len(), 2, "{}: the kailin model in both settings", a.name);
        assert_eq!(a.bioasq.len(), 1, "{}: and on BioASQ", a.name);
        assert_eq!(a.against_main.len(), 3, "{}: paired with the main run's kailin model", a.name);
        assert!(a.out.join("stages/cpt/cpt.jsonl").exists() || a.name == "no-mesh" || a.name == "same-agents");
        // Only the main run fine-tunes the encoder; the general-embedding row embeds with its base.
        assert!(!a.stages_ran.iter().any(|s| s == "encoder"), "{}: {:?}", a.name, a.stages_ran);
        if a.name == "general-embedding" {
            assert!(a.stages_ran.iter().any(|s| s == "store"), "{:?}", a.stages_ran);
            let theirs = json(&a.out.join("stages/store/store/store.json"))["encoder"].clone();
            assert!(theirs.is_string() && theirs != store_encoder, "the main store embeds with the trained weights");
        }
    }
    assert!(report.contains("## Ablations") && report.contains("| bm25 |"));

    // A rerun reuses every stage and publishes the same files.
    let before = published(&out);
    let again = run(&tiny(&[]), &out).unwrap();
    assert!(
        again.stages.iter().all(|s| s.cached),
        "{:?}",
        again.stages.iter().filter(|s| !s.cached).map(|s| &s.stage).collect::<Vec<_>>()
    );
    assert_eq!(published(&out), before);

    // A moved run directory keeps its finished stages (keys name the run's models relatively).
    let moved = out.with_file_name("moved");
    std::fs::rename(&out, &moved).unwrap();
    let out = moved;
    let again = run(&tiny(&[]), &out).unwrap();
    let reran: Vec<&String> = again.stages.iter().filter(|s| !s.cached).map(|s| &s.stage).collect();
    assert!(reran.is_empty(), "after a move: {reran:?}");

    // A changed setting reruns its stage and those after it, not those before.
    let changed = run(&tiny(&["retrieval.k=1"]), &out).unwrap();
    let cached = |name: &str| changed.stages.iter().find(|s| s.stage == name).unwrap().cached;
    assert!(cached("corpus") && cached("agent-general") && cached("candidates"));
    assert!(!cached("labels") && !cached("cpt") && !cached("target"));
    // A setting of training alone reruns the training stages, not the datasets.
    let changed = run(&tiny(&["retrieval.k=1", "target.context_chars=50"]), &out).unwrap();
    let cached = |name: &str| changed.stages.iter().find(|s| s.stage == name).unwrap().cached;
    assert!(cached("cpt") && cached("sft") && !cached("target-cpt") && !cached("target"));
}

/// The child process of the kill and shard tests: runs the tiny pipeline into
/// `$KAILIN_TEST_OUT` (with `$KAILIN_TEST_SHARD` = `I/N` or `$KAILIN_TEST_UNTIL` = a stage).
#[test]
#[ignore = "a helper: the kill and shard tests run it as a child process"]
fn child_run() {
    let Some(out) = std::env::var_os("KAILIN_TEST_OUT") else { return };
    let shard = std::env::var("KAILIN_TEST_SHARD").ok().map(|s| {
        let (i, n) = s.split_once('/').unwrap();
        (i.parse().unwrap(), n.parse().unwrap())
    });
    let options =
        kailin_pipeline::RunOptions { shard, until: std::env::var("KAILIN_TEST_UNTIL").ok(), ..Default::default() };
    let config = if shard.is_some() || options.until.is_some() { tiny(&["run.ablations=[]"]) } else { tiny(&[]) };
    match kailin_pipeline::run_with::<Autodiff<Flex>>(
        &config,
        Path::new(&out),
        &options,
        &Default::default(),
        &mut |_| (),
    ) {
        Ok(_) | Err(Error::Stopped { .. }) => {}
        Err(e) => panic!("{e}"),
    }
}

fn child(out: &Path, vars: &[(&str, &str)]) -> std::process::Child {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", "child_run", "--include-ignored", "--nocapture"])
        .env("KAILIN_TEST_OUT", out)
        .env_remove("KAILIN_TEST_SHARD")
        .env_remove("KAILIN_TEST_UNTIL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (k, v) in vars {
        c.env(k, v);
    }
    c.spawn().unwrap()
}

#[test]
fn per_document_stages_run_as_shards_in_separate_processes_and_merge_to_the_single_process_output() {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("reference");
    run(&tiny(&["run.ablations=[]"]), &reference).unwrap();
    let out = dir.path().join("sharded");
    for stage in kailin_pipeline::PER_DOCUMENT_STAGES {
        // The stages before it, once; then its three shards at the same time.
        assert!(child(&out, &[("KAILIN_TEST_UNTIL", stage)]).wait().unwrap().success());
        let shards: Vec<_> = (0..3).map(|i| child(&out, &[("KAILIN_TEST_SHARD", &format!("{i}/3"))])).collect();
        for mut s in shards {
            assert!(s.wait().unwrap().success());
        }
        assert!(!out.join("stages").join(stage).exists(), "a shard never writes the merged stage");
    }
    // A shard process refuses a stage that is not per-document.
    let e = kailin_pipeline::run_with::<Autodiff<Flex>>(
        &tiny(&["run.ablations=[]"]),
        &out,
        &kailin_pipeline::RunOptions { shard: Some((0, 3)), ..Default::default() },
        &Default::default(),
        &mut |_| (),
    )
    .unwrap_err();
    assert!(matches!(&e, Error::NotReady { stage, .. } if stage == "target-cpt"), "{e}");
    run(&tiny(&["run.ablations=[]"]), &out).unwrap();
    for stage in kailin_pipeline::PER_DOCUMENT_STAGES {
        // Each stage was merged (by the run after its shards) from its three parts.
        assert!(out.join("stages").join(stage).join(kailin_pipeline::STAGE_FILE).exists());
        assert!(out.join("stages").join(format!("{stage}.shards")).is_dir());
    }
    assert_eq!(published(&out), published(&reference), "merged shards equal the single process");
    let bad = kailin_pipeline::RunOptions { shard: Some((3, 3)), ..Default::default() };
    let e = kailin_pipeline::run_with::<Autodiff<Flex>>(&tiny(&[]), &out, &bad, &Default::default(), &mut |_| ());
    assert!(e.unwrap_err().to_string().contains("0 <= I < N"));
}

#[test]
fn a_run_killed_at_any_stage_and_restarted_ends_as_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("reference");
    run(&tiny(&[]), &reference).unwrap();
    let want = published(&reference);

    // Kill points: before anything finished, after a model stage, mid-way, near the end.
    let out = dir.path().join("killed");
    for marker in ["", "models/agent-general/stage.json", "stages/labels/stage.json", "models/target/stage.json"] {
        let mut child = child(&out, &[]);
        let start = Instant::now();
        while !(marker.is_empty() || out.join(marker).exists()) && start.elapsed() < Duration::from_secs(120) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if marker.is_empty() {
            std::thread::sleep(Duration::from_millis(150));
        }
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
        // Whatever is there is whole: every stage directory has its marker (no half stage).
        for parent in ["stages", "models"] {
            for entry in std::fs::read_dir(out.join(parent)).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || name.starts_with("tiny-") {
                    continue; // temporaries (removed by the next run) and the tiny models
                }
                assert!(entry.path().join(kailin_pipeline::STAGE_FILE).exists(), "{parent}/{name} without its marker");
            }
        }
    }
    let summary = run(&tiny(&[]), &out).unwrap();
    assert!(summary.stages.iter().any(|s| s.cached), "the finished stages were reused");
    let got: Vec<(String, String)> = published(&out);
    assert_eq!(got, want, "the resumed run's outputs equal the uninterrupted run's");
    // No temporaries left behind.
    for parent in ["stages", "models"] {
        let left: Vec<String> = std::fs::read_dir(out.join(parent))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}

#[test]
fn bad_configuration_and_missing_data_are_named_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    // A wrong value names the key and the allowed values.
    let e = Config::load(Some("tiny"), None, &["evaluator.kind=oracle".into()]).unwrap_err().to_string();
    assert!(e.contains("oracle") && e.contains("rule") && e.contains("llm-judge"), "{e}");
    // Missing data: the stage that needs it says what and how to fix it.
    let config = tiny(&[&format!("data.dir={:?}", dir.path().join("nowhere").display().to_string())]);
    let e = run(&config, &dir.path().join("a")).unwrap_err();
    assert!(matches!(e, Error::Missing { .. }), "{e}");
    assert!(e.to_string().contains("test_ground_truth.json") && e.to_string().contains("--data"), "{e}");
    // A model path that does not exist.
    let config = tiny(&["models.base=\"/no/such/model\""]);
    let e = run(&config, &dir.path().join("b")).unwrap_err().to_string();
    assert!(e.contains("/no/such/model") && e.contains("models.base"), "{e}");
    // A stage that fails names itself, and the stages before it stay finished.
    let config = tiny(&["agents.held_out=[\"9B9_golden.json\"]"]);
    let out = dir.path().join("c");
    let e = run(&config, &out).unwrap_err().to_string();
    assert!(e.contains("retrieval-corpus") && e.contains("9B9_golden.json"), "{e}");
    assert!(out.join("stages/corpus").join(kailin_pipeline::STAGE_FILE).exists());
}

#[test]
fn a_run_directory_is_refused_when_it_is_a_strangers_in_use_or_names_no_stage() {
    let dir = tempfile::tempdir().unwrap();
    let run = |out: &Path, options: &kailin_pipeline::RunOptions| {
        kailin_pipeline::run_with::<Autodiff<Flex>>(
            &tiny(&["run.ablations=[]"]),
            out,
            options,
            &Default::default(),
            &mut |_| (),
        )
    };
    // A directory with a user's files that no run made: refused, the files untouched.
    let stranger = dir.path().join("mine");
    std::fs::create_dir(&stranger).unwrap();
    std::fs::write(stranger.join("report.md"), "my report\n").unwrap();
    let e = run(&stranger, &Default::default()).unwrap_err();
    assert!(matches!(&e, Error::Refused(_)) && e.to_string().contains("not made by kailin"), "{e}");
    assert_eq!(std::fs::read_dir(&stranger).unwrap().count(), 1);
    assert_eq!(std::fs::read_to_string(stranger.join("report.md")).unwrap(), "my report\n");
    // A run directory another run holds: refused, the holder named.
    let busy = dir.path().join("busy");
    let held = kailin_core::RunDir::open(
        &busy,
        &kailin_core::RunDirOptions {
            flag: "the run directory",
            command: kailin_pipeline::RUN_COMMAND,
            force: false,
            sharing: kailin_core::Sharing::Exclusive,
        },
    )
    .unwrap();
    let e = run(&busy, &Default::default()).unwrap_err();
    assert!(e.to_string().contains("in use by pid"), "{e}");
    drop(held);
    // Only real stages stop a run.
    let until = kailin_pipeline::RunOptions { until: Some("eval-garbage".into()), ..Default::default() };
    let e = run(&dir.path().join("new"), &until).unwrap_err();
    assert!(matches!(&e, Error::Config { .. }) && e.to_string().contains("eval-kailin-reasoning-required"), "{e}");
}

#[test]
fn bioasq_snippets_join_the_retrieval_corpus_without_the_held_out_batches() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let config = tiny(&["retrieval.corpus=[\"pubmedqa\", \"bioasq\"]"]);
    let options = kailin_pipeline::RunOptions { until: Some("agent-general".into()), ..Default::default() };
    let stopped =
        kailin_pipeline::run_with::<Autodiff<Flex>>(&config, &out, &options, &Default::default(), &mut |_| ());
    assert!(matches!(stopped, Err(Error::Stopped { .. })), "{stopped:?}");
    let contexts: Vec<kailin_core::Document> = records(&out.join("stages/retrieval-corpus/documents.jsonl"));
    let snippets = |file: &str| {
        let (qs, _) = kailin_corpus::read_bioasq(repo().join("fixtures/data/bioasq/Task1").join(file), false).unwrap();
        kailin_corpus::unique_snippets(&qs).iter().map(|s| s.document().id).collect::<Vec<_>>()
    };
    let (train, held) = (snippets("1B1_golden.json"), snippets("1B2_golden.json"));
    let ids: Vec<&str> = contexts.iter().map(|d| d.id.as_str()).collect();
    assert!(train.iter().all(|id| ids.contains(&id.as_str())), "every training-batch snippet is retrievable");
    assert!(held.iter().all(|id| !ids.contains(&id.as_str())), "no held-out snippet among the contexts");
    assert_eq!(contexts.iter().filter(|d| d.source == "bioasq").count(), train.len());
    // An entry that is neither a source nor a path is named.
    let config = tiny(&["retrieval.corpus=[\"pubmedqa\", \"no-such-dir\"]"]);
    let e = run(&config, &dir.path().join("other")).unwrap_err().to_string();
    assert!(e.contains("retrieval.corpus entry \"no-such-dir\"") && e.contains("\"generation\""), "{e}");
}

#[test]
fn hybrid_retrieval_builds_the_store_and_labels_through_both_engines() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let config = tiny(&["retrieval.kind=\"hybrid\""]);
    assert!(kailin_pipeline::planned_stages(&config).contains(&"store".to_owned()));
    let options = kailin_pipeline::RunOptions { until: Some("dpo".into()), ..Default::default() };
    let stopped =
        kailin_pipeline::run_with::<Autodiff<Flex>>(&config, &out, &options, &Default::default(), &mut |_| ());
    assert!(matches!(stopped, Err(Error::Stopped { .. })), "{stopped:?}");
    assert!(out.join("stages/store/store/store.json").is_file());
    let labels: Vec<serde_json::Value> = records(&out.join("stages/labels/labels.jsonl"));
    assert!(!labels.is_empty());
    // Every context a label names is a document of the retrieval corpus.
    let corpus: Vec<kailin_core::Document> = records(&out.join("stages/retrieval-corpus/documents.jsonl"));
    let ids: std::collections::HashSet<&str> = corpus.iter().map(|d| d.id.as_str()).collect();
    for label in &labels {
        for side in label["contexts"].as_array().unwrap() {
            for c in side.as_array().unwrap() {
                let id = c.as_str().or_else(|| c["doc_id"].as_str()).or_else(|| c["id"].as_str()).unwrap();
                assert!(ids.contains(id), "{id}");
            }
        }
    }
}

#[test]
fn a_run_switched_to_the_domain_encoder_keeps_every_stage_before_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let stop = kailin_pipeline::RunOptions { until: Some("dpo".into()), ..Default::default() };
    let run_until = |config: &Config| {
        kailin_pipeline::run_with::<Autodiff<Flex>>(config, &out, &stop, &Default::default(), &mut |_| ())
    };
    let general = tiny(&["run.ablations=[]", "models.encoder=\"tiny\""]);
    assert!(!kailin_pipeline::planned_stages(&general).contains(&"encoder".to_owned()));
    assert!(matches!(run_until(&general), Err(Error::Stopped { .. })));
    let domain = tiny(&["run.ablations=[]"]);
    // The plan goes on past the encoder stage that never ran, and says so exactly.
    let plan = kailin_pipeline::plan::<Autodiff<Flex>>(&domain, &out, &Default::default()).unwrap();
    let row = |s: &str| plan.iter().find(|r| r.stage == s).unwrap_or_else(|| panic!("{s}: {plan:?}"));
    assert!(!row("encoder").cached && row("encoder").why.contains("not run"), "{plan:?}");
    for s in ["corpus", "retrieval-corpus", "agent-general", "agent-domain", "candidates"] {
        assert!(row(s).cached, "{s}: {plan:?}");
    }
    assert!(!row("store").cached && row("store").why.contains("encoder"), "{plan:?}");
    // And the run does what the plan said.
    let mut ran = Vec::new();
    let stopped = kailin_pipeline::run_with::<Autodiff<Flex>>(&domain, &out, &stop, &Default::default(), &mut |e| {
        if let kailin_pipeline::Event::Done { stage, cached: false, .. } = e {
            ran.push(stage.to_owned());
        }
    });
    assert!(matches!(stopped, Err(Error::Stopped { .. })), "{stopped:?}");
    assert_eq!(ran, ["encoder", "store", "labels"]);
}

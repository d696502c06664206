//! The `kailin mesh …` contract, exercised through the built binary on the fixture hierarchy.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::Output;

mod common;

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/mesh").join(name).display().to_string()
}

fn kailin(args: &[&str], stdin: &str) -> Output {
    common::kailin_timed(args, stdin.as_bytes(), std::time::Duration::from_secs(120)).output
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn write_tmp(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn info_prints_counts_for_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("m.cache").display().to_string();
    stdout(&kailin(&["mesh", "cache", "--mesh", &fixture("mini.tsv"), "--out", &cache], ""));
    for (file, descriptors) in [
        (fixture("mini.tsv"), 30),
        (fixture("mini_desc.xml"), 30),
        (fixture("mini_mtrees.bin"), 28),
        (cache.clone(), 30),
    ] {
        let out = stdout(&kailin(&["mesh", "info", "--mesh", &file], ""));
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["descriptors"], descriptors, "{file}");
        assert_eq!(v["with_tree"], 28);
        assert_eq!(v["tree_numbers"], 35);
    }
}

#[test]
fn sim_keeps_input_order_and_precision() {
    let dir = tempfile::tempdir().unwrap();
    let pairs =
        write_tmp(&dir, "pairs.tsv", "D900003\tD900004\nD900004\tD900003\nD900003\tD900024\n\nD900003\tD900003\n");
    let out =
        stdout(&kailin(&["mesh", "sim", "--mesh", &fixture("mini.tsv"), "--measure", "resnik", "--pairs", &pairs], ""));
    let lines: Vec<Vec<&str>> = out.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 5, "one output line per input line: {out}");
    assert_eq!(lines[3], [""], "an empty line for a blank one");
    assert_eq!((lines[0][0], lines[0][1]), ("D900003", "D900004"));
    assert_eq!((lines[1][0], lines[1][1]), ("D900004", "D900003"));
    assert_eq!(lines[0][2], lines[1][2], "symmetric");
    let score: f64 = lines[0][2].parse().unwrap();
    // Neoplasms by Site: 3 descendants among N = 28.
    assert!((score - (1.0 - 4f64.ln() / 28f64.ln())).abs() < 1e-6);
    assert!(lines[0][2].split('.').nth(1).unwrap().len() >= 6, "at least 6 decimals");
    assert_eq!(lines[2][2].parse::<f64>().unwrap(), 0.0);

    let lin = stdout(&kailin(
        &["mesh", "sim", "--mesh", &fixture("mini.tsv"), "--measure", "lin", "--lca", "tree", "--pairs", &pairs],
        "",
    ));
    let last: f64 = lin.lines().last().unwrap().split('\t').nth(2).unwrap().parse().unwrap();
    assert_eq!(last, 1.0, "Lin(a, a) = 1");
}

#[test]
fn unknown_ui_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = write_tmp(&dir, "pairs.tsv", "D900003\tD900004\nD900003\tD123456\n");
    let out = kailin(&["mesh", "sim", "--mesh", &fixture("mini.tsv"), "--measure", "resnik", "--pairs", &pairs], "");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("D123456") && err.contains("pairs.tsv:2"), "{err}");
    assert!(out.stdout.is_empty(), "nothing is printed before the input is validated");
}

#[test]
fn set_sim_mean_and_bma() {
    let dir = tempfile::tempdir().unwrap();
    let sets = write_tmp(&dir, "sets.tsv", "D900003,D900009\tD900004,D900003\nD900028\tD900003\n");
    let mean = stdout(&kailin(&["mesh", "set-sim", "--mesh", &fixture("mini.tsv"), "--sets", &sets], ""));
    let bma =
        stdout(&kailin(&["mesh", "set-sim", "--mesh", &fixture("mini.tsv"), "--agg", "bma", "--sets", &sets], ""));
    let m: Vec<f64> = mean.lines().map(|l| l.parse().unwrap()).collect();
    let b: Vec<f64> = bma.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(m.len(), 2);
    assert!(b[0] >= m[0], "best-match average is at least the mean");
    assert_eq!(m[1], 0.0, "Female is outside the tree and dropped: an empty side scores 0");
}

#[test]
fn extract_prints_character_offsets() {
    let input = "Parkinson disease (PD) is common.\nÄltere Patienten: asthma and AIDS\n\n";
    let out = stdout(&kailin(&["mesh", "extract", "--mesh", &fixture("mini.tsv")], input));
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "one JSON line per input line, empty ones included");
    let first = lines[0]["matches"].as_array().unwrap();
    assert_eq!(first[0]["ui"], "D900013");
    assert_eq!((first[0]["start"].as_u64(), first[0]["end"].as_u64()), (Some(0), Some(17)));
    assert_eq!(first[1]["text"], "PD");
    let second = lines[1]["matches"].as_array().unwrap();
    let text: Vec<char> = "Ältere Patienten: asthma and AIDS".chars().collect();
    for m in second {
        let (s, e) = (m["start"].as_u64().unwrap() as usize, m["end"].as_u64().unwrap() as usize);
        assert_eq!(text[s..e].iter().collect::<String>(), m["text"].as_str().unwrap(), "offsets count characters");
    }
    assert_eq!(second.len(), 2);
    assert!(lines[2]["matches"].as_array().unwrap().is_empty());
}

#[test]
fn extract_nested_adds_chemicals_inside_enzyme_names() {
    let dir = tempfile::tempdir().unwrap();
    let mesh = write_tmp(
        &dir,
        "enz.tsv",
        "D1\tOrganic Chemicals\t\tD02\nD2\tDopamine\t\tD02.001\nD3\tEnzymes\t\tD08\n\
         D4\tDopamine beta-Hydroxylase\t\tD08.001\n",
    );
    let input = "Dopamine beta-hydroxylase was low.\n";
    let uis = |out: &str| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        v["matches"].as_array().unwrap().iter().map(|m| m["ui"].as_str().unwrap().to_owned()).collect()
    };
    let plain = uis(&stdout(&kailin(&["mesh", "extract", "--mesh", &mesh], input)));
    let nested = uis(&stdout(&kailin(&["mesh", "extract", "--nested", "--mesh", &mesh], input)));
    assert_eq!(plain, ["D4"], "longest match only");
    assert_eq!(nested, ["D4", "D2"], "plus the chemical the enzyme is named after");
}

#[test]
fn bad_mesh_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write_tmp(&dir, "bad.tsv", "D1\tA\t\tA01\nD2\tB\t\tZ99.001\n");
    let out = kailin(&["mesh", "info", "--mesh", &bad], "");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Z99.001") && err.contains("Z99"), "{err}");
}

#[test]
fn long_inputs_keep_order_and_line_numbers_across_threads() {
    let dir = tempfile::tempdir().unwrap();
    // Distinct lines, CRLF and blank ones (a tab alone is blank too) among them, scored one
    // by one first.
    let distinct = ["D900003\tD900004", "D900004\tD900024\r", "", "D900009\tD900003", " \t ", "  D900003 \t D900003"];
    let single = write_tmp(&dir, "one.tsv", &(distinct.join("\n") + "\n"));
    let mesh = fixture("mini.tsv");
    let want: Vec<String> =
        stdout(&kailin(&["mesh", "sim", "--mesh", &mesh, "--pairs", &single], "")).lines().map(str::to_owned).collect();
    assert_eq!(want.len(), distinct.len());
    assert_eq!(want[4], "");
    // The last line is not blank (a text without its final newline keeps every line).
    let n = 20_002;
    let text: String = (0..n).map(|i| format!("{}\n", distinct[i % distinct.len()])).collect();
    let many = write_tmp(&dir, "many.tsv", &text);
    let out = stdout(&kailin(&["mesh", "sim", "--mesh", &mesh, "--pairs", &many], ""));
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(got.len(), n);
    for (i, line) in got.iter().enumerate() {
        assert_eq!(*line, want[i % distinct.len()], "line {}", i + 1);
    }
    // Without a final newline: the same lines.
    let many = write_tmp(&dir, "many2.tsv", text.trim_end_matches('\n'));
    let out = stdout(&kailin(&["mesh", "sim", "--mesh", &mesh, "--pairs", &many], ""));
    assert_eq!(out.lines().count(), n);
    // A bad line far into the input is named by its number, and nothing is printed.
    let mut bad: Vec<String> = (0..n).map(|i| distinct[i % distinct.len()].to_owned()).collect();
    bad[15_000] = "D900003\tD123456".into();
    let bad = write_tmp(&dir, "bad.tsv", &(bad.join("\n") + "\n"));
    let o = kailin(&["mesh", "sim", "--mesh", &mesh, "--pairs", &bad], "");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("bad.tsv:15001") && err.contains("D123456"), "{err}");
    assert!(o.stdout.is_empty());
    // Extraction: one line out per line in, in order.
    let docs: String = (0..5_000).map(|i| if i % 2 == 0 { "breast neoplasms\n" } else { "\n" }).collect();
    let out = stdout(&kailin(&["mesh", "extract", "--mesh", &mesh], &docs));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5_000);
    assert_eq!(lines[0], lines[4_998]);
    assert_eq!(lines[1], "{\"matches\":[]}");
}

//! Language-model checks that need the real model and are not part of the test run:
//! perplexity on PubMedQA abstracts, and the cross-check against llama.cpp.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result};
use burn::backend::Flex;
use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use kailin_lm::{Llama, Tokenizer};
use serde::de::{IgnoredAny, MapAccess, Visitor};

fn load(model: &Option<PathBuf>) -> Result<(PathBuf, Llama<Flex>, Tokenizer)> {
    let path = match model {
        Some(p) => p.clone(),
        None => kailin_lm::smollm2_gguf().context("no model cache directory (set KAILIN_MODELS)")?,
    };
    let (model, _, tokenizer) = kailin_lm::load::<Flex>(&path, 2048, &Default::default())
        .with_context(|| format!("{} (run `cargo xtask fetch-models`)", path.display()))?;
    Ok((path, model, tokenizer))
}

fn bar(n: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(n as u64).with_message(what.to_owned());
    if let Ok(style) = ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} [{elapsed} < {eta}]") {
        bar.set_style(style);
    }
    bar
}

/// The keys of a JSON object in file order.
struct Keys(Vec<String>);

impl<'de> serde::Deserialize<'de> for Keys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Keys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some((k, IgnoredAny)) = map.next_entry::<String, IgnoredAny>()? {
                    keys.push(k);
                }
                Ok(Keys(keys))
            }
        }
        d.deserialize_map(V)
    }
}

/// Perplexity of the model on the first `n` abstracts of PubMedQA PQA-L (file order; each
/// abstract is its CONTEXTS and LONG_ANSWER joined by spaces, as the model sees plain text).
pub(crate) fn perplexity(data: &Path, model: &Option<PathBuf>, n: usize) -> Result<()> {
    let file = data.join("pubmedqa/ori_pqal.json");
    let text = std::fs::read_to_string(&file).with_context(|| file.display().to_string())?;
    let Keys(order) = serde_json::from_str(&text).with_context(|| file.display().to_string())?;
    let (records, _) = kailin_corpus::read_pubmedqa_from(text.as_bytes(), &file, false)?;
    let by_id: std::collections::HashMap<&str, &kailin_corpus::PubmedqaRecord> =
        records.iter().map(|r| (r.pmid.as_str(), r)).collect();
    let (path, model, tokenizer) = load(model)?;
    let (mut total, mut count, mut truncated) = (0.0f64, 0usize, 0usize);
    let start = Instant::now();
    let bar = bar(n.min(order.len()), "perplexity");
    for pmid in order.iter().take(n) {
        let r = by_id.get(pmid.as_str()).with_context(|| format!("record {pmid} unreadable"))?;
        let abstract_text = format!("{} {}", r.contexts.join(" "), r.long_answer);
        let mut ids = tokenizer.encode(&abstract_text, true)?;
        if ids.len() > model.max_positions() {
            ids.truncate(model.max_positions());
            truncated += 1;
        }
        // Every token but the first is predicted from the ones before it.
        let s = kailin_lm::score(&model, &[(ids[..1].to_vec(), ids[1..].to_vec())])?;
        total += s[0].total;
        count += ids.len() - 1;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let ppl = (-total / count as f64).exp();
    println!(
        "perplexity {ppl:.3} over {count} predicted tokens of the first {n} PubMedQA abstracts \
         ({truncated} truncated), model {}, {:.1} s",
        path.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

const PROMPTS: &[&str] = &[
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "The capital of France is",
    "Programmed cell death (PCD) is the regulated death of cells within an organism. The lace plant",
    "In 2019, 1,234 patients (aged 18–65) received 50 mg/kg of α-synuclein antibody; naïve café",
    "<|im_start|>system\nYou are a biomedical expert.<|im_end|>\n<|im_start|>user\nDoes metformin reduce HbA1c?<|im_end|>\n<|im_start|>assistant\n",
];

/// Runs llama.cpp (llama-cpp-python) and this crate on the same GGUF file and prompts:
/// tokenisation agreement, next-token top-1 agreement and the largest logit difference, and
/// both decoding speeds. Writes the comparison to `out` as JSON.
pub(crate) fn llamacpp_check(model: &Option<PathBuf>, out: &Path) -> Result<()> {
    let (path, llama, tokenizer) = load(model)?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/llamacpp_logits.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("python3")?;
    child.stdin.take().context("stdin")?.write_all(serde_json::to_string(PROMPTS)?.as_bytes())?;
    let output = child.wait_with_output()?;
    anyhow::ensure!(
        output.status.success(),
        "{} failed (is llama-cpp-python installed? see the script's header)",
        script.display()
    );
    let reference: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let results = reference["results"].as_array().context("results")?;
    let mut rows = Vec::new();
    let (mut agree, mut worst) = (0usize, 0f64);
    for r in results {
        let prompt = r["prompt"].as_str().context("prompt")?;
        let ids: Vec<u32> = serde_json::from_value(r["ids"].clone())?;
        let theirs: Vec<f32> = serde_json::from_value(r["logits"].clone())?;
        let ours_ids = tokenizer.encode(prompt, false)?;
        let data: Vec<i64> = ids.iter().map(|&t| i64::from(t)).collect();
        let tokens = Tensor::<Flex, 2, Int>::from_data(TensorData::new(data, [1, ids.len()]), &Default::default());
        let logits = llama.forward(tokens)?;
        let [_, seq, vocab] = logits.dims();
        let ours: Vec<f32> =
            logits.slice([0..1, seq - 1..seq]).reshape([vocab]).into_data().to_vec().unwrap_or_default();
        let argmax = |v: &[f32]| (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b });
        let max_diff = ours.iter().zip(&theirs).map(|(a, b)| f64::from((a - b).abs())).fold(0.0, f64::max);
        let (top_ours, top_theirs) = (argmax(&ours), argmax(&theirs));
        agree += usize::from(top_ours == top_theirs);
        worst = worst.max(max_diff);
        println!(
            "{:<60} tokens {} | top-1 ours {top_ours} llama.cpp {top_theirs} | max |Δlogit| {max_diff:.4}",
            format!("{prompt:?}").chars().take(60).collect::<String>(),
            if ours_ids == ids { "same" } else { "DIFFER" },
        );
        rows.push(serde_json::json!({"prompt": prompt, "same_tokens": ours_ids == ids, "top1_ours": top_ours,
            "top1_llamacpp": top_theirs, "max_abs_logit_diff": max_diff}));
    }
    let their_speed =
        reference["decode_tokens"].as_f64().unwrap_or(0.0) / reference["decode_seconds"].as_f64().unwrap_or(1.0);
    // Our greedy decoding speed on the same prompt and token count.
    let prompt = tokenizer.encode(PROMPTS[0], false)?;
    let start = Instant::now();
    let generated = kailin_lm::generate(&llama, &prompt, 64, &[], &mut kailin_lm::Sampler::greedy(), |t| {
        kailin_lm::every_token(0, t)
    })?;
    let our_speed = generated.len() as f64 / start.elapsed().as_secs_f64();
    println!(
        "top-1 agreement {agree}/{}; largest |Δlogit| {worst:.4}; greedy decoding {our_speed:.1} tok/s vs llama.cpp \
         {their_speed:.1} tok/s (ratio {:.2}; llama-cpp-python {})",
        results.len(),
        our_speed / their_speed,
        reference["version"].as_str().unwrap_or("?")
    );
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let summary = serde_json::json!({"model": path, "prompts": rows, "top1_agreement": agree, "n": results.len(),
        "max_abs_logit_diff": worst, "ours_tok_s": our_speed, "llamacpp_tok_s": their_speed,
        "llamacpp_version": reference["version"]});
    std::fs::write(out, serde_json::to_string_pretty(&summary)?)?;
    println!("written to {}", out.display());
    Ok(())
}

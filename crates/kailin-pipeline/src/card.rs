//! `datasets/README.md`: a Hugging Face dataset card for the run's datasets — the YAML
//! header whose `configs` name the files (so `load_dataset(DIR, "sft")` reads them), the
//! sources and their terms, how the data was made, the counts, the decontamination.

use std::fmt::Write as _;

use crate::config::{Config, EvaluatorKind};
use crate::report::Summary;
use crate::summary::StageSummary;

/// The first four-digit year in `text` (the MeSH release in its file name).
fn year_in(text: &str) -> Option<&str> {
    text.as_bytes().windows(4).position(|w| w.iter().all(u8::is_ascii_digit)).map(|i| &text[i..i + 4])
}

/// The card's size category, as the Hub names them.
fn size_category(n: usize) -> &'static str {
    match n {
        0..1_000 => "n<1K",
        1_000..10_000 => "1K<n<10K",
        10_000..100_000 => "10K<n<100K",
        100_000..1_000_000 => "100K<n<1M",
        _ => "1M<n<10M",
    }
}

/// The dataset card of a run.
pub(crate) fn dataset_card(config: &Config, s: &Summary) -> String {
    let count = |name: &str| s.datasets.iter().find(|(n, _)| n == name).map_or(0, |(_, n)| *n);
    let mut md = String::new();
    let _ = writeln!(md, "---\npretty_name: kailin (m-KAILIN) biomedical question-answer data\nlanguage:\n- en");
    let _ = writeln!(md, "license: other\ntask_categories:\n- question-answering\n- text-generation");
    let _ = writeln!(
        md,
        "tags:\n- biomedical\n- synthetic\n- m-kailin\nsize_categories:\n- {}",
        size_category(count("sft"))
    );
    let _ = writeln!(md, "configs:");
    for (name, default) in [("sft", true), ("cpt", false), ("preference", false)] {
        let _ = writeln!(
            md,
            "- config_name: {name}\n  data_files: {name}.jsonl{}",
            if default { "\n  default: true" } else { "" }
        );
    }
    let _ = writeln!(md, "---\n\n# kailin biomedical question-answer data\n");
    let _ = writeln!(
        md,
        "Distilled from biomedical abstracts by kailin, a Rust implementation of \
         m-KAILIN: question agents write questions from each document, a shared retriever finds each question's \
         context, an evaluator guided by the MeSH hierarchy prefers one of two candidates, DPO optimises the general \
         agent on those preferences, and an answer agent answers the final questions.\n"
    );
    let _ = writeln!(md, "## Files\n\n| config | file | records | fields |\n|---|---|---|---|");
    for (name, fields) in [
        ("sft", "`id`, `question`, `context` (`doc_ids`, `text`), `answer`, `provenance`"),
        ("cpt", "`id`, `question`, `context` (`doc_ids`, `text`), `provenance`"),
        ("preference", "`prompt`, `chosen`, `rejected` (the question generator's DPO pairs)"),
    ] {
        let _ = writeln!(md, "| `{name}` | `{name}.jsonl` | {} | {fields} |", count(name));
    }
    let _ = writeln!(
        md,
        "\n```python\nfrom datasets import load_dataset\nsft = load_dataset(\"path/to/datasets\", \"sft\")  # or: load_dataset(\"json\", data_files=\"sft.jsonl\")\n```\n"
    );
    let mesh = config.data.mesh.display().to_string();
    let corpus = match config.data.corpus.as_str() {
        "pubmedqa" => "PubMedQA PQA-L abstracts outside its official test split".to_owned(),
        "none" => "the Document JSONL files of `data.extra_corpus`".to_owned(),
        path => format!("the user's corpus `{path}`"),
    };
    let _ = writeln!(md, "## Sources and terms\n");
    let _ = writeln!(
        md,
        "- Documents: {corpus}. PubMed abstracts are provided by the U.S. National Library of Medicine (NLM); their copyright stays with their publishers and authors, and NLM's terms for PubMed data apply."
    );
    let _ = writeln!(
        md,
        "- MeSH: the Medical Subject Headings {} (`{mesh}`), courtesy of the U.S. National Library of Medicine; NLM does not endorse this data.",
        year_in(&mesh).map_or_else(|| "release used".to_owned(), |y| format!("{y} release"))
    );
    let _ = writeln!(
        md,
        "- BioASQ golden batches (question agents' fine-tuning): the BioASQ challenge's terms (CC BY 2.5)."
    );
    let _ =
        writeln!(md, "- PubMedQA (decontamination, and evaluation of the models trained on this data): MIT licence.\n");
    let _ = writeln!(md, "Check each source's terms before redistributing this data.\n");
    let _ = writeln!(md, "## How it was made\n");
    let b = &config.backends;
    let role = |name: &str, local: &str| match b.role(name) {
        Some(r) if r.served() => format!("`{}` served at an OpenAI-compatible endpoint", r.model),
        _ => local.to_owned(),
    };
    let base = format!("`{}` (local)", config.models.base);
    let _ = writeln!(
        md,
        "- Question agents: general {}, domain {} (continually pre-trained on the corpus, then fine-tuned on BioASQ), prompt version `{}`.",
        role("question-general", &base),
        role("question-domain", &base),
        crate::backends::prompt_version("question-general")
    );
    let _ = writeln!(md, "- Final questions: {}.", s.generator);
    let encoder = match config.models.encoder.as_str() {
        "domain" => format!(
            "`{}` fine-tuned on biomedical question–passage pairs (stage `encoder`: BioASQ {}, PubMedQA {}, {} pairs files)",
            config.encoder.base,
            if config.encoder.bioasq { "less the held-out batches" } else { "not used" },
            if config.encoder.pubmedqa { "outside the test split" } else { "not used" },
            config.encoder.pairs.len()
        ),
        other => format!("`{other}`"),
    };
    let _ = writeln!(md, "- Retrieval: {:?}, k = {}, encoder {encoder}.", config.retrieval.kind, config.retrieval.k);
    let evaluator = match config.evaluator.kind {
        EvaluatorKind::Rule => "the MeSH rule (information content of the lowest common ancestor)".to_owned(),
        EvaluatorKind::LlmJudge => format!("an LLM judge without MeSH, {}", role("judge", &base)),
    };
    let _ = writeln!(md, "- Evaluator: {evaluator}, margin {}.", config.evaluator.margin);
    let _ = writeln!(md, "- DPO: {} (β = {}).", if s.dpo { "ran" } else { "did not run" }, config.dpo.beta);
    let _ = writeln!(
        md,
        "- Answers: {}, prompt version `{}`, at most {} new tokens.",
        role("answer", &base),
        crate::backends::prompt_version("answer"),
        config.answers.max_new
    );
    let _ = writeln!(
        md,
        "- Seed {}; the whole configuration is `../config.toml`, every number `../metrics.json`.\n",
        config.run.seed
    );
    let _ = writeln!(md, "## Decontamination\n");
    for r in &s.stages {
        if let StageSummary::Corpus(c) = &r.summary {
            let _ = writeln!(
                md,
                "Against PubMedQA's official test split: {} documents left out by PMID and {} for sharing a word {}-gram with a test item; {} duplicates and {} documents without text also left out; {} of {} read were kept.",
                c.test_split,
                c.overlapping_test_text,
                config.data.decontaminate_ngram,
                c.duplicate_ids,
                c.empty,
                c.documents,
                c.read
            );
        }
    }
    md
}

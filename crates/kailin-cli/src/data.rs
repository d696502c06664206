//! `kailin data …`: thin subcommands over `kailin-corpus`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use kailin_core::{
    ChatExample, CompletionExample, CptRecord, Document, DpoExample, JsonlReader, JsonlWriter, PreferencePair,
    SftRecord, TextExample,
};
use kailin_corpus::{Decontaminator, Deduplicator, DocumentStream, Shard, Source, Stats};

/// Corpora: statistics, conversion, decontamination.
#[derive(Debug, Subcommand)]
pub(crate) enum DataCmd {
    /// Print counts of a corpus (documents, years, MeSH coverage) as one JSON object.
    Stats {
        /// The file: PubMed XML (.gz too), PubTator, PubMedQA, BioASQ or JSONL documents; or a
        /// directory: every file under it of that format, in path order.
        path: PathBuf,
        /// Its format (detected when omitted).
        #[arg(long)]
        format: Option<Source>,
        /// Skip malformed records (counted) instead of failing.
        #[arg(long)]
        skip_bad: bool,
    },
    /// Convert between formats, optionally sharded and deduplicated.
    Convert(ConvertArgs),
    /// Remove records that overlap an evaluation set (by id and by word n-grams).
    Decontaminate(DecontaminateArgs),
}

/// What `convert` reads: a corpus format, or our own record files.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum InputFormat {
    Pubmed,
    Pubtator,
    Pubmedqa,
    Bioasq,
    /// JSONL of documents.
    Jsonl,
    /// JSONL of SFT records.
    Sft,
    /// JSONL of CPT records.
    Cpt,
    /// JSONL of preference pairs.
    Pairs,
}

/// What `convert` writes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum To {
    /// JSONL of `kailin_core::Document`.
    Documents,
    /// JSONL of gold questions (PubMedQA, BioASQ).
    Questions,
    /// `{"text"}` (CPT), from documents or CPT records.
    Text,
    /// `{"messages":[…]}` (SFT, chat), from SFT records.
    Chat,
    /// `{"prompt","completion"}` (SFT), from SFT records.
    PromptCompletion,
    /// `{"prompt","chosen","rejected"}` (DPO), from preference pairs and their documents.
    Dpo,
}

#[derive(Debug, Args)]
pub(crate) struct ConvertArgs {
    /// Input file; for corpus formats also a directory (every file under it of the format,
    /// in path order).
    #[arg(long)]
    input: PathBuf,
    /// Input format (corpus formats are detected when omitted).
    #[arg(long)]
    from: Option<InputFormat>,
    /// Output shape.
    #[arg(long)]
    to: To,
    /// Output file (written atomically).
    #[arg(long)]
    out: PathBuf,
    /// Keep only shard `i/n` (by a stable hash of the record id).
    #[arg(long, default_value = "0/1")]
    shard: Shard,
    /// Drop near-duplicate documents or questions (estimated Jaccard of word 3-grams at least
    /// this); the first of each group is kept and the count reported.
    #[arg(long, value_parser = crate::args::unit_open_closed)]
    dedup: Option<f64>,
    /// Skip malformed records (counted) instead of failing.
    #[arg(long)]
    skip_bad: bool,
    /// Documents (JSONL) the preference pairs refer to, for `--to dpo`.
    #[arg(long)]
    documents: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct DecontaminateArgs {
    /// Documents to clean (any corpus format, or JSONL documents).
    #[arg(long)]
    input: PathBuf,
    /// The evaluation set: PubMedQA or BioASQ file, or JSONL documents.
    #[arg(long)]
    against: PathBuf,
    /// Only these evaluation PMIDs (e.g. PubMedQA's `test_ground_truth.json`, a JSON object
    /// keyed by PMID), instead of the whole evaluation file.
    #[arg(long)]
    split: Option<PathBuf>,
    /// Further ids to exclude, one per line.
    #[arg(long)]
    ids: Option<PathBuf>,
    /// Overlap length in words.
    #[arg(long, default_value_t = 13, value_parser = crate::args::at_least_one)]
    ngram: usize,
    /// Clean documents (JSONL, written atomically).
    #[arg(long)]
    out: PathBuf,
    /// Removed records and why (JSONL).
    #[arg(long)]
    report: Option<PathBuf>,
}

pub(crate) fn run(cmd: DataCmd) -> Result<()> {
    match cmd {
        DataCmd::Stats { path, format, skip_bad } => stats(&path, format, skip_bad),
        DataCmd::Convert(args) => convert(args),
        DataCmd::Decontaminate(args) => decontaminate(args),
    }
}

/// The files `path` stands for (a directory: those of one format under it), said on stderr
/// when it is a directory: how many are read, and each file left unread with why.
pub(crate) fn inputs(path: &Path, given: Option<Source>) -> Result<kailin_corpus::InputFiles> {
    let inputs = kailin_corpus::input_files(path, given)?;
    if path.is_dir() {
        let mut err = std::io::stderr().lock();
        writeln!(err, "reading {} {} files under {}", inputs.files.len(), inputs.source.name(), path.display())?;
        for (file, why) in &inputs.unread {
            writeln!(err, "not read: {}: {why}", file.display())?;
        }
    }
    Ok(inputs)
}

fn stats(path: &Path, format: Option<Source>, skip_bad: bool) -> Result<()> {
    let inputs = inputs(path, format)?;
    let format = inputs.source;
    let mut stats = Stats::default();
    let mut questions = None;
    if format == Source::Bioasq {
        questions = Some(kailin_corpus::questions(path, format, skip_bad)?.0.len());
    }
    let mut stream = DocumentStream::from_inputs(&inputs, skip_bad)?;
    for doc in stream.by_ref() {
        stats.add(&doc?);
    }
    let mut top: Vec<(&String, &usize)> = stats.mesh.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let out = serde_json::json!({
        "path": path.display().to_string(),
        "format": format!("{format:?}").to_lowercase(),
        "files": inputs.files.len(),
        "unread": inputs.unread.iter().map(|(p, why)| serde_json::json!({ "path": p.display().to_string(), "why": why })).collect::<Vec<_>>(),
        "documents": stats.documents,
        "questions": questions,
        "with_text": stats.with_text,
        "with_mesh": stats.with_mesh,
        "with_text_and_mesh": stats.with_text_and_mesh,
        "text_chars": stats.text_chars,
        "years": {
            "min": stats.years.keys().next(),
            "max": stats.years.keys().next_back(),
            "count": stats.years.values().sum::<usize>(),
        },
        "mesh_distinct": stats.mesh.len(),
        "mesh_top": top.iter().take(10).map(|(m, n)| serde_json::json!([m, n])).collect::<Vec<_>>(),
        "skipped": stream.skipped().len(),
    });
    writeln!(std::io::stdout().lock(), "{out}")?;
    Ok(())
}

/// Writes the records `items` yields that belong to the shard, counting them. An input that
/// yields no record is an error (and no file is written): a conversion that yields nothing was
/// not what was asked.
fn write_all<T: serde::Serialize, I: Iterator<Item = Result<(String, T)>>>(
    out: &Path,
    shard: Shard,
    items: I,
) -> Result<u64> {
    let mut w = JsonlWriter::create(out)?;
    let mut read = 0u64;
    for item in items {
        let (id, record) = item?;
        read += 1;
        if shard.contains(&id) {
            w.write(&record)?;
        }
    }
    if read == 0 {
        bail!("the input holds no records of that kind: nothing to write to {}", out.display());
    }
    if w.count() == 0 {
        // A shard of a small input may hold none: written empty, so the shards still
        // concatenate to the whole, and said.
        tracing::warn!(read, shard = %format!("{}/{}", shard.index, shard.count), "no record falls in this shard");
    }
    Ok(w.finish()?)
}

fn convert(a: ConvertArgs) -> Result<()> {
    let mut given: Vec<(&str, &Path)> = vec![("--input", &a.input)];
    if let Some(d) = &a.documents {
        given.push(("--documents", d));
    }
    kailin_core::check_outputs(&given, &[("--out", &a.out)])?;
    let from = match a.from {
        Some(f) => f,
        None => match inputs(&a.input, None)?.source {
            Source::PubmedXml => InputFormat::Pubmed,
            Source::Pubtator => InputFormat::Pubtator,
            Source::Pubmedqa => InputFormat::Pubmedqa,
            Source::Bioasq => InputFormat::Bioasq,
            Source::Jsonl => InputFormat::Jsonl,
        },
    };
    let corpus = |f: InputFormat| match f {
        InputFormat::Pubmed => Some(Source::PubmedXml),
        InputFormat::Pubtator => Some(Source::Pubtator),
        InputFormat::Pubmedqa => Some(Source::Pubmedqa),
        InputFormat::Bioasq => Some(Source::Bioasq),
        InputFormat::Jsonl => Some(Source::Jsonl),
        _ => None,
    };
    if a.from.is_some()
        && a.input.is_dir()
        && let Some(source) = corpus(from)
    {
        inputs(&a.input, Some(source))?;
    }
    let (shard, out) = (a.shard, a.out.as_path());
    let mut dedup = a.dedup.map(Deduplicator::new);
    let mut duplicates = 0u64;
    let written = match (from, a.to) {
        (f, To::Documents | To::Text) if corpus(f).is_some() => {
            let mut stream = DocumentStream::open(&a.input, corpus(f).unwrap_or(Source::Jsonl), a.skip_bad)?;
            let to_text = matches!(a.to, To::Text);
            let docs = stream.by_ref().filter_map(|d| match d {
                Ok(d) => {
                    if let Some(dd) = dedup.as_mut()
                        && dd.insert(&d.id, &d.text).is_some()
                    {
                        duplicates += 1;
                        return None;
                    }
                    Some(Ok(d))
                }
                Err(e) => Some(Err(e.into())),
            });
            let n = if to_text {
                write_all(out, shard, docs.map(|d| d.map(|d| (d.id.clone(), TextExample::from_document(&d)))))?
            } else {
                write_all(out, shard, docs.map(|d| d.map(|d| (d.id.clone(), d))))?
            };
            report_skipped(stream.skipped().len());
            n
        }
        (InputFormat::Pubmedqa | InputFormat::Bioasq, To::Questions) => {
            let src = corpus(from).unwrap_or(Source::Bioasq);
            let (qs, skipped) = kailin_corpus::questions(&a.input, src, a.skip_bad)?;
            report_skipped(skipped.len());
            let qs = qs.into_iter().filter(|q| {
                let duplicate = dedup.as_mut().is_some_and(|dd| dd.insert(&q.id, &q.text).is_some());
                duplicates += u64::from(duplicate);
                !duplicate
            });
            write_all(out, shard, qs.map(|q| Ok((q.id.clone(), q))))?
        }
        (InputFormat::Cpt, To::Text) => write_all(
            out,
            shard,
            JsonlReader::<CptRecord>::open(&a.input)?.map(|r| Ok(r.map(|r| (r.id.clone(), TextExample::new(&r)))?)),
        )?,
        (InputFormat::Sft, To::Chat) => write_all(
            out,
            shard,
            JsonlReader::<SftRecord>::open(&a.input)?.map(|r| Ok(r.map(|r| (r.id.clone(), ChatExample::new(&r)))?)),
        )?,
        (InputFormat::Sft, To::PromptCompletion) => write_all(
            out,
            shard,
            JsonlReader::<SftRecord>::open(&a.input)?
                .map(|r| Ok(r.map(|r| (r.id.clone(), CompletionExample::new(&r)))?)),
        )?,
        (InputFormat::Pairs, To::Dpo) => {
            let docs_path = a.documents.as_ref().context("--to dpo needs --documents DOCS.jsonl")?;
            let mut docs = std::collections::HashMap::new();
            for d in JsonlReader::<Document>::open(docs_path)? {
                let d = d?;
                docs.insert(d.id.clone(), d);
            }
            let pairs = JsonlReader::<PreferencePair>::open(&a.input)?;
            write_all(
                out,
                shard,
                pairs.map(|p| {
                    let p = p?;
                    if p.chosen.question == p.rejected.question {
                        bail!("pair of document {}: chosen and rejected questions are equal", p.doc_id);
                    }
                    let doc =
                        docs.get(&p.doc_id).with_context(|| format!("document {} not in --documents", p.doc_id))?;
                    Ok((p.doc_id.clone(), DpoExample::new(&p, doc)))
                }),
            )?
        }
        (f, t) => bail!("cannot convert {f:?} to {t:?}"),
    };
    if dedup.is_some() {
        tracing::info!(duplicates, "near-duplicate documents dropped");
    }
    let mut err = std::io::stderr().lock();
    writeln!(
        err,
        "wrote {written} records to {} (shard {}/{}, {duplicates} near-duplicates dropped)",
        out.display(),
        shard.index,
        shard.count
    )?;
    Ok(())
}

fn report_skipped(n: usize) {
    if n > 0 {
        tracing::warn!(skipped = n, "malformed records skipped");
        let _ = writeln!(std::io::stderr(), "skipped {n} malformed records");
    }
}

fn decontaminate(a: DecontaminateArgs) -> Result<()> {
    let mut given: Vec<(&str, &Path)> = vec![("--input", &a.input), ("--against", &a.against)];
    for (flag, p) in [("--split", &a.split), ("--ids", &a.ids)] {
        if let Some(p) = p {
            given.push((flag, p));
        }
    }
    let mut outputs: Vec<(&str, &Path)> = vec![("--out", &a.out)];
    if let Some(report) = &a.report {
        outputs.push(("--report", report));
    }
    kailin_core::check_outputs(&given, &outputs)?;
    let mut d = Decontaminator::new(a.ngram);
    let split: Option<std::collections::BTreeSet<String>> = match &a.split {
        Some(p) => Some(kailin_corpus::read_pubmedqa_test_ids(p)?),
        None => None,
    };
    let in_split = |id: &str| split.as_ref().is_none_or(|s| s.contains(id));
    let against = kailin_corpus::detect_source(&a.against)?;
    for doc in DocumentStream::open(&a.against, against, false)? {
        let doc = doc?;
        if in_split(&doc.id) {
            d.exclude_ids([doc.id.clone()]);
            d.add_eval_text(&doc.id, &doc.text);
        }
    }
    if matches!(against, Source::Pubmedqa | Source::Bioasq) {
        for q in kailin_corpus::questions(&a.against, against, false)?.0 {
            if q.doc_id.as_deref().is_none_or(in_split) {
                d.add_eval_text(&q.id, &q.text);
            }
        }
    }
    if against == Source::Bioasq {
        // BioASQ's contexts are its snippets; its documents are evaluation PMIDs.
        for q in kailin_corpus::read_bioasq(&a.against, false)?.0 {
            d.exclude_ids(q.documents.iter().filter(|p| in_split(p)).cloned());
            for s in q.snippets.iter().filter(|s| in_split(&s.pmid)) {
                d.add_eval_text(&s.pmid, &s.text);
            }
        }
    }
    if let Some(ids) = &a.ids {
        let text = std::fs::read_to_string(ids).with_context(|| format!("reading {}", ids.display()))?;
        d.exclude_ids(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned));
    }
    let input = inputs(&a.input, None)?;
    let mut kept = JsonlWriter::<Document>::create(&a.out)?;
    let mut report = a.report.as_ref().map(JsonlWriter::<serde_json::Value>::create).transpose()?;
    let (mut removed, mut by_id) = (0u64, 0u64);
    for doc in DocumentStream::from_inputs(&input, false)? {
        let doc = doc?;
        match d.check(&doc.id, &[&doc.title, &doc.text]) {
            None => kept.write(&doc)?,
            Some(why) => {
                removed += 1;
                by_id += u64::from(why == kailin_corpus::Contamination::Id);
                if let Some(r) = report.as_mut() {
                    r.write(&serde_json::json!({ "id": doc.id, "reason": why.to_string() }))?;
                }
            }
        }
    }
    if kept.count() == 0 && removed == 0 {
        bail!("{} holds no documents: nothing to write to {}", a.input.display(), a.out.display());
    }
    if kept.count() == 0 {
        bail!(
            "every one of the {removed} documents of {} overlaps the evaluation set: nothing to write to {}",
            a.input.display(),
            a.out.display()
        );
    }
    let kept_n = kept.finish()?;
    if let Some(r) = report {
        r.finish()?;
    }
    let (ids, ngrams) = d.size();
    writeln!(
        std::io::stderr().lock(),
        "kept {kept_n}, removed {removed} ({by_id} by id, {} by {}-gram overlap) against {ids} ids and {ngrams} n-grams",
        removed - by_id,
        a.ngram
    )?;
    Ok(())
}

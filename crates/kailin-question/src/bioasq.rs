//! BioASQ as question-generation training data (Eq. 1): a question's gold snippets, joined,
//! stand for its document; the question body is the target. A fixed slice of batches is kept
//! out for evaluation, and no training question repeats a held-out one.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use kailin_core::{CompletionExample, Document, Question};
use kailin_corpus::BioasqQuestion;
use kailin_lm::PromptTemplate;

use crate::error::{Error, Result};
use crate::filter::words;
use crate::generator::render_prompt;

/// The batches kept out of training by default: the last two of Task 10B (127 questions).
pub const HELD_OUT_BATCHES: [&str; 2] = ["10B5_golden.json", "10B6_golden.json"];

/// BioASQ split for question generation.
#[derive(Debug, Clone, Default)]
pub struct BioasqSplit {
    /// Training pairs: the snippets as a document, and the question body.
    pub train: Vec<(Document, String)>,
    /// Held-out pairs: the snippets as a document, and the gold question (its `doc_id` is the
    /// document's id).
    pub held_out: Vec<(Document, Question)>,
    /// Questions without snippet text (no document to write from).
    pub without_snippets: usize,
    /// Training questions dropped because their words repeat a held-out question or an
    /// earlier training question.
    pub repeats: usize,
}

/// The question's snippets, each once, in order, joined by spaces, as a document with id
/// `bioasq-<id>`; `None` without snippet text.
pub fn bioasq_document(q: &BioasqQuestion) -> Option<Document> {
    let mut seen = HashSet::new();
    let parts: Vec<&str> =
        q.snippets.iter().map(|s| s.text.trim()).filter(|t| !t.is_empty() && seen.insert(*t)).collect();
    (!parts.is_empty()).then(|| Document {
        id: format!("bioasq-{}", q.id),
        text: parts.join(" "),
        source: "bioasq".into(),
        ..Default::default()
    })
}

/// The `*.json` files under `dir` (recursively), sorted by path.
pub fn bioasq_files(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        let entries =
            std::fs::read_dir(dir).map_err(|e| kailin_core::Error::Io { path: dir.to_path_buf(), source: e })?;
        for entry in entries {
            let path = entry.map_err(|e| kailin_core::Error::Io { path: dir.to_path_buf(), source: e })?.path();
            if path.is_dir() {
                walk(&path, out)?;
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir.as_ref(), &mut files)?;
    files.sort();
    Ok(files)
}

/// Splits golden batches (file name, questions) into training and held-out pairs: the batches
/// whose file names are in `held_out` are held out. A name in `held_out` that matches no batch
/// is an error (a typo would silently train on the evaluation data).
pub fn split_bioasq(batches: &[(String, Vec<BioasqQuestion>)], held_out: &[&str]) -> Result<BioasqSplit> {
    for name in held_out {
        if !batches.iter().any(|(file, _)| file == name) {
            let known: Vec<&str> = batches.iter().map(|(f, _)| f.as_str()).collect();
            return Err(Error::Options(format!("held-out batch {name:?} is not among the batches read: {known:?}")));
        }
    }
    let mut split = BioasqSplit::default();
    let mut seen = HashSet::new();
    let (kept, train): (Vec<_>, Vec<_>) = batches.iter().partition(|(file, _)| held_out.contains(&file.as_str()));
    for (_, questions) in kept {
        for q in questions {
            let Some(doc) = bioasq_document(q) else {
                split.without_snippets += 1;
                continue;
            };
            seen.insert(words(&q.body));
            let mut gold = q.question();
            gold.doc_id = Some(doc.id.clone());
            split.held_out.push((doc, gold));
        }
    }
    for (_, questions) in train {
        for q in questions {
            let Some(doc) = bioasq_document(q) else {
                split.without_snippets += 1;
                continue;
            };
            if !seen.insert(words(&q.body)) {
                split.repeats += 1;
                continue;
            }
            split.train.push((doc, q.body.trim().to_owned()));
        }
    }
    Ok(split)
}

/// Reads every golden batch under `dir` ([`bioasq_files`]), named by file name, in path order.
///
/// Errors: the directory cannot be read, holds no `*.json` file, or a file is not a BioASQ
/// batch (the reader's error names it).
pub fn read_bioasq_batches(dir: impl AsRef<Path>) -> Result<Vec<(String, Vec<BioasqQuestion>)>> {
    let dir = dir.as_ref();
    let files = bioasq_files(dir)?;
    if files.is_empty() {
        return Err(Error::Options(format!(
            "no *.json files under {} (give the golden batches' directory)",
            dir.display()
        )));
    }
    files
        .iter()
        .map(|file| {
            let (questions, _) = kailin_corpus::read_bioasq(file, false)?;
            Ok((file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), questions))
        })
        .collect()
}

/// The SFT data of a split: the first `limit` training pairs and the first `eval_limit`
/// held-out ones as [`sft_example`]s.
pub fn sft_data(
    split: &BioasqSplit,
    template: &PromptTemplate,
    limit: usize,
    eval_limit: usize,
    max_chars: usize,
) -> Result<(Vec<CompletionExample>, Vec<CompletionExample>)> {
    let train = split
        .train
        .iter()
        .take(limit)
        .map(|(doc, q)| sft_example(template, doc, q, max_chars))
        .collect::<Result<_>>()?;
    let eval = split
        .held_out
        .iter()
        .take(eval_limit)
        .map(|(doc, q)| sft_example(template, doc, &q.text, max_chars))
        .collect::<Result<_>>()?;
    Ok((train, eval))
}

/// The SFT example of a training pair: the prompt the generator sees (the user turn; the
/// trainer adds the chat template) and the question.
pub fn sft_example(
    template: &PromptTemplate,
    doc: &Document,
    question: &str,
    max_chars: usize,
) -> Result<CompletionExample> {
    Ok(CompletionExample { prompt: render_prompt(template, doc, max_chars)?, completion: question.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kailin_corpus::Snippet;

    fn q(id: &str, body: &str, snippets: &[&str]) -> BioasqQuestion {
        BioasqQuestion {
            id: id.into(),
            body: body.into(),
            kind: "factoid".into(),
            documents: vec!["1".into()],
            snippets: snippets.iter().map(|t| Snippet { text: (*t).into(), pmid: "1".into() }).collect(),
            ideal_answer: vec![],
            exact_answer: serde_json::Value::Null,
        }
    }

    #[test]
    fn held_out_batches_stay_out_and_their_questions_are_not_trained_on() {
        let batches = vec![
            ("a.json".to_owned(), vec![q("1", "What is X?", &["X is Y.", "X is Y.", "Z."]), q("2", "Is W bad?", &[])]),
            ("b.json".to_owned(), vec![q("3", "what is x", &["Other."]), q("4", "Why V?", &["V."])]),
        ];
        let split = split_bioasq(&batches, &["a.json"]).unwrap();
        assert_eq!(split.held_out.len(), 1);
        assert_eq!(split.held_out[0].0.text, "X is Y. Z.");
        assert_eq!(split.held_out[0].1.doc_id.as_deref(), Some("bioasq-1"));
        assert_eq!(split.train.len(), 1);
        assert_eq!(split.train[0].1, "Why V?");
        assert_eq!((split.without_snippets, split.repeats), (1, 1));
        let err = split_bioasq(&batches, &["c.json"]).unwrap_err().to_string();
        assert!(err.contains("c.json"), "{err}");
    }
}

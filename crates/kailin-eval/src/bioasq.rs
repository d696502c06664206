//! BioASQ yes/no: the yes/no questions of golden batches as test items, their gold snippets
//! as the context.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::pubmedqa::{Decision, TestItem};

/// The yes/no questions read from BioASQ golden batches.
#[derive(Debug, Clone, PartialEq)]
pub struct BioasqSet {
    /// The questions (id, body, snippets as contexts, answer), in file order then question
    /// order.
    pub items: Vec<TestItem>,
    /// The batch files read.
    pub files: Vec<PathBuf>,
    /// Yes/no questions left out because an earlier file had the same id.
    pub duplicates: usize,
    /// Yes/no questions left out for an exact answer that is not "yes" or "no", or no snippet.
    pub unusable: usize,
}

/// The answer of a yes/no question: `"yes"`, `"no"`, or a list holding one of them.
fn answer_of(v: &serde_json::Value) -> Option<Decision> {
    match v {
        serde_json::Value::String(s) => Decision::parse(s).filter(|d| *d != Decision::Maybe),
        serde_json::Value::Array(a) if a.len() == 1 => answer_of(&a[0]),
        _ => None,
    }
}

/// The yes/no questions of the BioASQ golden batches at `path` (a batch file, or a directory
/// searched recursively), keeping only files whose names are in `only` when it is not empty.
/// Each question's distinct snippets are its contexts.
///
/// Errors: unreadable or malformed files (naming them); a name in `only` that matches no file;
/// no yes/no question at all.
pub fn load_bioasq_yesno(path: impl AsRef<Path>, only: &[String]) -> Result<BioasqSet> {
    let path = path.as_ref();
    let found = kailin_corpus::input_files(path, Some(kailin_corpus::Source::Bioasq))?;
    let name = |f: &Path| f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if let Some(missing) = only.iter().find(|o| !found.files.iter().any(|f| name(f) == **o)) {
        let known: Vec<String> = found.files.iter().map(|f| name(f)).collect();
        return Err(Error::Data {
            path: path.to_owned(),
            message: format!("no batch file named {missing:?} (found: {})", known.join(", ")),
        });
    }
    let files: Vec<PathBuf> = found.files.into_iter().filter(|f| only.is_empty() || only.contains(&name(f))).collect();
    let mut set = BioasqSet { items: Vec::new(), files: files.clone(), duplicates: 0, unusable: 0 };
    let mut ids = HashSet::new();
    for file in &files {
        let (questions, _) = kailin_corpus::read_bioasq(file, false)?;
        for q in questions.into_iter().filter(|q| q.kind == "yesno") {
            let mut seen = HashSet::new();
            let contexts: Vec<String> = q
                .snippets
                .iter()
                .map(|s| s.text.trim())
                .filter(|t| !t.is_empty() && seen.insert(*t))
                .map(str::to_owned)
                .collect();
            let Some(truth) = answer_of(&q.exact_answer).filter(|_| !contexts.is_empty()) else {
                set.unusable += 1;
                continue;
            };
            if !ids.insert(q.id.clone()) {
                set.duplicates += 1;
                continue;
            }
            set.items.push(TestItem { pmid: q.id, question: q.body, contexts, year: None, meshes: Vec::new(), truth });
        }
    }
    if set.items.is_empty() {
        return Err(Error::Data {
            path: path.to_owned(),
            message: format!(
                "no yes/no question with a yes/no answer and snippets in {} batch file(s)",
                set.files.len()
            ),
        });
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn batch(dir: &Path, name: &str, questions: serde_json::Value) {
        std::fs::write(dir.join(name), serde_json::json!({ "questions": questions }).to_string()).unwrap();
    }

    fn q(id: &str, kind: &str, answer: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "id": id, "body": format!("Question {id}?"), "type": kind, "exact_answer": answer,
            "snippets": [{"text": "A snippet.", "document": "http://x/pubmed/1"},
                         {"text": "A snippet.", "document": "http://x/pubmed/2"},
                         {"text": "Another.", "document": "http://x/pubmed/3"}],
        })
    }

    #[test]
    fn yes_no_questions_are_read_once_with_their_snippets() {
        let dir = tempfile::tempdir().unwrap();
        batch(
            dir.path(),
            "1_golden.json",
            serde_json::json!([q("a", "yesno", "yes".into()), q("b", "factoid", "x".into())]),
        );
        batch(
            dir.path(),
            "2_golden.json",
            serde_json::json!([
                q("a", "yesno", "yes".into()),
                q("c", "yesno", serde_json::json!(["No"])),
                q("d", "yesno", "maybe".into())
            ]),
        );
        let set = load_bioasq_yesno(dir.path(), &[]).unwrap();
        let got: Vec<(&str, Decision)> = set.items.iter().map(|i| (i.pmid.as_str(), i.truth)).collect();
        assert_eq!(got, [("a", Decision::Yes), ("c", Decision::No)]);
        assert_eq!(set.items[0].contexts, ["A snippet.", "Another."]);
        assert_eq!((set.duplicates, set.unusable, set.files.len()), (1, 1, 2));
        let only = load_bioasq_yesno(dir.path(), &["2_golden.json".into()]).unwrap();
        assert_eq!(only.items.len(), 2);
        let err = load_bioasq_yesno(dir.path(), &["9_golden.json".into()]).unwrap_err().to_string();
        assert!(err.contains("no batch file named \"9_golden.json\""), "{err}");
    }

    #[test]
    fn a_batch_without_yes_no_questions_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        batch(dir.path(), "1_golden.json", serde_json::json!([q("b", "factoid", "x".into())]));
        let err = load_bioasq_yesno(dir.path(), &[]).unwrap_err().to_string();
        assert!(err.contains("no yes/no question"), "{err}");
    }
}

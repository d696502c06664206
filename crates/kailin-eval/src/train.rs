//! PQA-L's training half as fine-tuning data: what a target model may learn from PubMedQA
//! without seeing its test split.

use std::path::Path;

use kailin_core::{ChatExample, Message};

use crate::error::Result;
use crate::pubmedqa::{Decision, Setting, TestItem, user_turn};

/// PQA-L's records outside the official test split as SFT chats: the user turn the
/// evaluation shows (with the contexts, [`Setting::ReasoningRequired`]), answered with the
/// decision and the long answer. Records whose decision is not yes/no/maybe are left out.
///
/// Errors: `pubmedqa/ori_pqal.json` or `pubmedqa/test_ground_truth.json` under `data_dir`
/// missing or malformed.
pub fn pubmedqa_train_chats(data_dir: impl AsRef<Path>) -> Result<Vec<ChatExample>> {
    let dir = data_dir.as_ref().join("pubmedqa");
    let test = kailin_corpus::read_pubmedqa_test_ids(dir.join("test_ground_truth.json"))?;
    let (records, _) = kailin_corpus::read_pubmedqa(dir.join("ori_pqal.json"), false)?;
    Ok(records
        .into_iter()
        .filter(|r| !test.contains(&r.pmid))
        .filter_map(|r| {
            let decision = Decision::parse(&r.final_decision)?;
            let answer = format!("{}. {}", decision.as_str(), r.long_answer).trim().to_owned();
            let user = user_turn(&TestItem::from_record(r, decision), Setting::ReasoningRequired);
            Some(ChatExample {
                messages: vec![
                    Message { role: "user".into(), content: user },
                    Message { role: "assistant".into(), content: answer },
                ],
            })
        })
        .collect())
}

/// The gate that keeps the test split out of training data: its PMIDs, and (with `ngram`
/// above 0) every word `ngram`-gram of its questions and contexts.
pub fn test_split_gate(items: &[TestItem], ngram: usize) -> kailin_corpus::Decontaminator {
    let mut gate = kailin_corpus::Decontaminator::new(ngram.max(1));
    gate.exclude_ids(items.iter().map(|i| i.pmid.clone()));
    if ngram > 0 {
        for i in items {
            gate.add_eval_text(&i.pmid, &format!("{} {}", i.question, i.contexts.join(" ")));
        }
    }
    gate
}

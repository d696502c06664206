//! The shapes the training ecosystem reads (TRL, LLaMA-Factory, axolotl): DPO pairs as
//! `{"prompt","chosen","rejected"}`, SFT as chat `{"messages":[…]}` or `{"prompt","completion"}`,
//! CPT as `{"text"}`; and the prompts that fill them.

use crate::records::{Context, CptRecord, Document, PreferencePair, SftRecord};
use serde::{Deserialize, Serialize};

/// A DPO example: the question generator's prompt (the document) and the preferred and
/// dispreferred questions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DpoExample {
    /// The prompt: the instruction and the source document.
    pub prompt: String,
    /// The preferred completion.
    pub chosen: String,
    /// The dispreferred completion.
    pub rejected: String,
}

/// A retrieval training pair (the shape of `kailin retrieve train --pairs`): a query, a
/// passage that answers it, and optionally passages that look relevant but do not (hard
/// negatives).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RetrievalPair {
    /// The query (a question).
    pub query: String,
    /// A passage relevant to it.
    pub positive: String,
    /// Passages that are not relevant to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub negatives: Vec<String>,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// An SFT example in chat form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatExample {
    /// The conversation: the user's question with its context, the assistant's answer.
    pub messages: Vec<Message>,
}

/// An SFT example in prompt/completion form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletionExample {
    /// The prompt (context and question).
    pub prompt: String,
    /// The completion (the answer).
    pub completion: String,
}

/// A continued-pre-training example.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextExample {
    /// The text.
    pub text: String,
}

/// The instruction of the question generators, after the abstract (small models follow an
/// instruction that ends the prompt more often than one that precedes a long text).
pub const QUESTION_INSTRUCTION: &str =
    "Write one biomedical question that this abstract answers. Reply with the question only, ending with \"?\".";

/// The question generator's prompt for a document.
pub fn question_prompt(doc: &Document) -> String {
    let title = if doc.title.is_empty() { String::new() } else { format!("{}\n", doc.title) };
    format!("{title}{}\n\n{QUESTION_INSTRUCTION}", doc.text)
}

/// A question with its context, as the answer agent and the target model read it.
pub fn question_with_context(question: &str, context: &Context) -> String {
    format!("Context: {}\n\nQuestion: {question}", context.text)
}

impl DpoExample {
    /// The DPO example of a preference pair, given its source document.
    pub fn new(pair: &PreferencePair, doc: &Document) -> Self {
        DpoExample {
            prompt: question_prompt(doc),
            chosen: pair.chosen.question.clone(),
            rejected: pair.rejected.question.clone(),
        }
    }
}

impl ChatExample {
    /// The chat form of an SFT record.
    pub fn new(rec: &SftRecord) -> Self {
        ChatExample {
            messages: vec![
                Message { role: "user".into(), content: question_with_context(&rec.question, &rec.context) },
                Message { role: "assistant".into(), content: rec.answer.clone() },
            ],
        }
    }
}

impl CompletionExample {
    /// The prompt/completion form of an SFT record.
    pub fn new(rec: &SftRecord) -> Self {
        CompletionExample {
            prompt: format!("{}\n\nAnswer:", question_with_context(&rec.question, &rec.context)),
            completion: format!(" {}", rec.answer),
        }
    }
}

impl TextExample {
    /// The CPT text of a record: the question and its context (the paper's CPT prompt).
    pub fn new(rec: &CptRecord) -> Self {
        TextExample { text: question_with_context(&rec.question, &rec.context) }
    }

    /// A plain document as CPT text: title and abstract.
    pub fn from_document(doc: &Document) -> Self {
        let text = if doc.title.is_empty() { doc.text.clone() } else { format!("{}\n{}", doc.title, doc.text) };
        TextExample { text }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::records::{Candidate, Provenance};

    #[test]
    fn field_names_are_what_trl_and_friends_read() {
        let ctx = Context { doc_ids: vec!["9".into()], text: "Levodopa helps.".into() };
        let sft = SftRecord {
            id: "s".into(),
            question: "Does it help?".into(),
            context: ctx.clone(),
            answer: "Yes.".into(),
            provenance: Provenance::default(),
        };
        let chat = serde_json::to_value(ChatExample::new(&sft)).unwrap();
        assert_eq!(chat["messages"][0]["role"], "user");
        assert_eq!(chat["messages"][0]["content"], "Context: Levodopa helps.\n\nQuestion: Does it help?");
        assert_eq!(chat["messages"][1]["content"], "Yes.");
        let pc = serde_json::to_value(CompletionExample::new(&sft)).unwrap();
        assert!(pc["prompt"].as_str().unwrap().ends_with("Answer:") && pc["completion"] == " Yes.");
        let doc = Document { id: "9".into(), title: "T".into(), text: "Abstract.".into(), ..Document::default() };
        let pair = PreferencePair {
            doc_id: "9".into(),
            chosen: Candidate { question: "Good?".into(), context: ctx.clone() },
            rejected: Candidate { question: "Bad?".into(), context: ctx },
            ..PreferencePair::default()
        };
        let dpo = serde_json::to_value(DpoExample::new(&pair, &doc)).unwrap();
        assert_eq!(dpo["prompt"], format!("T\nAbstract.\n\n{QUESTION_INSTRUCTION}"));
        assert_eq!((dpo["chosen"].as_str(), dpo["rejected"].as_str()), (Some("Good?"), Some("Bad?")));
        assert_eq!(
            serde_json::to_value(TextExample::from_document(&doc)).unwrap(),
            serde_json::json!({"text": "T\nAbstract."})
        );
    }
}

//! The pairwise judge on a served model: the same prompt and both-orders averaging as
//! [`PairwiseJudge`](crate::PairwiseJudge), scored from the server's log-probabilities of
//! the first reply token.

use kailin_lm::{ChatMessage, ChatRequest, Reply, ServedModel};
use kailin_retrieval::Retriever;

use crate::corpus::Corpus;
use crate::error::Result;
use crate::judge::{JudgeOptions, check_options, judge_pairs};
use crate::judgement::{Evaluator, Item, Judgement};

/// A judge on a [`ServedModel`]: each prompt is one greedy request of one token with
/// `top_logprobs`; `log p("A")` and `log p("B")` come from the listed alternatives (a letter
/// not listed has log-probability −∞). A server that gives no log-probabilities is judged by
/// its reply's first letter (A: 1, B: 0, anything else: a tie at 0.5).
#[derive(Debug)]
pub struct ServedJudge<'a, R> {
    served: ServedModel,
    corpus: &'a Corpus,
    retriever: R,
    options: JudgeOptions,
    name: String,
}

impl<'a, R: Retriever> ServedJudge<'a, R> {
    /// A judge named `name` (for provenance) on `served`.
    ///
    /// Errors: an option out of range.
    pub fn new(
        served: ServedModel,
        corpus: &'a Corpus,
        retriever: R,
        options: JudgeOptions,
        name: impl Into<String>,
    ) -> Result<Self> {
        check_options(&options)?;
        Ok(ServedJudge { served, corpus, retriever, options, name: name.into() })
    }

    /// The served model (its counters).
    pub fn served(&self) -> &ServedModel {
        &self.served
    }

    fn letters(&self, prompts: &[String]) -> Result<Vec<[f64; 2]>> {
        let requests: Vec<ChatRequest> = prompts
            .iter()
            .map(|p| {
                let mut r = ChatRequest::new(vec![ChatMessage::user(p.clone())], 1);
                r.top_logprobs = Some(10);
                r
            })
            .collect();
        self.served.chat_all(&requests).into_iter().map(|r| Ok(letter_logprobs(&r?))).collect()
    }
}

/// `log p("A")`, `log p("B")` of a one-token reply.
fn letter_logprobs(reply: &Reply) -> [f64; 2] {
    let find = |letter: &str| {
        reply.top_logprobs.iter().filter(|(t, _)| t.trim() == letter).map(|(_, l)| *l).fold(f64::NEG_INFINITY, f64::max)
    };
    if !reply.top_logprobs.is_empty() {
        return [find("A"), find("B")];
    }
    match reply.text.trim_start().chars().next() {
        Some('A') => [0.0, f64::NEG_INFINITY],
        Some('B') => [f64::NEG_INFINITY, 0.0],
        _ => [f64::NEG_INFINITY, f64::NEG_INFINITY],
    }
}

impl<R: Retriever> Evaluator for ServedJudge<'_, R> {
    type Error = crate::error::Error;

    fn evaluate(&self, items: &[Item<'_>]) -> Result<Vec<Judgement>> {
        judge_pairs(self.corpus, &self.retriever, &self.options, items, |prompts| self.letters(prompts))
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_come_from_logprobs_or_the_reply() {
        let r = |text: &str, alts: &[(&str, f64)]| Reply {
            text: text.into(),
            top_logprobs: alts.iter().map(|(t, l)| ((*t).to_owned(), *l)).collect(),
            ..Default::default()
        };
        assert_eq!(letter_logprobs(&r("A", &[("A", -0.1), (" B", -2.0)])), [-0.1, -2.0]);
        assert_eq!(letter_logprobs(&r("A", &[("A", -0.1)])), [-0.1, f64::NEG_INFINITY]);
        assert_eq!(letter_logprobs(&r(" B.", &[])), [f64::NEG_INFINITY, 0.0]);
        assert_eq!(letter_logprobs(&r("maybe", &[])), [f64::NEG_INFINITY, f64::NEG_INFINITY]);
    }
}

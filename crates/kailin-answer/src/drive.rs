//! Answering a dataset: chunks through any [`AnswerGenerator`], written in input order, each
//! record once, stopping at the first record that fails.

use kailin_core::{CptRecord, SftRecord};

use crate::answer::{AnswerGenerator, sft_record};
use crate::error::{Error, Result};

/// Answers `records` in chunks of `chunk` (a chunk's answers may arrive in any order; they are
/// handed to `write` in input order, each exactly once) and reports the records done so far
/// to `progress`. `first_line` is the 1-based input line of `records[0]`, for errors.
///
/// A record that fails ends the run with [`Error::Record`] naming it; the records before it
/// have been written, and with a cached client the answers that arrived after it are kept in
/// the cache, so a rerun asks for none of them again.
pub fn answer_all<G: AnswerGenerator + ?Sized>(
    generator: &G,
    records: &[CptRecord],
    first_line: usize,
    chunk: usize,
    mut write: impl FnMut(SftRecord) -> Result<()>,
    mut progress: impl FnMut(usize),
) -> Result<()> {
    let provenance = generator.provenance();
    let mut done = 0;
    for (c, batch) in records.chunks(chunk.max(1)).enumerate() {
        let answers = generator.answer(batch);
        if answers.len() != batch.len() {
            return Err(Error::Options(format!(
                "the answer agent returned {} answers for {} records",
                answers.len(),
                batch.len()
            )));
        }
        for (i, (record, answer)) in batch.iter().zip(answers).enumerate() {
            let line = first_line + c * chunk.max(1) + i;
            let answer = answer.map_err(|e| Error::Record { record: record.id.clone(), line, source: Box::new(e) })?;
            write(sft_record(record, &answer, &provenance))?;
            done += 1;
        }
        progress(done);
    }
    Ok(())
}

/// The records an answer agent can answer: those with a question and a context. The others
/// (an empty question or context would make an SFT record that teaches nothing) are left
/// out; returns the kept records and how many were left out.
pub fn answerable(records: Vec<CptRecord>) -> (Vec<CptRecord>, usize) {
    let before = records.len();
    let kept: Vec<CptRecord> =
        records.into_iter().filter(|r| !r.question.trim().is_empty() && !r.context.text.trim().is_empty()).collect();
    let skipped = before - kept.len();
    (kept, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::FnAnswerer;

    fn rec(id: &str) -> CptRecord {
        CptRecord { id: id.into(), question: format!("q{id}?"), ..Default::default() }
    }

    #[test]
    fn records_without_question_or_context_are_left_out() {
        let mut empty_context = rec("2");
        empty_context.context.text = " ".into();
        let mut with_context = rec("1");
        with_context.context.text = "c".into();
        let (kept, skipped) =
            answerable(vec![with_context, empty_context, CptRecord { id: "3".into(), ..Default::default() }]);
        assert_eq!((kept.len(), skipped), (1, 2));
    }

    #[test]
    fn writes_in_order_and_stops_at_the_failing_record() {
        let agent = FnAnswerer::new("t", |r: &CptRecord| {
            if r.id == "3" { Err(Error::Options("boom".into())) } else { Ok(format!("a{}", r.id)) }
        });
        let records: Vec<_> = ["1", "2", "3", "4"].into_iter().map(rec).collect();
        let mut written = Vec::new();
        let err = answer_all(
            &agent,
            &records,
            10,
            2,
            |r| {
                written.push(r.answer);
                Ok(())
            },
            |_| (),
        )
        .unwrap_err();
        assert_eq!(written, ["a1", "a2"]);
        let msg = err.to_string();
        assert!(msg.contains("\"3\"") && msg.contains("line 12") && msg.contains("boom"), "{msg}");
    }
}

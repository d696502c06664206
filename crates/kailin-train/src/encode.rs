//! Records → token rows: what each objective trains on, with the weight of every predicted
//! token (1: learned; 0: prompt, padding or a record boundary).

use kailin_lm::{ChatMessage, Tokenizer};

use kailin_core::Fnv64;

use crate::data::{Dataset, DpoExample, Lined, SftExample, TextExample};
use crate::error::{Error, Result};

/// Text → token ids, the seam between the trainers and a tokenizer ([`Tokenizer`] implements
/// it; tests use a byte-level one).
pub trait TextEncoder {
    /// Token ids of `text`, with the model's beginning-of-text token first when `add_bos`.
    fn encode(&self, text: &str, add_bos: bool) -> Result<Vec<u32>>;
    /// The end-of-text token appended to CPT texts and plain completions.
    fn eos(&self) -> Option<u32>;
    /// `messages` rendered with the model's chat template (ending where the assistant's reply
    /// begins with `add_generation_prompt`); `None` without a template.
    fn render_chat(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Option<Result<String>>;
}

impl TextEncoder for Tokenizer {
    fn encode(&self, text: &str, add_bos: bool) -> Result<Vec<u32>> {
        Ok(Tokenizer::encode(self, text, add_bos)?)
    }

    fn eos(&self) -> Option<u32> {
        self.eos_id()
    }

    fn render_chat(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Option<Result<String>> {
        self.chat_template().map(|t| t.render(messages, add_generation_prompt).map_err(Into::into))
    }
}

/// What to do with a record longer than the context window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overlong {
    /// Keep what fits (the start of a text; the end of a prompt and the start of its
    /// completion), and count it.
    #[default]
    Truncate,
    /// Stop with [`Error::TooLong`].
    Refuse,
}

/// One training row: token ids and, for every position but the last, the weight of
/// predicting the next token.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Token ids (at most the window).
    pub ids: Vec<u32>,
    /// `weights[j]` weighs the prediction of `ids[j + 1]`; `ids.len() − 1` of them.
    pub weights: Vec<f32>,
    /// Record number of each token when records packed into the row must not see each other.
    pub segments: Option<Vec<u32>>,
}

impl Row {
    /// Feeds the row's length, ids, weights and segments into a digest (names the data a cache
    /// or a checkpoint belongs to).
    pub(crate) fn fingerprint(&self, h: &mut Fnv64) {
        h.u32(self.ids.len() as u32);
        self.ids.iter().for_each(|&t| {
            h.u32(t);
        });
        self.weights.iter().for_each(|&w| {
            h.u32(w.to_bits());
        });
        if let Some(segments) = &self.segments {
            segments.iter().for_each(|&s| {
                h.u32(s);
            });
        }
    }

    fn prompt_completion(prompt: Vec<u32>, completion: Vec<u32>) -> Row {
        let p = prompt.len();
        let mut ids = prompt;
        ids.extend(completion);
        let weights = (1..ids.len()).map(|j| if j >= p { 1.0 } else { 0.0 }).collect();
        Row { ids, weights, segments: None }
    }

    /// Tokens whose prediction is learned.
    pub fn trained_tokens(&self) -> usize {
        self.weights.iter().filter(|&&w| w > 0.0).count()
    }
}

/// Rows made from a dataset, and how many records had to be truncated.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded<T> {
    /// The rows (CPT, SFT) or row pairs (DPO).
    pub items: Vec<T>,
    /// Records cut to the window.
    pub truncated: usize,
}

/// How CPT texts become rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packing {
    /// Put several texts in one row (in order, each whole, a new row when the next does not
    /// fit) instead of one text per row.
    pub pack: bool,
    /// With `pack`: a text never attends to, nor is predicted from, the texts before it in
    /// its row.
    pub isolate: bool,
}

impl Default for Packing {
    fn default() -> Self {
        Packing { pack: true, isolate: true }
    }
}

fn too_long(path: &std::path::Path, line: u64, tokens: usize, window: usize) -> Error {
    Error::TooLong { path: path.to_owned(), line, tokens, window }
}

fn check_window(window: usize) -> Result<()> {
    if window < 2 {
        return Err(Error::Options(format!("a context window of {window} tokens leaves nothing to predict")));
    }
    Ok(())
}

/// CPT: each text (with the beginning- and end-of-text tokens) becomes a row or a part of one.
pub fn encode_texts(
    data: &Dataset<TextExample>,
    tok: &impl TextEncoder,
    window: usize,
    overlong: Overlong,
    packing: Packing,
) -> Result<Encoded<Row>> {
    check_window(window)?;
    let mut truncated = 0;
    let mut texts = Vec::with_capacity(data.records.len());
    for Lined { line, record } in &data.records {
        let mut ids = tok.encode(&record.text, true)?;
        ids.extend(tok.eos());
        if ids.len() > window {
            if overlong == Overlong::Refuse {
                return Err(too_long(&data.path, *line, ids.len(), window));
            }
            ids.truncate(window);
            truncated += 1;
        }
        texts.push(ids);
    }
    if !packing.pack {
        let items = texts.into_iter().map(|ids| Row::prompt_completion(Vec::new(), ids)).collect();
        return Ok(Encoded { items, truncated });
    }
    let mut items = Vec::new();
    let mut row: Vec<Vec<u32>> = Vec::new();
    let flush = |row: &mut Vec<Vec<u32>>, items: &mut Vec<Row>| {
        if row.is_empty() {
            return;
        }
        let (mut ids, mut weights, mut segments) = (Vec::new(), Vec::new(), Vec::new());
        for (s, text) in row.drain(..).enumerate() {
            for (i, &t) in text.iter().enumerate() {
                if !ids.is_empty() {
                    // Predicting the first token of a text from the text before it.
                    weights.push(if i == 0 && packing.isolate { 0.0 } else { 1.0 });
                }
                ids.push(t);
                segments.push(s as u32);
            }
        }
        items.push(Row { ids, weights, segments: packing.isolate.then_some(segments) });
    };
    let mut used = 0;
    for ids in texts {
        if used + ids.len() > window {
            flush(&mut row, &mut items);
            used = 0;
        }
        used += ids.len();
        row.push(ids);
    }
    flush(&mut row, &mut items);
    Ok(Encoded { items, truncated })
}

/// Prompt and completion ids of a prompt/completion pair: the chat template's user turn and
/// assistant reply when the tokenizer has one, else the prompt (after the beginning-of-text
/// token) followed by the completion and the end-of-text token.
fn prompt_and_completion(
    tok: &impl TextEncoder,
    messages: &[ChatMessage],
    plain: Option<(&str, &str)>,
    bad: impl Fn(String) -> Error,
) -> Result<(Vec<u32>, Vec<u32>)> {
    let (history, _) = messages.split_at(messages.len().saturating_sub(1));
    match (tok.render_chat(history, true), tok.render_chat(messages, false)) {
        (Some(prompt), Some(full)) => {
            let (prompt, full) = (prompt?, full?);
            let Some(completion) = full.strip_prefix(prompt.as_str()) else {
                return Err(bad("the chat template does not render the prompt as a prefix of the conversation".into()));
            };
            Ok((tok.encode(&prompt, false)?, tok.encode(completion, false)?))
        }
        _ => match plain {
            Some((prompt, completion)) => {
                let mut c = tok.encode(completion, false)?;
                c.extend(tok.eos());
                Ok((tok.encode(prompt, true)?, c))
            }
            None => Err(bad("a conversation needs a tokenizer with a chat template".into())),
        },
    }
}

/// The token ids of a one-turn exchange exactly as SFT trains on it: the prompt (the user's
/// message through the chat template, ending where the reply begins; or, without a template,
/// the plain prompt after the beginning-of-text token) and the completion (the reply and what
/// the template closes it with; or the plain completion and the end-of-text token). A scorer
/// reads a fine-tuned model's answer through this, so scoring and training tokenise alike.
///
/// Errors: the tokenizer's; a template that does not render the prompt as a prefix of the
/// conversation.
pub fn prompt_completion_ids(tok: &impl TextEncoder, prompt: &str, completion: &str) -> Result<(Vec<u32>, Vec<u32>)> {
    let messages = [ChatMessage::user(prompt), ChatMessage::assistant(completion)];
    prompt_and_completion(tok, &messages, Some((prompt, completion)), |reason| {
        Error::Lm(kailin_lm::Error::Template(reason))
    })
}

/// The row of a prompt/completion pair, and whether it was cut. A pair longer than `window`
/// is refused, or cut: the prompt loses its start (at least one prompt token stays), then the
/// completion its end.
fn fitted_row(
    mut prompt: Vec<u32>,
    mut completion: Vec<u32>,
    window: usize,
    overlong: Overlong,
    (path, line): (&std::path::Path, u64),
) -> Result<(Row, bool)> {
    let total = prompt.len() + completion.len();
    if total <= window {
        return Ok((Row::prompt_completion(prompt, completion), false));
    }
    if overlong == Overlong::Refuse {
        return Err(too_long(path, line, total, window));
    }
    let keep_prompt = prompt.len().min(window.saturating_sub(completion.len()).max(1));
    prompt.drain(..prompt.len() - keep_prompt);
    completion.truncate(window - prompt.len());
    Ok((Row::prompt_completion(prompt, completion), true))
}

/// SFT: each record becomes one row whose prompt tokens weigh 0.
pub fn encode_sft(
    data: &Dataset<SftExample>,
    tok: &impl TextEncoder,
    window: usize,
    overlong: Overlong,
) -> Result<Encoded<Row>> {
    check_window(window)?;
    let mut truncated = 0;
    let mut items = Vec::with_capacity(data.records.len());
    for Lined { line, record } in &data.records {
        let (messages, plain) = match record {
            SftExample::Chat(c) => {
                (c.messages.iter().map(|m| ChatMessage::new(m.role.clone(), m.content.clone())).collect(), None)
            }
            SftExample::Completion(c) => (
                vec![ChatMessage::user(c.prompt.clone()), ChatMessage::assistant(c.completion.clone())],
                Some((c.prompt.as_str(), c.completion.as_str())),
            ),
        };
        let bad = |reason| Error::BadRecord { path: data.path.clone(), line: *line, reason };
        let (prompt, completion) = prompt_and_completion(tok, &messages, plain, bad)?;
        let (row, cut) = fitted_row(prompt, completion, window, overlong, (&data.path, *line))?;
        truncated += usize::from(cut);
        items.push(row);
    }
    Ok(Encoded { items, truncated })
}

/// A DPO pair as two rows sharing their prompt: chosen and rejected.
#[derive(Debug, Clone, PartialEq)]
pub struct PairRows {
    /// The prompt followed by the chosen completion.
    pub chosen: Row,
    /// The prompt followed by the rejected completion.
    pub rejected: Row,
}

/// DPO: each pair becomes two rows whose prompt tokens weigh 0.
pub fn encode_pairs(
    data: &Dataset<DpoExample>,
    tok: &impl TextEncoder,
    window: usize,
    overlong: Overlong,
) -> Result<Encoded<PairRows>> {
    check_window(window)?;
    let mut truncated = 0;
    let mut items = Vec::with_capacity(data.records.len());
    for Lined { line, record } in &data.records {
        let bad = |reason: String| Error::BadRecord { path: data.path.clone(), line: *line, reason };
        let row = |completion: &str| -> Result<(Row, bool)> {
            let messages = [ChatMessage::user(record.prompt.clone()), ChatMessage::assistant(completion)];
            let (p, c) = prompt_and_completion(tok, &messages, Some((&record.prompt, completion)), bad)?;
            fitted_row(p, c, window, overlong, (&data.path, *line))
        };
        let ((chosen, cut_chosen), (rejected, cut_rejected)) = (row(&record.chosen)?, row(&record.rejected)?);
        if chosen.ids == rejected.ids {
            return Err(bad("chosen and rejected are the same once tokenized and cut to the window".to_owned()));
        }
        truncated += usize::from(cut_chosen || cut_rejected);
        items.push(PairRows { chosen, rejected });
    }
    Ok(Encoded { items, truncated })
}

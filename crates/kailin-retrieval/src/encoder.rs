//! Sentence embeddings: tokenise, batch by length with dynamic padding, run BERT, pool, and
//! optionally L2-normalise.

use std::io::Read;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use ndarray::Array2;

use crate::bert::{Bert, BertConfig, NativeBert};
use crate::error::{Error, Result};
use crate::tokenizer::BertTokenizer;

/// How token states become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// The `[CLS]` token's state (BiomedBERT/MedCPT style).
    Cls,
    /// The mean over the real tokens, `[CLS]` and `[SEP]` included (sentence-transformers).
    Mean,
}

/// Options of an [`Encoder`]; the defaults come from the model directory (sentence-
/// transformers' `1_Pooling/config.json`, `sentence_bert_config.json`, `modules.json`) where
/// present, else CLS pooling without normalisation at the model's full window.
#[derive(Debug, Clone)]
pub struct EncoderBuilder {
    dir: PathBuf,
    pooling: Option<Pooling>,
    normalize: Option<bool>,
    max_len: Option<usize>,
    batch_size: usize,
    truncate: bool,
    native: bool,
}

impl EncoderBuilder {
    /// An encoder for the Hugging Face model directory `dir` (`config.json`,
    /// `model.safetensors`, `tokenizer.json` or `vocab.txt`).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        EncoderBuilder {
            dir: dir.into(),
            pooling: None,
            normalize: None,
            max_len: None,
            batch_size: 32,
            truncate: true,
            native: true,
        }
    }

    /// On burn's CPU backend (`Flex`), run the forward pass with the crate's own CPU kernels
    /// (default: yes; the same weights and, to about 1e-6, the same vectors, several times
    /// faster); `false` keeps burn's. Other backends always run burn's.
    pub fn native(mut self, native: bool) -> Self {
        self.native = native;
        self
    }

    /// Pooling (overrides the directory's).
    pub fn pooling(mut self, pooling: Pooling) -> Self {
        self.pooling = Some(pooling);
        self
    }

    /// L2 normalisation of the output (overrides the directory's).
    pub fn normalize(mut self, normalize: bool) -> Self {
        self.normalize = Some(normalize);
        self
    }

    /// Longest input in tokens (overrides the directory's; never more than the model's window).
    pub fn max_len(mut self, max_len: usize) -> Self {
        self.max_len = Some(max_len);
        self
    }

    /// Texts per forward pass (default 32).
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Whether texts longer than the window are truncated (default, with a logged count) or
    /// refused with [`Error::Text`].
    pub fn truncate(mut self, truncate: bool) -> Self {
        self.truncate = truncate;
        self
    }

    /// Loads the model and tokenizer.
    ///
    /// Errors: missing or malformed files (see [`Bert::from_hf_dir`], [`BertTokenizer::from_dir`]).
    pub fn build<B: Backend>(self, device: &B::Device) -> Result<Encoder<B>> {
        let dir = &self.dir;
        let (bert, config) = Bert::<B>::from_hf_dir(dir, device)?;
        let st = SentenceTransformers::read(dir);
        let pooling = self.pooling.or(st.pooling).unwrap_or(Pooling::Cls);
        let normalize = self.normalize.unwrap_or(st.normalize);
        let max_len = self.max_len.or(st.max_len).unwrap_or(config.max_positions).min(config.max_positions);
        let mut tokenizer = BertTokenizer::from_dir(dir)?;
        tokenizer.set_max_len(max_len)?;
        let identity = identity(dir, &config, pooling, normalize, max_len)?;
        tracing::info!(%identity, "encoder loaded from {}", dir.display());
        let native = if self.native { native_kernels(&bert)? } else { None };
        Ok(Encoder {
            native,
            bert,
            tokenizer,
            pooling,
            normalize,
            max_len,
            batch_size: self.batch_size,
            truncate: self.truncate,
            identity,
            dir: Some(dir.clone()),
            device: device.clone(),
        })
    }
}

/// What a sentence-transformers directory says about pooling, normalisation and length.
#[derive(Debug, Default)]
struct SentenceTransformers {
    pooling: Option<Pooling>,
    normalize: bool,
    max_len: Option<usize>,
}

impl SentenceTransformers {
    fn read(dir: &Path) -> Self {
        let json = |name: &str| -> Option<serde_json::Value> {
            serde_json::from_str(&std::fs::read_to_string(dir.join(name)).ok()?).ok()
        };
        let flag = |v: &serde_json::Value, key: &str| v.get(key).and_then(serde_json::Value::as_bool) == Some(true);
        let pooling = json("1_Pooling/config.json").and_then(|p| {
            if flag(&p, "pooling_mode_mean_tokens") {
                Some(Pooling::Mean)
            } else if flag(&p, "pooling_mode_cls_token") {
                Some(Pooling::Cls)
            } else {
                None
            }
        });
        let normalize = json("modules.json").and_then(|m| m.as_array().cloned()).is_some_and(|modules| {
            modules.iter().any(|m| m.get("type").and_then(|t| t.as_str()).is_some_and(|t| t.ends_with("Normalize")))
        });
        let max_len = json("sentence_bert_config.json")
            .and_then(|c| c.get("max_seq_length").and_then(serde_json::Value::as_u64))
            .and_then(|v| usize::try_from(v).ok());
        SentenceTransformers { pooling, normalize, max_len }
    }
}

/// The encoder's identity, recorded in stores: a digest of its weights and configuration and
/// the options that change its vectors.
fn identity(dir: &Path, config: &BertConfig, pooling: Pooling, normalize: bool, max_len: usize) -> Result<String> {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    let weights = dir.join("model.safetensors");
    let mut file = std::fs::File::open(&weights).map_err(Error::io(&weights))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(Error::io(&weights))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
    }
    hash.update(format!("{config:?}").as_bytes());
    let digest: String = hash.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
    let pool = match pooling {
        Pooling::Cls => "cls",
        Pooling::Mean => "mean",
    };
    Ok(format!("bert-{digest}/{pool}/{}/{max_len}", if normalize { "l2" } else { "raw" }))
}

/// The CPU kernels' copy of `bert`'s weights, on burn's CPU backend (`Flex`); `None` elsewhere.
fn native_kernels<B: Backend>(bert: &Bert<B>) -> Result<Option<NativeBert>> {
    if std::any::TypeId::of::<B>() == std::any::TypeId::of::<burn::backend::Flex>() {
        Ok(Some(NativeBert::from_bert(bert)?))
    } else {
        Ok(None)
    }
}

/// Sequences per padded forward pass of [`Encoder::embed_ids`].
const EMBED_GROUP: usize = 8;

/// A sentence encoder: text in, one vector per text out.
#[derive(Debug)]
pub struct Encoder<B: Backend> {
    bert: Bert<B>,
    /// The same weights for the crate's CPU kernels, when they run the forward pass.
    native: Option<NativeBert>,
    tokenizer: BertTokenizer,
    pooling: Pooling,
    normalize: bool,
    max_len: usize,
    batch_size: usize,
    truncate: bool,
    identity: String,
    /// The directory it was loaded from (its tokenizer and configuration files, for export).
    pub(crate) dir: Option<PathBuf>,
    device: B::Device,
}

impl<B: Backend> Encoder<B> {
    /// An encoder from parts (a tiny model in a test, say); `identity` names it in stores.
    /// Texts are truncated at the model's window.
    ///
    /// Errors: a model window too short for `[CLS]` and `[SEP]`.
    pub fn from_parts(
        bert: Bert<B>,
        mut tokenizer: BertTokenizer,
        pooling: Pooling,
        normalize: bool,
        identity: String,
        device: B::Device,
    ) -> Result<Self> {
        let max_len = bert.max_positions();
        tokenizer.set_max_len(max_len)?;
        Ok(Encoder {
            native: native_kernels(&bert)?,
            bert,
            tokenizer,
            pooling,
            normalize,
            max_len,
            batch_size: 32,
            truncate: true,
            identity,
            dir: None,
            device,
        })
    }

    /// Whether texts longer than the window are truncated (the default) or refused with
    /// [`Error::Text`].
    pub fn set_truncate(&mut self, truncate: bool) {
        self.truncate = truncate;
    }

    /// Whether the forward pass runs on the crate's CPU kernels (the default on burn's CPU
    /// backend, `Flex`) or on burn's; other backends always run burn's.
    ///
    /// Errors: the weights cannot be read back from the backend.
    pub fn set_native(&mut self, native: bool) -> Result<()> {
        self.native = if native { native_kernels(&self.bert)? } else { None };
        Ok(())
    }

    /// Whether the forward pass runs on the crate's CPU kernels.
    pub fn is_native(&self) -> bool {
        self.native.is_some()
    }

    /// The vectors' dimension.
    pub fn dim(&self) -> usize {
        self.bert.hidden_size()
    }

    /// What identifies this encoder (weights digest, pooling, normalisation, window).
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The pooling in use.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// Whether vectors are L2-normalised.
    pub fn normalizes(&self) -> bool {
        self.normalize
    }

    /// The longest input in tokens (`[CLS]` and `[SEP]` included).
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The model.
    pub fn bert(&self) -> &Bert<B> {
        &self.bert
    }

    /// Puts new weights in place (a training step's): the CPU kernels' copy is remade, and
    /// the identity no longer names the directory's weights (`bert-unsaved/…`) until the
    /// model is saved and loaded again, so no store is built or searched under the old one.
    ///
    /// Errors: the new weights cannot be read back for the CPU kernels.
    pub fn set_bert(&mut self, bert: Bert<B>) -> Result<()> {
        self.native = if self.native.is_some() { native_kernels(&bert)? } else { None };
        self.bert = bert;
        if !self.identity.starts_with("bert-unsaved/") {
            let options = self.identity.split_once('/').map_or(self.identity.as_str(), |(_, o)| o);
            self.identity = format!("bert-unsaved/{options}");
        }
        Ok(())
    }

    /// Token ids of `texts` as the encoder sees them (`[CLS]` … `[SEP]`, cut at the window
    /// when truncation is on).
    ///
    /// Errors: an empty (or whitespace-only) text; a text over the window when truncation is
    /// off.
    pub fn token_ids<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<u32>>> {
        let mut encoded = Vec::with_capacity(texts.len());
        let mut truncated = 0usize;
        for (index, text) in texts.iter().enumerate() {
            let text = text.as_ref();
            if text.trim().is_empty() {
                return Err(Error::Text { index, message: "empty text".into() });
            }
            let (ids, cut) = self.tokenizer.encode(text)?;
            if cut && !self.truncate {
                return Err(Error::Text {
                    index,
                    message: format!("longer than the encoder's {} tokens", self.max_len),
                });
            }
            truncated += usize::from(cut);
            encoded.push(ids);
        }
        if truncated > 0 {
            tracing::debug!(truncated, window = self.max_len, "texts truncated to the encoder's window");
        }
        Ok(encoded)
    }

    /// Sentence vectors of token-id sequences (as [`token_ids`](Self::token_ids) gives them)
    /// as one tensor, through burn's operations: padded to the longest, pooled and normalised
    /// as [`encode`](Self::encode) does. On an autodiff backend gradients flow back into the
    /// model's weights (contrastive training).
    ///
    /// Shapes: `seqs.len()` sequences → `[seqs.len(), dim]`.
    ///
    /// Errors: no sequence, an empty one, one longer than the model's window, ids outside
    /// the vocabulary.
    pub fn embed_ids(&self, seqs: &[&[u32]]) -> Result<Tensor<B, 2>> {
        if seqs.len() <= EMBED_GROUP {
            return self.embed_padded(seqs);
        }
        // Sequences of similar length together, so that each group pads to its own longest;
        // the vectors are put back in the caller's order.
        let mut order: Vec<usize> = (0..seqs.len()).collect();
        order.sort_by_key(|&i| seqs[i].len());
        let mut parts = Vec::with_capacity(order.len().div_ceil(EMBED_GROUP));
        for group in order.chunks(EMBED_GROUP) {
            let group: Vec<&[u32]> = group.iter().map(|&i| seqs[i]).collect();
            parts.push(self.embed_padded(&group)?);
        }
        let mut place = vec![0i64; seqs.len()];
        for (sorted, &i) in order.iter().enumerate() {
            place[i] = sorted as i64;
        }
        let place = Tensor::<B, 1, Int>::from_data(TensorData::new(place, [seqs.len()]), &self.device);
        Ok(Tensor::cat(parts, 0).select(0, place))
    }

    /// [`embed_ids`](Self::embed_ids) of one padded batch.
    fn embed_padded(&self, seqs: &[&[u32]]) -> Result<Tensor<B, 2>> {
        let seq = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(seqs.len() * seq);
        let lengths: Vec<usize> = seqs.iter().map(|s| s.len()).collect();
        for s in seqs {
            ids.extend_from_slice(s);
            ids.extend(std::iter::repeat_n(0, seq - s.len()));
        }
        let states = self.bert.forward(&ids, &lengths, &self.device)?;
        Ok(self.pool(states, &lengths))
    }

    /// Embeds `texts`: batches of similar length (sorted by token count, padded to the
    /// longest in the batch), results in input order.
    ///
    /// Shapes: `texts.len()` texts → `[texts.len(), dim]`.
    ///
    /// Errors: an empty (or whitespace-only) text; a text over the window when truncation is
    /// off; a backend failure.
    pub fn encode<S: AsRef<str>>(&self, texts: &[S]) -> Result<Array2<f32>> {
        let encoded = self.token_ids(texts)?;
        let dim = self.dim();
        let mut out = Array2::<f32>::zeros((texts.len(), dim));
        let mut order: Vec<usize> = (0..encoded.len()).collect();
        order.sort_by_key(|&i| encoded[i].len());
        if let Some(native) = &self.native {
            for chunk in order.chunks(self.batch_size) {
                let seqs: Vec<&[u32]> = chunk.iter().map(|&i| encoded[i].as_slice()).collect();
                let states = native.forward(&seqs)?;
                let mut start = 0;
                for (&i, seq) in chunk.iter().zip(&seqs) {
                    let rows = &states[start * dim..(start + seq.len()) * dim];
                    start += seq.len();
                    let mut v = out.row_mut(i);
                    match self.pooling {
                        Pooling::Cls => v.assign(&ndarray::ArrayView1::from(&rows[..dim])),
                        Pooling::Mean => {
                            for row in rows.chunks_exact(dim) {
                                v.iter_mut().zip(row).for_each(|(o, x)| *o += x);
                            }
                            v /= seq.len() as f32;
                        }
                    }
                    if self.normalize {
                        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                        v /= norm;
                    }
                }
            }
            return Ok(out);
        }
        for chunk in order.chunks(self.batch_size) {
            let seqs: Vec<&[u32]> = chunk.iter().map(|&i| encoded[i].as_slice()).collect();
            let pooled = self.embed_ids(&seqs)?;
            let values = pooled.into_data().to_vec::<f32>().map_err(|e| Error::Backend(format!("{e:?}")))?;
            for (row, &i) in chunk.iter().enumerate() {
                out.row_mut(i).assign(&ndarray::ArrayView1::from(&values[row * dim..(row + 1) * dim]));
            }
        }
        Ok(out)
    }

    /// Shapes: `states` `[batch, seq, hidden]` → `[batch, hidden]`.
    fn pool(&self, states: Tensor<B, 3>, lengths: &[usize]) -> Tensor<B, 2> {
        let [batch, seq, hidden] = states.dims();
        let pooled = match self.pooling {
            Pooling::Cls => states.slice_dim(1, 0..1).reshape([batch, hidden]),
            Pooling::Mean => {
                let mut mask = Vec::with_capacity(batch * seq);
                for &len in lengths {
                    mask.extend((0..seq).map(|i| if i < len { 1.0 / len as f32 } else { 0.0 }));
                }
                let weights = Tensor::<B, 3>::from_data(TensorData::new(mask, [batch, 1, seq]), &self.device);
                weights.matmul(states).reshape([batch, hidden])
            }
        };
        if self.normalize {
            let norm = pooled.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
            pooled / norm
        } else {
            pooled
        }
    }
}

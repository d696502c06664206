//! Building a store from a document stream with an encoder, resumably.

use burn::prelude::*;

use crate::encoder::Encoder;
use crate::error::{Error, Result};
use crate::store::{Store, StoreBuilder};

/// Texts encoded per call to the encoder (the encoder sorts each group by length).
const GROUP: usize = 256;

/// Encodes `(id, text)` documents into the store `builder` describes, recording the encoder's
/// identity. If the store already holds rows (an interrupted build), the stream must begin
/// with the same ids and texts (each stored row keeps a digest of its text): those documents
/// are skipped, not re-encoded. `on_progress` sees the
/// number of documents done (skipped ones included).
///
/// Errors: the stream's own errors ([`Error::Input`]); a resumed stream with other ids or
/// edited texts; an empty text; the store's and encoder's errors.
pub fn build_store<B, E, I>(
    encoder: &Encoder<B>,
    builder: StoreBuilder,
    docs: I,
    mut on_progress: impl FnMut(u64),
) -> Result<Store>
where
    B: Backend,
    E: std::error::Error + Send + Sync + 'static,
    I: IntoIterator<Item = std::result::Result<(String, String), E>>,
{
    let mut writer = builder.encoder(encoder.identity()).build()?;
    if writer.dim() != encoder.dim() {
        return Err(Error::Dimension { what: "encoder output".into(), expected: writer.dim(), got: encoder.dim() });
    }
    let stored = writer.committed_ids()?;
    let digests = writer.committed_digests()?;
    if !stored.is_empty() {
        tracing::info!(rows = stored.len(), "resuming: these documents are already encoded");
    }
    let mut done = 0u64;
    let mut group: Vec<(String, String)> = Vec::with_capacity(GROUP);
    let flush = |group: &mut Vec<(String, String)>, writer: &mut crate::StoreWriter| -> Result<()> {
        if group.is_empty() {
            return Ok(());
        }
        let texts: Vec<&str> = group.iter().map(|(_, t)| t.as_str()).collect();
        let vectors = encoder.encode(&texts).map_err(|e| match e {
            Error::Text { index, message } => {
                Error::Text { index, message: format!("document {:?}: {message}", group[index].0) }
            }
            other => other,
        })?;
        // Rows of the encoder's standard-layout matrix are contiguous slices.
        let flat = vectors.as_slice().ok_or_else(|| Error::Backend("encoder output is not contiguous".into()))?;
        for ((id, text), v) in group.iter().zip(flat.chunks_exact(writer.dim())) {
            writer.push_digested(id, v, kailin_core::fnv1a(text.as_bytes()))?;
        }
        group.clear();
        Ok(())
    };
    for doc in docs {
        let (id, text) = doc.map_err(|e| Error::Input(Box::new(e)))?;
        if let Some(expected) = stored.get(done as usize) {
            if *expected != id {
                return Err(Error::ResumeMismatch {
                    path: writer.dir().to_path_buf(),
                    row: done,
                    stored: expected.clone(),
                    given: id,
                });
            }
            let digest = digests.get(done as usize).copied().flatten();
            if digest.is_some_and(|d| d != kailin_core::fnv1a(text.as_bytes())) {
                return Err(Error::store(
                    writer.dir(),
                    format!(
                        "document {id:?} (row {done}) has changed since it was encoded: build into a new store (or remove this one)"
                    ),
                ));
            }
        } else {
            group.push((id, text));
            if group.len() == GROUP {
                flush(&mut group, &mut writer)?;
            }
        }
        done += 1;
        on_progress(done);
    }
    flush(&mut group, &mut writer)?;
    if (done as usize) < stored.len() {
        return Err(Error::store(
            writer.dir(),
            format!("the store holds {} documents, the input only {done}", stored.len()),
        ));
    }
    writer.finish()
}

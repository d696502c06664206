//! The retrieval seam: text queries in, ranked document ids out. Dense (encoder + store +
//! exact search) and sparse (BM25) engines implement it; so can anything else (a vector
//! database client, see `docs/scale-out.md`).

use burn::prelude::*;

use crate::encoder::Encoder;
use crate::error::{Error, Result};
use crate::exact::ExactSearch;
use crate::store::Store;

/// One retrieved document.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Retrieved {
    /// The document's id.
    pub id: String,
    /// The engine's score (inner product, BM25…): higher is better.
    pub score: f32,
}

/// An engine returning, for each query, its best `k` documents, best first.
pub trait Retriever {
    /// The engine's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The best `k` documents for each of `queries`.
    ///
    /// Errors: the engine's.
    fn retrieve(&self, queries: &[&str], k: usize) -> std::result::Result<Vec<Vec<Retrieved>>, Self::Error>;
}

/// A borrowed engine retrieves as the engine does (so one engine can serve several users).
impl<R: Retriever + ?Sized> Retriever for &R {
    type Error = R::Error;

    fn retrieve(&self, queries: &[&str], k: usize) -> std::result::Result<Vec<Vec<Retrieved>>, Self::Error> {
        (**self).retrieve(queries, k)
    }
}

/// Dense retrieval: queries embedded by the store's own encoder, exact inner-product search.
#[derive(Debug)]
pub struct DenseRetriever<B: Backend> {
    encoder: Encoder<B>,
    store: Store,
    engine: ExactSearch,
}

impl<B: Backend> DenseRetriever<B> {
    /// Joins an encoder and a store built with it.
    ///
    /// Errors: [`Error::EncoderMismatch`] when the store records another encoder;
    /// [`Error::Dimension`] when the dimensions differ.
    pub fn new(encoder: Encoder<B>, store: Store, engine: ExactSearch) -> Result<Self> {
        store.check_encoder(encoder.identity())?;
        if store.dim() != encoder.dim() {
            return Err(Error::Dimension { what: "encoder output".into(), expected: store.dim(), got: encoder.dim() });
        }
        Ok(DenseRetriever { encoder, store, engine })
    }

    /// The store searched.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

impl<B: Backend> Retriever for DenseRetriever<B> {
    type Error = Error;

    fn retrieve(&self, queries: &[&str], k: usize) -> Result<Vec<Vec<Retrieved>>> {
        let vectors = self.encoder.encode(queries)?;
        let hits = self.store.search(&self.engine, vectors.view(), k)?;
        hits.into_iter()
            .map(|hits| {
                hits.into_iter()
                    .map(|h| {
                        let id = self
                            .store
                            .id(h.row)
                            .ok_or_else(|| Error::store(self.store.dir(), format!("no id for row {}", h.row)))?;
                        Ok(Retrieved { id: id.to_owned(), score: h.score })
                    })
                    .collect()
            })
            .collect()
    }
}

/// BM25 over an in-memory `tantivy` index (English stemming, lower-casing): the sparse
/// baseline beside the dense encoders.
pub struct Bm25Retriever {
    index: tantivy::Index,
    reader: tantivy::IndexReader,
    id: tantivy::schema::Field,
    text: tantivy::schema::Field,
}

impl std::fmt::Debug for Bm25Retriever {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bm25Retriever").field("docs", &self.len()).finish()
    }
}

fn bm25_err(e: impl std::fmt::Display) -> Error {
    Error::Bm25(e.to_string())
}

impl Bm25Retriever {
    /// Indexes `(id, text)` documents.
    ///
    /// Errors: the index cannot be written.
    pub fn build<I, S, T>(docs: I) -> Result<Self>
    where
        I: IntoIterator<Item = (S, T)>,
        S: AsRef<str>,
        T: AsRef<str>,
    {
        use tantivy::schema::{IndexRecordOption, STORED, Schema, TextFieldIndexing, TextOptions};
        let mut schema = Schema::builder();
        let id = schema.add_text_field("id", STORED);
        let indexing =
            TextFieldIndexing::default().set_tokenizer("en_stem").set_index_option(IndexRecordOption::WithFreqs);
        let text = schema.add_text_field("text", TextOptions::default().set_indexing_options(indexing));
        let index = tantivy::Index::create_in_ram(schema.build());
        // One indexing thread: documents keep their order across segments, so tied scores come
        // back in the same order on every run (several threads deal documents out at random).
        let mut writer: tantivy::IndexWriter = index.writer_with_num_threads(1, 64 << 20).map_err(bm25_err)?;
        for (doc_id, body) in docs {
            writer.add_document(tantivy::doc!(id => doc_id.as_ref(), text => body.as_ref())).map_err(bm25_err)?;
        }
        writer.commit().map_err(bm25_err)?;
        let reader = index.reader().map_err(bm25_err)?;
        Ok(Bm25Retriever { index, reader, id, text })
    }

    /// Number of indexed documents.
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Retriever for Bm25Retriever {
    type Error = Error;

    fn retrieve(&self, queries: &[&str], k: usize) -> Result<Vec<Vec<Retrieved>>> {
        use tantivy::schema::Value;
        let searcher = self.reader.searcher();
        let mut tokenizer = self.index.tokenizer_for_field(self.text).map_err(bm25_err)?;
        queries
            .iter()
            .map(|q| {
                if k == 0 {
                    return Ok(Vec::new());
                }
                // The question's words through the field's own analyser, OR-ed: its punctuation
                // (":", quotes, parentheses) is text, never query syntax.
                let mut terms = Vec::new();
                let mut stream = tokenizer.token_stream(q);
                while let Some(token) = stream.next() {
                    terms.push(tantivy::Term::from_field_text(self.text, &token.text));
                }
                let query = tantivy::query::BooleanQuery::new_multiterms_query(terms);
                let top = searcher
                    .search(&query, &tantivy::collector::TopDocs::with_limit(k).order_by_score())
                    .map_err(bm25_err)?;
                top.into_iter()
                    .map(|(score, address)| {
                        let doc: tantivy::TantivyDocument = searcher.doc(address).map_err(bm25_err)?;
                        let id = doc.get_first(self.id).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
                        Ok(Retrieved { id, score })
                    })
                    .collect()
            })
            .collect()
    }
}

/// The retriever a setting chooses at run time: dense (an encoder and a store), BM25, or the
/// two fused.
pub enum AnyRetriever<B: burn::prelude::Backend> {
    /// Exact inner-product search over a store.
    Dense(Box<DenseRetriever<B>>),
    /// BM25.
    Bm25(Bm25Retriever),
    /// Dense and BM25 fused by reciprocal rank.
    Hybrid(Box<crate::HybridRetriever<DenseRetriever<B>, Bm25Retriever>>),
}

impl<B: burn::prelude::Backend> std::fmt::Debug for AnyRetriever<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AnyRetriever::Dense(_) => f.write_str("AnyRetriever::Dense"),
            AnyRetriever::Bm25(r) => write!(f, "AnyRetriever::Bm25({r:?})"),
            AnyRetriever::Hybrid(_) => f.write_str("AnyRetriever::Hybrid"),
        }
    }
}

impl<B: burn::prelude::Backend> AnyRetriever<B> {
    /// BM25 over `(id, text)` documents ([`Bm25Retriever::build`]).
    ///
    /// Errors: the index cannot be written.
    pub fn bm25<I, S, T>(docs: I) -> Result<Self>
    where
        I: IntoIterator<Item = (S, T)>,
        S: AsRef<str>,
        T: AsRef<str>,
    {
        Ok(AnyRetriever::Bm25(Bm25Retriever::build(docs)?))
    }
}

impl<B: burn::prelude::Backend> Retriever for AnyRetriever<B> {
    type Error = Error;

    fn retrieve(&self, queries: &[&str], k: usize) -> Result<Vec<Vec<Retrieved>>> {
        match self {
            AnyRetriever::Dense(r) => r.retrieve(queries, k),
            AnyRetriever::Bm25(r) => r.retrieve(queries, k),
            AnyRetriever::Hybrid(r) => r.retrieve(queries, k),
        }
    }
}

//! Ingest: the corpus (PQA-L outside the test split, or the user's files), decontaminated
//! against PubMedQA's test split (PMID and word n-gram), each id once, limited.

use std::path::PathBuf;

use kailin_core::Document;
use serde_json::json;

use crate::engine::{Lib, Run};
use crate::error::{Error, Result};
use crate::files::{fingerprint, ingest_with, listing, need, read_records};
use crate::summary::CorpusSummary;

impl Run<'_> {
    /// The corpus path `data.corpus` names (relative to `data.dir`), when it is one.
    fn corpus_path(&self) -> Option<PathBuf> {
        let c = &self.config.data;
        (!matches!(c.corpus.as_str(), "pubmedqa" | "none")).then(|| c.dir.join(&c.corpus))
    }

    /// The corpus stage; returns the kept documents.
    pub(crate) fn corpus(&mut self) -> Result<Vec<Document>> {
        let c = self.config.data.clone();
        let pqa = c.dir.join("pubmedqa/ori_pqal.json");
        let test = c.dir.join("pubmedqa/test_ground_truth.json");
        let fix = "point data.dir (--data or $KAILIN_DATA) at the data directory";
        need(&test, "the PubMedQA test split", fix)?;
        let mut fingerprints = vec![fingerprint(&test)?];
        if c.corpus == "pubmedqa" {
            need(&pqa, "PubMedQA PQA-L", fix)?;
            fingerprints.push(fingerprint(&pqa)?);
        }
        let user = self.corpus_path();
        if let Some(path) = &user {
            need(path, "the corpus (data.corpus)", "give a file or directory, relative to data.dir or absolute")?;
            // A directory's files by name and content.
            fingerprints.push(listing(path)?);
        }
        for p in &c.extra_corpus {
            need(p, "an extra corpus file", "fix data.extra_corpus")?;
            fingerprints.push(fingerprint(p)?);
        }
        let inputs = json!({ "data": c, "files": fingerprints });
        let dir = self.out.join("stages/corpus");
        let (_, dir) = self.stage("corpus", dir, &[], inputs, |tmp, progress| {
            let items = kailin_eval::load_test_set(&c.dir).lib()?;
            let gate = kailin_eval::test_split_gate(&items, c.decontaminate_ngram);
            let mut s = CorpusSummary {
                read: 0,
                test_split: 0,
                overlapping_test_text: 0,
                duplicate_ids: 0,
                empty: 0,
                documents: 0,
                with_mesh: 0,
                ingest: None,
            };
            let mut seen = std::collections::HashSet::new();
            let mut writer = kailin_core::JsonlWriter::<Document>::create(tmp.join("documents.jsonl")).lib()?;
            let limit = if c.corpus_limit == 0 { usize::MAX } else { c.corpus_limit };
            let mut keep = |d: Document, s: &mut CorpusSummary| -> Result<bool> {
                s.read += 1;
                match gate.check(&d.id, &[&d.title, &d.text]) {
                    Some(kailin_corpus::Contamination::Id) => s.test_split += 1,
                    Some(_) => s.overlapping_test_text += 1,
                    None if d.text.trim().is_empty() => s.empty += 1,
                    None if !seen.insert(d.id.clone()) => s.duplicate_ids += 1,
                    None => {
                        writer.write(&d).lib()?;
                        s.documents += 1;
                        s.with_mesh += usize::from(!d.mesh.is_empty());
                        if s.documents.is_multiple_of(1000) {
                            progress(s.documents as u64, c.corpus_limit as u64, "documents");
                        }
                    }
                }
                Ok(s.documents < limit)
            };
            let mut more = true;
            if c.corpus == "pubmedqa" {
                let (records, _) = kailin_corpus::read_pubmedqa(&pqa, false).lib()?;
                for r in &records {
                    if !(more && keep(r.document(), &mut s)?) {
                        more = false;
                        break;
                    }
                }
            }
            if let (Some(path), true) = (&user, more) {
                let what = path.display().to_string();
                let report = ingest_with(path, c.strict, "data.corpus", &what, |d| keep(d, &mut s))?;
                more = s.documents < limit;
                s.ingest = Some(report);
            }
            for p in &c.extra_corpus {
                if !more {
                    break;
                }
                for d in read_records::<Document>(p)? {
                    if !keep(d, &mut s)? {
                        more = false;
                        break;
                    }
                }
            }
            writer.finish().lib()?;
            if s.documents == 0 {
                return Err(Error::Config {
                    key: "data.corpus".into(),
                    message: format!("no document is left after decontamination ({} read)", s.read),
                });
            }
            Ok(s)
        })?;
        read_records(&dir.join("documents.jsonl"))
    }
}

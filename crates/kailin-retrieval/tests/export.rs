//! An encoder written back as a model directory loads as the same encoder, with Hugging
//! Face's tensor names, and carries the weights it holds, not the ones it was loaded with.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use burn::backend::Flex;
use kailin_retrieval::{EncoderBuilder, Pooling};

const TEXTS: [&str; 3] = ["the cell binds a gene", "liver", "the proteins bind the liver cells"];

#[test]
fn an_exported_encoder_loads_back_the_same_with_hugging_faces_names() {
    let dir = tempfile::tempdir().unwrap();
    let (base, out) = (dir.path().join("base"), dir.path().join("export/model"));
    common::write_dir(&base, 1.0);
    let encoder = EncoderBuilder::new(&base).build::<Flex>(&Default::default()).unwrap();
    assert_eq!(encoder.pooling(), Pooling::Mean);
    assert_eq!(encoder.save_dir(&out).unwrap(), out);
    let again = EncoderBuilder::new(&out).build::<Flex>(&Default::default()).unwrap();
    assert_eq!((again.pooling(), again.normalizes(), again.max_len()), (Pooling::Mean, true, common::MAXPOS));
    assert_eq!(encoder.encode(&TEXTS).unwrap(), again.encode(&TEXTS).unwrap());
    // The same weights under the same Hugging Face names (the pooler, unused, is not kept).
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let names: BTreeSet<String> = file.names().into_iter().map(str::to_owned).collect();
    let want: BTreeSet<String> = common::weights().into_keys().filter(|n| !n.starts_with("pooler")).collect();
    assert_eq!(names, want);
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(header.metadata().as_ref().and_then(|m| m.get("format")).map(String::as_str), Some("pt"));
    for (name, (shape, values)) in common::weights().into_iter().filter(|(n, _)| !n.starts_with("pooler")) {
        let t = file.tensor(&name).unwrap();
        assert_eq!(t.shape(), shape.as_slice(), "{name}");
        let got: Vec<f32> = t.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        assert_eq!(got, values, "{name}");
    }
    // Exporting into the directory it came from is refused.
    assert!(encoder.save_dir(&base).is_err());
}

#[test]
fn new_weights_are_what_is_exported_and_change_the_identity() {
    let dir = tempfile::tempdir().unwrap();
    let (base, other, out) = (dir.path().join("base"), dir.path().join("other"), dir.path().join("out"));
    common::write_dir(&base, 1.0);
    common::write_dir(&other, 0.9);
    let mut encoder = EncoderBuilder::new(&base).build::<Flex>(&Default::default()).unwrap();
    let before = encoder.identity().to_owned();
    let trained = EncoderBuilder::new(&other).build::<Flex>(&Default::default()).unwrap();
    encoder.set_bert(trained.bert().clone()).unwrap();
    assert!(encoder.identity().starts_with("bert-unsaved/"), "{}", encoder.identity());
    assert_ne!(encoder.identity(), before);
    assert_eq!(encoder.encode(&TEXTS).unwrap(), trained.encode(&TEXTS).unwrap());
    encoder.save_dir(&out).unwrap();
    let loaded = EncoderBuilder::new(&out).build::<Flex>(&Default::default()).unwrap();
    assert_eq!(loaded.encode(&TEXTS).unwrap(), trained.encode(&TEXTS).unwrap());
    // The burn path (what training differentiates) gives the CPU kernels' vectors.
    // More texts than one padded group, of lengths out of order, put back in order.
    let words = ["the", "cell", "binds", "a", "gene", "liver", "protein", "the", "liver", "cell", "binds"];
    let texts: Vec<String> = (0..13).map(|i| words[..1 + (i * 7) % words.len()].join(" ")).collect();
    let ids = loaded.token_ids(&texts).unwrap();
    let seqs: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
    let tensor = loaded.embed_ids(&seqs).unwrap().into_data().to_vec::<f32>().unwrap();
    let native = loaded.encode(&texts).unwrap();
    for (a, b) in tensor.iter().zip(native.iter()) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
    // An encoder made from parts has no directory to export from.
    let parts = common::encoder(dir.path(), "tiny");
    assert!(parts.save_dir(&dir.path().join("parts")).is_err());
}

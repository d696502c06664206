//! The real SmolLM2-135M-Instruct GGUF (`cargo xtask fetch-models`): ignored by default, run by
//! CI with `--include-ignored`. Expected values: `shared/notes/models.md`.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::path::PathBuf;

use kailin_lm::{GgmlType, Gguf, GgufValue};

fn model() -> PathBuf {
    kailin_lm::smollm2_gguf().filter(|p| p.exists()).expect("SmolLM2 not found: run `cargo xtask fetch-models`")
}

#[test]
#[ignore = "needs the SmolLM2 model: cargo xtask fetch-models"]
fn smollm2_metadata_and_every_tensor() {
    let path = model();
    let g = Gguf::open(&path).unwrap();
    let u = |k: &str| g.get(k).and_then(GgufValue::as_u64).unwrap_or_else(|| panic!("{k}"));
    let s = |k: &str| g.get(k).and_then(GgufValue::as_str).unwrap_or_else(|| panic!("{k}")).to_owned();
    assert_eq!(g.version(), 3);
    assert_eq!(s("general.architecture"), "llama");
    assert_eq!(u("llama.block_count"), 30);
    assert_eq!(u("llama.embedding_length"), 576);
    assert_eq!(u("llama.attention.head_count"), 9);
    assert_eq!(u("llama.attention.head_count_kv"), 3);
    assert_eq!(u("llama.feed_forward_length"), 1536);
    assert_eq!(u("llama.rope.dimension_count"), 64);
    assert_eq!(u("llama.context_length"), 8192);
    assert_eq!(g.get("llama.rope.freq_base").and_then(GgufValue::as_f64), Some(100000.0));
    assert!((g.get("llama.attention.layer_norm_rms_epsilon").and_then(GgufValue::as_f64).unwrap() - 1e-5).abs() < 1e-9);
    assert_eq!(s("tokenizer.ggml.model"), "gpt2");
    assert_eq!(s("tokenizer.ggml.pre"), "smollm");
    assert_eq!(g.get("tokenizer.ggml.tokens").and_then(GgufValue::as_array).map(<[GgufValue]>::len), Some(49152));
    assert_eq!((u("tokenizer.ggml.bos_token_id"), u("tokenizer.ggml.eos_token_id")), (1, 2));
    assert!(s("tokenizer.chat_template").contains("<|im_start|>"));

    let mut kinds = std::collections::BTreeMap::new();
    let mut params = 0u64;
    for t in g.tensors() {
        *kinds.entry(format!("{:?}", t.kind)).or_insert(0) += 1;
        params += t.elements();
        let values = g.dequantize(&t.name).unwrap();
        assert_eq!(values.len() as u64, t.elements());
        assert!(values.iter().all(|v| v.is_finite()), "{} has non-finite values", t.name);
    }
    eprintln!("tensor types: {kinds:?}, {params} parameters");
    assert_eq!(kinds.get("Q8_0"), Some(&1));
    assert!(kinds.get("Q4_1").copied().unwrap_or(0) > kinds.get("F32").copied().unwrap_or(0));
    assert!((130_000_000..140_000_000).contains(&params), "{params}");
    assert_eq!(g.tensor("token_embd.weight").unwrap().dims, [576, 49152]);
    assert!(matches!(g.tensor("output_norm.weight").unwrap().kind, GgmlType::F32));
}

#[test]
#[ignore = "needs the SmolLM2 model: cargo xtask fetch-models"]
fn smollm2_answers_a_factual_question() {
    use burn::backend::Flex;
    use burn::prelude::*;
    let path = model();
    let g = Gguf::open(&path).unwrap();
    let vocab: Vec<String> = g
        .get("tokenizer.ggml.tokens")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let id = |t: &str| vocab.iter().position(|v| v == t).unwrap_or_else(|| panic!("{t:?} is not one token")) as i64;
    // ChatML, byte-level BPE spelling (Ġ = space, Ċ = newline); each piece is one token
    // ("assistant" splits as "ass" + "istant" under this vocabulary's merges).
    let prompt = [
        "<|im_start|>",
        "user",
        "Ċ",
        "What",
        "Ġis",
        "Ġthe",
        "Ġcapital",
        "Ġof",
        "ĠFrance",
        "?",
        "<|im_end|>",
        "Ċ",
        "<|im_start|>",
        "ass",
        "istant",
        "Ċ",
    ];
    let mut tokens: Vec<i64> = prompt.iter().map(|t| id(t)).collect();
    let device = Default::default();
    let (model, config) = kailin_lm::Llama::<Flex>::from_gguf(&g, 64, &device).unwrap();
    assert_eq!((config.num_layers, config.hidden_size, config.num_kv_heads), (30, 576, 3));
    let mut answer = String::new();
    for _ in 0..8 {
        let n = tokens.len();
        let input = Tensor::<Flex, 2, Int>::from_data(TensorData::new(tokens.clone(), [1, n]), &device);
        let logits = model.forward(input).unwrap().slice([0..1, n - 1..n]).reshape([config.vocab_size]);
        let next = logits.argmax(0).into_scalar().elem::<i64>();
        if next == id("<|im_end|>") {
            break;
        }
        answer.push_str(&vocab[next as usize].replace('Ġ', " "));
        tokens.push(next);
    }
    eprintln!("SmolLM2 greedy answer: {answer:?}");
    assert!(answer.contains("Paris"), "{answer:?}");

    // The same answer through the generation loop (KV cache, greedy sampler, stop token).
    let prompt: Vec<u32> = prompt.iter().map(|t| id(t) as u32).collect();
    let mut streamed = Vec::new();
    let generated =
        kailin_lm::generate(&model, &prompt, 16, &[id("<|im_end|>") as u32], &mut kailin_lm::Sampler::greedy(), |t| {
            streamed.push(t);
            kailin_lm::every_token(0, t)
        })
        .unwrap();
    let uncached: Vec<u32> = tokens[prompt.len()..].iter().map(|&t| t as u32).collect();
    assert_eq!(&generated[..uncached.len()], &uncached[..], "cached generation = uncached forward loop");
    assert_eq!(streamed, generated);
    let text: String = generated.iter().map(|&t| vocab[t as usize].replace('Ġ', " ")).collect();
    assert_eq!(text, "The capital of France is Paris.", "stops at <|im_end|>");
}

#[test]
#[ignore = "needs the SmolLM2 model: cargo xtask fetch-models"]
fn smollm2_tokenizer_chat_template_and_batched_completion() {
    use burn::backend::Flex;
    use kailin_lm::{ChatMessage, CompletionOptions, FinishReason, Tokenizer};
    let path = model();
    let g = Gguf::open(&path).unwrap();
    let tok = Tokenizer::from_gguf(&g).unwrap();
    assert_eq!((tok.vocab_size(), tok.bos_id(), tok.eos_id()), (49152, Some(1), Some(2)));
    // The ids llama.cpp gives for this prompt (`cargo xtask llamacpp-check` compares more).
    let chatml = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n";
    let ids = tok.encode(chatml, true).unwrap();
    assert_eq!(ids, [1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531, 198]);
    assert_eq!(tok.decode(&ids, false).unwrap(), chatml);
    // Digits split one by one (the "smollm" pre-tokenizer); text round-trips.
    let text = "In 2019, 1,234 patients: naïve α-synuclein";
    let ids = tok.encode(text, false).unwrap();
    assert_eq!(tok.decode(&ids, true).unwrap(), text);
    assert!(ids.iter().filter(|&&i| tok.decode(&[i], true).unwrap().chars().all(|c| c.is_ascii_digit())).count() >= 8);

    // The GGUF's own chat template, rendered: the default system prompt comes first.
    let prompt = kailin_lm::chat_prompt(&tok, &[ChatMessage::user("What is the capital of France?")]).unwrap();
    assert!(prompt.starts_with("<|im_start|>system\nYou are a helpful AI assistant named SmolLM"));
    assert!(prompt.ends_with(chatml));

    let (model, _) = kailin_lm::Llama::<Flex>::from_gguf(&g, 256, &Default::default()).unwrap();
    let questions = ["What is the capital of France?", "What is the capital of Italy?", "Name a primary colour."];
    let prompts: Vec<String> =
        questions.iter().map(|q| kailin_lm::chat_prompt(&tok, &[ChatMessage::user(*q)]).unwrap()).collect();
    let options = CompletionOptions { max_new: 24, ..Default::default() };
    let batched = kailin_lm::complete(&model, &tok, &prompts, &options).unwrap();
    eprintln!("{:?}", batched.iter().map(|c| &c.text).collect::<Vec<_>>());
    assert!(batched[0].text.contains("Paris"), "{:?}", batched[0].text);
    // (A 135M model: other answers are fluent but not always right, e.g. for Italy's capital.)
    for (i, p) in prompts.iter().enumerate() {
        let alone = kailin_lm::complete(&model, &tok, std::slice::from_ref(p), &options).unwrap();
        assert_eq!(alone[0], batched[i], "prompt {i} alone vs in the batch");
    }
    assert_eq!(batched[0].finish, FinishReason::Stop);
    // A stop string cuts the text (and the generation) where it first appears.
    let stop = CompletionOptions { stop: vec![" of".into()], ..options.clone() };
    let cut = kailin_lm::complete(&model, &tok, &prompts[..1], &stop).unwrap();
    assert_eq!(cut[0].text, batched[0].text.split(" of").next().unwrap());
    assert!(cut[0].tokens.len() < batched[0].tokens.len());
    // Sampling is seeded: the same seed gives the same text.
    let sampled = CompletionOptions { temperature: 0.9, top_p: Some(0.95), seed: 7, ..options };
    let a = kailin_lm::complete(&model, &tok, &prompts[2..], &sampled).unwrap();
    let b = kailin_lm::complete(&model, &tok, &prompts[2..], &sampled).unwrap();
    assert_eq!(a, b);
}

#[test]
#[ignore = "needs the SmolLM2 model: cargo xtask fetch-models"]
fn smollm2_exported_as_a_hugging_face_directory_loads_identically() {
    use burn::backend::Flex;
    use burn::prelude::*;
    use kailin_lm::{ChatMessage, CompletionOptions};
    let path = model();
    let (model, config, tok) = kailin_lm::load::<Flex>(&path, 512, &Default::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    model.save_hf_dir(&config, dir.path()).unwrap();
    tok.save_hf_dir(dir.path()).unwrap();
    let (again, config2, tok2) = kailin_lm::load::<Flex>(dir.path(), 512, &Default::default()).unwrap();
    assert_eq!(config2, config);
    let chat = [ChatMessage::user("What is the capital of France?")];
    let prompt = kailin_lm::chat_prompt(&tok, &chat).unwrap();
    assert_eq!(kailin_lm::chat_prompt(&tok2, &chat).unwrap(), prompt);
    let ids = tok.encode(&prompt, true).unwrap();
    assert_eq!(tok2.encode(&prompt, true).unwrap(), ids);
    assert_eq!((tok2.bos_id(), tok2.eos_id(), tok2.stop_ids()), (tok.bos_id(), tok.eos_id(), tok.stop_ids()));
    let logits = |m: &kailin_lm::Llama<Flex>| {
        let t: Vec<i64> = ids.iter().map(|&i| i64::from(i)).collect();
        let n = t.len();
        m.forward(Tensor::from_data(TensorData::new(t, [1, n]), &Default::default()))
            .unwrap()
            .into_data()
            .to_vec::<f32>()
            .unwrap()
    };
    assert_eq!(logits(&again), logits(&model));
    let answer = kailin_lm::complete(&again, &tok2, &[prompt], &CompletionOptions::default()).unwrap();
    assert_eq!(answer[0].text, "The capital of France is Paris.");
}

#[test]
#[ignore = "needs the SmolLM2 model: cargo xtask fetch-models"]
fn smollm2_lora_gradients_on_the_cpu_kernels_equal_burns_autodiff() {
    use burn::backend::{Autodiff, Flex};
    use std::collections::HashMap;

    use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param, ParamId};
    use burn::prelude::*;
    use burn::tensor::activation::log_softmax;
    use kailin_lm::{Llama, LoraConfig, TrainSequence, training_pass};

    type A = Autodiff<Flex>;
    /// Moves every adapter weight (`B` starts at zero) by a deterministic pattern, so that
    /// every gradient path of the real model carries signal.
    struct Nudge(Vec<String>);
    impl ModuleMapper<A> for Nudge {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.0.push(name.to_owned());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.pop();
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<A, D>>) -> Param<Tensor<A, D>> {
            if !self.0.iter().any(|n| n == "lora") {
                return param;
            }
            let (id, tensor, mapper) = param.consume();
            let n = tensor.shape().num_elements();
            let pattern: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 2000.0).collect();
            let nudge = Tensor::<A, 1>::from_data(TensorData::new(pattern, [n]), &tensor.device());
            let shape = tensor.shape();
            let moved = (tensor.inner().reshape([n]) + nudge.inner()).reshape(shape);
            Param::from_mapped_value(id, Tensor::from_inner(moved).require_grad(), mapper)
        }
    }
    let g = Gguf::open(model()).unwrap();
    let (base, _) = Llama::<A>::from_gguf(&g, 128, &Default::default()).unwrap();
    let lora = base.with_lora(&LoraConfig::new(8)).unwrap().map(&mut Nudge(Vec::new()));
    // A chat-like sequence of 40 tokens, the last 16 scored (an answer after its prompt).
    let tokens: Vec<u32> = (0..40).map(|i| (i * 7919 % 40_000) as u32 + 100).collect();
    let targets: Vec<(usize, u32)> = (23..39).map(|p| (p, tokens[p + 1])).collect();
    let seq = TrainSequence { tokens: tokens.clone(), targets: targets.clone() };

    let ids: Vec<i64> = tokens.iter().map(|&t| i64::from(t)).collect();
    let input = Tensor::<A, 2, Int>::from_data(TensorData::new(ids, [1, 40]), &Default::default());
    let lp = log_softmax(lora.forward(input).unwrap(), 2);
    let picked: Vec<Tensor<A, 1>> = targets
        .iter()
        .map(|&(p, t)| lp.clone().slice([0..1, p..p + 1, t as usize..t as usize + 1]).reshape([1]))
        .collect();
    let want_lp: Vec<f32> = picked.iter().map(|t| t.clone().into_scalar()).collect();
    let grads = Tensor::cat(picked, 0).sum().neg().div_scalar(16.0).backward();

    let tape = training_pass(&lora.valid(), std::slice::from_ref(&seq)).unwrap().expect("the CPU kernels apply");
    for (g, w) in tape.logprobs()[0].iter().zip(&want_lp) {
        assert!((g - f64::from(*w)).abs() < 2e-3, "log p {g} vs {w}");
    }
    let got = tape.backward(&[vec![-1.0 / 16.0; 16]]).unwrap();
    assert_eq!(got.len(), 30 * 7 * 2);
    /// burn's gradient of every parameter that has one, by id.
    struct Grads<'a>(&'a <A as burn::tensor::backend::AutodiffBackend>::Gradients, HashMap<ParamId, Vec<f32>>);
    impl ModuleVisitor<A> for Grads<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<A, D>>) {
            if let Some(g) = param.val().grad(self.0) {
                self.1.insert(param.id, g.into_data().to_vec::<f32>().unwrap());
            }
        }
    }
    let mut burn_grads = Grads(&grads, HashMap::new());
    lora.visit(&mut burn_grads);
    let (mut worst, mut largest) = (0f32, 0f32);
    for grad in &got {
        let want = &burn_grads.1[&grad.param];
        largest = want.iter().fold(largest, |m, v| m.max(v.abs()));
        worst = grad.values.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(worst, f32::max);
    }
    eprintln!("SmolLM2 LoRA gradients: max |Δ| {worst:e} against a largest gradient of {largest:e}");
    assert!(worst <= 1e-3 * largest, "max |Δ| {worst} against a largest gradient of {largest}");
}

#[test]
#[ignore = "needs the SmolLM2 model: cargo xtask fetch-models"]
fn smollm2_decoding_on_the_files_4_bit_blocks_equals_the_f32_products_to_rounding() {
    // The GGUF model multiplies few rows through its file's Q4_1/Q8_0 blocks on 16-bit
    // activations; the same weights exported and reloaded (f32 only) through the f32 copy: the
    // reference.
    use burn::backend::Flex;
    use kailin_lm::{ChatMessage, Sampler};
    let (quantised, config, tok) = kailin_lm::load::<Flex>(model(), 512, &Default::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    quantised.save_hf_dir(&config, dir.path()).unwrap();
    tok.save_hf_dir(dir.path()).unwrap();
    let (plain, _, _) = kailin_lm::load::<Flex>(dir.path(), 512, &Default::default()).unwrap();
    let every: Vec<u32> = (0..config.vocab_size as u32).collect();
    let texts = ["The patient was treated with", "Aspirin inhibits the enzyme", "In this study, we measured"];
    let (mut worst, mut kl_sum, mut steps, mut same) = (0f64, 0f64, 0usize, 0usize);
    for text in texts {
        // Greedy from the reference, each step's whole distribution compared (the head's
        // one-row product reads the embedding's Q8_0 blocks).
        let mut tokens = tok.encode(text, false).unwrap();
        while tokens.len() < 16 {
            let p = &kailin_lm::next_token_logprobs(&plain, &[tokens.clone()], &every).unwrap()[0];
            let q = &kailin_lm::next_token_logprobs(&quantised, &[tokens.clone()], &every).unwrap()[0];
            let argmax = |v: &[f64]| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap();
            kl_sum += p.iter().zip(q).map(|(&a, &b)| a.exp() * (a - b)).sum::<f64>();
            steps += 1;
            same += usize::from(argmax(p) == argmax(q));
            // Every token the reference gives at least 1%.
            for (a, b) in p.iter().zip(q) {
                if *a > 0.01f64.ln() {
                    worst = worst.max((a - b).abs());
                }
            }
            tokens.push(argmax(p) as u32);
        }
    }
    let kl = kl_sum / steps as f64;
    eprintln!("quantised vs f32: mean KL {kl:.5} nats, worst |Δ log p| {worst:.4}, argmax equal {same}/{steps}");
    // Only the activations' rounding (1/65534 of each block's largest value) separates the two.
    assert!(kl < 1e-4, "mean KL {kl}");
    assert!(worst < 0.02, "worst |Δ log p| {worst}");
    assert!(same * 20 >= steps * 19, "argmax equal {same}/{steps}");
    // Greedy decoding with the KV cache (each step's products of one row read every block):
    // the chat answer is unchanged, and how far longer plain continuations stay identical is
    // reported.
    let greedy = |m: &kailin_lm::Llama<Flex>, prompt: &[u32], n: usize| {
        kailin_lm::generate(m, prompt, n, &tok.stop_ids(), &mut Sampler::greedy(), |t| kailin_lm::every_token(0, t))
            .unwrap()
    };
    let chat = tok
        .encode(&kailin_lm::chat_prompt(&tok, &[ChatMessage::user("What is the capital of France?")]).unwrap(), true)
        .unwrap();
    assert_eq!(tok.decode(&greedy(&quantised, &chat, 16), true).unwrap(), "The capital of France is Paris.");
    for text in texts {
        let prompt = tok.encode(text, false).unwrap();
        let (a, b) = (greedy(&plain, &prompt, 64), greedy(&quantised, &prompt, 64));
        let agree = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
        eprintln!("{text:?}: greedy 64 tokens, identical for the first {agree}");
    }
}

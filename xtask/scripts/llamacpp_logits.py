#!/usr/bin/env python3
"""Next-token logits from llama.cpp (llama-cpp-python) for `cargo xtask llamacpp-check`.

Reads a JSON list of prompts on stdin; for each, writes the token ids llama.cpp's own tokenizer
gives (special tokens parsed, no BOS added) and the logits of the token after the prompt, as a
JSON list on stdout. Build llama-cpp-python for this CPU with
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF" \
    python3 -m pip install llama-cpp-python
"""
import json
import sys
import time

import llama_cpp


def main() -> None:
    model_path = sys.argv[1]
    prompts = json.load(sys.stdin)
    llm = llama_cpp.Llama(model_path=model_path, n_ctx=512, n_threads=2, logits_all=True, verbose=False)
    out = []
    for prompt in prompts:
        ids = llm.tokenize(prompt.encode(), add_bos=False, special=True)
        llm.reset()
        llm.eval(ids)
        logits = [float(x) for x in llm.scores[len(ids) - 1]]
        out.append({"prompt": prompt, "ids": ids, "logits": logits})
    # Greedy decoding speed on the same file: 64 tokens after the first prompt.
    ids = llm.tokenize(prompts[0].encode(), add_bos=False, special=True)
    llm.reset()
    start = time.perf_counter()
    n = 0
    for token in llm.generate(ids, temp=0.0, top_k=1):
        n += 1
        if n == 64:
            break
    elapsed = time.perf_counter() - start
    json.dump({"version": llama_cpp.__version__, "results": out, "decode_tokens": n, "decode_seconds": elapsed}, sys.stdout)


if __name__ == "__main__":
    main()

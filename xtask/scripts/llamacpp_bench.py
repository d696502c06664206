#!/usr/bin/env python3
"""llama.cpp's side of `cargo xtask bench lm`: the same GGUF file, token ids and threads as
kailin's side, timed the same way. Reads on stdin a JSON object
  {"prompts": [[ids]...], "decode_prompt": [ids], "decode_new": N, "repeats": R}
and writes on stdout, for each measurement, its median over R repeats:
  prompt pass: every prompt evaluated from an empty cache (tokens/s over all of them);
  decode: greedy, one sequence, the tokens after the first (which includes the prompt pass).
"""
import json
import statistics
import sys
import time

import llama_cpp


def main() -> None:
    model_path, threads = sys.argv[1], int(sys.argv[2])
    job = json.load(sys.stdin)
    longest = max(len(p) for p in job["prompts"] + [job["decode_prompt"]]) + job["decode_new"] + 8
    llm = llama_cpp.Llama(model_path=model_path, n_ctx=max(512, longest), n_batch=512, n_threads=threads,
                          n_threads_batch=threads, verbose=False)
    prompt_runs, decode_runs = [], []
    for _ in range(job["repeats"]):
        start = time.perf_counter()
        for ids in job["prompts"]:
            llm.reset()
            llm.eval(ids)
        prompt_runs.append(sum(len(p) for p in job["prompts"]) / (time.perf_counter() - start))
        llm.reset()
        first, n = None, 0
        for _token in llm.generate(job["decode_prompt"], temp=0.0, top_k=1, reset=True):
            n += 1
            if first is None:
                first = time.perf_counter()
            if n == job["decode_new"]:
                break
        decode_runs.append((n - 1) / (time.perf_counter() - first))
    json.dump({"version": llama_cpp.__version__, "prompt_tok_s": statistics.median(prompt_runs),
               "decode_tok_s": statistics.median(decode_runs)}, sys.stdout)


if __name__ == "__main__":
    main()

"""Sentence embeddings with sentence-transformers on the CPU, for `cargo xtask bench encoder`.

Reads a JSON list of texts, encodes them with the given threads and batch size after one
warm-up batch (as the Rust side does), and writes the vectors (.npy) and the time (.json).
"""
import argparse
import json
import sys
import time

import numpy as np

try:
    import torch
    import sentence_transformers
    from sentence_transformers import SentenceTransformer
except ImportError:
    sys.exit("sentence-transformers is not installed: pip install sentence-transformers")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--texts", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    with open(a.texts) as f:
        texts = json.load(f)
    model = SentenceTransformer(a.model, device="cpu")
    model.encode(texts[:8], batch_size=a.batch)
    t = time.perf_counter()
    vectors = model.encode(texts, batch_size=a.batch, convert_to_numpy=True)
    seconds = time.perf_counter() - t
    np.save(a.out, vectors.astype(np.float32))
    with open(a.out[: -len(".npy")] + ".json", "w") as f:
        json.dump({"seconds": seconds, "version": sentence_transformers.__version__, "torch": torch.__version__,
                   "threads": a.threads, "texts": len(texts)}, f)
    print(f"sentence-transformers: {seconds:.2f} s", file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""PyTorch peer of `cargo xtask bench lm`'s training steps on the CPU: SmolLM2-135M's
architecture (`transformers` `LlamaForCausalLM`, f32; randomly initialised: a step's time
depends on the shapes, not the values), the same rows, threads and step as kailin's — one
optimiser step of next-token training (forward, backward, global-norm clipping at 1.0, AdamW)
on ROWS rows of SEQ tokens, with LoRA (rank R, alpha R, through `peft`, on q/k/v/o/gate/up/down,
the base frozen) and with every weight trained.

  python3 xtask/scripts/torch_cpu_train.py --threads 2 --rows 4 --seq 256 --rank 16 --steps 3

Prints one JSON object: torch's version and the median tokens/s of each kind of step.
"""
import argparse
import json
import statistics
import time

import torch
from transformers import LlamaForCausalLM

# The architecture's one description, shared with the GPU peer (this directory is on sys.path).
from torch_throughput import smollm2_135m


def rows(n: int, seq: int) -> torch.Tensor:
    # The same deterministic pseudo-text kailin's side trains on (ids over the first 40k).
    return torch.tensor([[((r * 7919 + i * 104_729) % 40_000) + 100 for i in range(seq + 1)] for r in range(n)])


def steps_per_second(model, ids: torch.Tensor, steps: int) -> float:
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.0)
    inputs, labels = ids[:, :-1], ids[:, 1:]

    def step() -> None:
        logits = model(input_ids=inputs).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # warm-up: allocations, the optimiser's state
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return inputs.numel() / statistics.median(times)


def main() -> None:
    a = argparse.ArgumentParser()
    a.add_argument("--threads", type=int, default=2)
    a.add_argument("--rows", type=int, default=4)
    a.add_argument("--seq", type=int, default=256)
    a.add_argument("--rank", type=int, default=16)
    a.add_argument("--steps", type=int, default=3)
    a.add_argument("--skip-full", action="store_true")
    o = a.parse_args()
    torch.set_num_threads(o.threads)
    torch.manual_seed(0)
    ids = rows(o.rows, o.seq)
    out = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    from peft import LoraConfig, get_peft_model

    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    lora = get_peft_model(LlamaForCausalLM(smollm2_135m()),
                          LoraConfig(r=o.rank, lora_alpha=o.rank, lora_dropout=0.0, target_modules=targets))
    lora.train()
    out["lora_tok_s"] = steps_per_second(lora, ids, o.steps)
    del lora
    if not o.skip_full:
        full = LlamaForCausalLM(smollm2_135m())
        full.train()
        out["full_tok_s"] = steps_per_second(full, ids, o.steps)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

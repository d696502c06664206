#!/usr/bin/env python3
"""PyTorch reference for `examples/throughput.rs` on a GPU machine: the same architecture
(SmolLM2-135M, Hugging Face `transformers` `LlamaForCausalLM`, randomly initialised), the same
batch shapes and precision, timed the same way.

  python3 xtask/scripts/torch_throughput.py --rows 16 --seq 512 --steps 10 [--tf32] [--bf16]

Prints one line per measurement: greedy decoding tokens/s (batches 1 and 16, 16-token prompt,
64 new tokens, KV cache), training tokens/s of full fine-tuning (AdamW, clipping 1.0) with
model-FLOPs utilisation, and, with --lora-rank, LoRA training through `peft`.
"""
import argparse
import statistics
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def smollm2_135m() -> LlamaConfig:
    return LlamaConfig(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, rope_theta=100000.0, rms_norm_eps=1e-5,
        tie_word_embeddings=True, max_position_embeddings=8192,
    )


def flops_per_token(c: LlamaConfig, seq: int, lora: bool = False) -> float:
    """Training FLOPs per token: 6 per weight-matrix parameter (4 with LoRA, whose frozen
    weights need no weight gradient; the adapters' own work is neglected), plus causal attention's
    6 · layers · seq · heads · head_dim."""
    hd = c.hidden_size // c.num_attention_heads
    per_layer = (c.hidden_size * c.num_attention_heads * hd * 2 + c.hidden_size * c.num_key_value_heads * hd * 2
                 + 3 * c.hidden_size * c.intermediate_size)
    matmul = per_layer * c.num_hidden_layers + c.hidden_size * c.vocab_size
    return (4.0 if lora else 6.0) * matmul + 6.0 * c.num_hidden_layers * seq * c.num_attention_heads * hd


def sync() -> None:
    torch.cuda.synchronize()


def generate(model, batch: int, new: int) -> float:
    prompt = torch.tensor([[1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531, 198]] * batch,
                          device="cuda")
    kwargs = dict(max_new_tokens=new, min_new_tokens=new, do_sample=False, use_cache=True, pad_token_id=0)
    model.generate(prompt, **kwargs)  # warm-up
    times = []
    for _ in range(3):
        sync()
        t = time.perf_counter()
        out = model.generate(prompt, **kwargs)
        sync()
        times.append(time.perf_counter() - t)
        assert out.shape[1] == 16 + new
    return batch * new / statistics.median(times)


def train(model, rows: int, seq: int, steps: int, label: str, flops: float, peak: float | None) -> None:
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.0)
    g = torch.Generator().manual_seed(0)
    batches = [torch.randint(100, 40100, (rows, seq + 1), generator=g).cuda() for _ in range(steps + 2)]
    times, losses = [], []
    for i, ids in enumerate(batches):
        sync()
        t = time.perf_counter()
        out = model(input_ids=ids[:, :-1], labels=ids[:, :-1])
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(out.loss.item())
        sync()
        if i >= 2:
            times.append(time.perf_counter() - t)
    rate = rows * seq * len(times) / sum(times)
    mfu = f", MFU {100 * rate * flops / peak:.1f}%" if peak else ""
    print(f"torch train {label:<9} {rows} x {seq}: {rate:9.1f} tok/s ({sum(times) / len(times):.3f} s/step, "
          f"{rate * flops / 1e12:.1f} TFLOP/s{mfu}), loss {losses[0]:.3f} -> {losses[-1]:.3f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--lora-rank", default="")
    ap.add_argument("--tf32", action="store_true", help="allow TF32 matrix products (PyTorch's default is off)")
    ap.add_argument("--peak-flops", type=float, default=None)
    ap.add_argument("--skip", default="")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, f32, tf32={'on' if args.tf32 else 'off'}",
          flush=True)
    config = smollm2_135m()
    flops = flops_per_token(config, args.seq)
    torch.manual_seed(0)
    if "generate" not in args.skip:
        model = LlamaForCausalLM(config).cuda().eval()
        with torch.no_grad():
            for batch in [int(b) for b in args.batches.split(",")]:
                rate = generate(model, batch, args.new_tokens)
                print(f"torch generate batch {batch:>3}: {rate:9.1f} tok/s median", flush=True)
        del model
    if "train" not in args.skip:
        model = LlamaForCausalLM(config).cuda().train()
        train(model, args.rows, args.seq, args.steps, "full", flops, args.peak_flops)
        del model
        for rank in [int(r) for r in args.lora_rank.split(",") if r and r != "0"]:
            from peft import LoraConfig, get_peft_model
            model = LlamaForCausalLM(config).cuda().train()
            targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
            model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=16, lora_dropout=0.0, target_modules=targets))
            lora_flops = flops_per_token(config, args.seq, lora=True)
            train(model, args.rows, args.seq, args.steps, f"LoRA r={rank}", lora_flops, args.peak_flops)
            del model
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes fuzz/seeds/safetensors/tiny.safetensors: a valid f16 checkpoint of the fuzz target's
architecture (1 layer, hidden 4, 2 heads, 1 KV head, MLP 6, vocab 5, tied embeddings)."""
import json
import pathlib
import struct

h, kv, ff, v = 4, 2, 6, 5
shapes = {
    "model.embed_tokens.weight": [v, h], "model.norm.weight": [h],
    "model.layers.0.self_attn.q_proj.weight": [h, h], "model.layers.0.self_attn.k_proj.weight": [kv, h],
    "model.layers.0.self_attn.v_proj.weight": [kv, h], "model.layers.0.self_attn.o_proj.weight": [h, h],
    "model.layers.0.mlp.gate_proj.weight": [ff, h], "model.layers.0.mlp.up_proj.weight": [ff, h],
    "model.layers.0.mlp.down_proj.weight": [h, ff], "model.layers.0.input_layernorm.weight": [h],
    "model.layers.0.post_attention_layernorm.weight": [h],
}
header, data = {}, b""
for i, (name, shape) in enumerate(shapes.items()):
    n = 1
    for d in shape:
        n *= d
    start = len(data)
    data += struct.pack("<%de" % n, *[((i + j) % 7 - 3) / 8 for j in range(n)])
    header[name] = {"dtype": "F16", "shape": shape, "data_offsets": [start, len(data)]}
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
out = pathlib.Path(__file__).parent / "safetensors" / "tiny.safetensors"
out.write_bytes(struct.pack("<Q", len(text)) + text + data)

#!/usr/bin/env bash
# Throughput on a GPU machine: kailin on burn's CUDA backend next to PyTorch on the same GPU,
# same architecture (SmolLM2-135M, random weights), shapes and precision (f32).
#
#   cargo build --release -p kailin-examples --features cuda --example throughput
#   bash xtask/scripts/gpu_throughput.sh target/release/examples/throughput [OUT_DIR]
#
# Peak used for model-FLOPs utilisation: an H100 SXM's f32 rate without tensor cores (67e12).
set -uo pipefail
bin=${1:?path of the throughput example built with --features cuda}
out=${2:-.}
peak=${PEAK_FLOPS:-67e12}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
# burn's CUDA runtime compiles its kernels with NVRTC at run time.
nvrtc=$(find / -name 'libnvrtc.so*' -not -path '*/proc/*' 2>/dev/null | head -1)
[ -n "$nvrtc" ] && export LD_LIBRARY_PATH="$(dirname "$nvrtc")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "nvrtc: ${nvrtc:-not found}"
export RUST_BACKTRACE=0 PYTHONUNBUFFERED=1
run() { local name=$1 limit=$2; shift 2; echo "== $name"; timeout "$limit" "$@" 2>&1 | tee "$out/$name.log" | grep -v '^ \+[0-9]*:\|^ \+at '; echo "(exit ${PIPESTATUS[0]})"; }
run rust_infer 150 "$bin" --device cuda --batches 1,16,64 --skip train --seq 128
run torch_infer 90 python3 xtask/scripts/torch_throughput.py --batches 1,16,64 --skip train
run rust_train 150 "$bin" --device cuda --skip check,generate,score --rows 16 --seq 512 --steps 8 --lora-rank 0,16 --peak-flops "$peak"
run torch_train 90 python3 xtask/scripts/torch_throughput.py --skip generate --rows 16 --seq 512 --steps 8 --lora-rank 16 --peak-flops "$peak"
run torch_train_tf32 60 python3 xtask/scripts/torch_throughput.py --skip generate --rows 16 --seq 512 --steps 8 --tf32 --peak-flops "$peak"

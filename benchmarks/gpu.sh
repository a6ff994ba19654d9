#!/usr/bin/env bash
# The GPU rows of docs/benchmarks.md in one run (about 6 minutes on an H100/H200, compilations included;
# the timeouts add up to 590 s, so the whole run fits in ten minutes):
#   1. BERT's embedding lookups fwd+bwd, ours vs nnx.Embed autodiff (the suspected fwd+bwd gap), bf16 and fp32;
#   2. ViT-B/32 + BERT-base towers vs transformers' PyTorch model, bf16, batch 256: samples/s and MFU;
#   3. where a towers training step's time goes: its top XLA ops and the backward/forward split.
# Usage: bash benchmarks/gpu.sh [peak dense bf16 TFLOP/s, default 989 (H100/H200 SXM)] [python, default python]
# Each step runs under `timeout` so one hang cannot use up the machine's time.
set -u
PEAK="${1:-989}"
PYTHON="${2:-python}"
cd "$(dirname "$0")/.."
"$PYTHON" -c "import jax; print('jax', jax.__version__, jax.devices())"
timeout 90 "$PYTHON" benchmarks/embedding_grad.py --dtype bfloat16 --rounds 20
timeout 90 "$PYTHON" benchmarks/embedding_grad.py --dtype float32 --rounds 20
timeout 270 "$PYTHON" benchmarks/towers.py --config base --dtype bfloat16 --batch 256 --rounds 3 --repeats 5 \
    --peak-tflops "$PEAK"
timeout 140 "$PYTHON" benchmarks/profile_towers.py --config base --dtype bfloat16 --batch 256 --top 25

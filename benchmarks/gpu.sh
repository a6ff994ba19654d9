#!/usr/bin/env bash
# The GPU rows of docs/benchmarks.md in one run; the timeouts add up to 560 s, so the whole run fits in ten
# minutes on an H100/H200 (compilations included), most important first:
#   1. a full phase-2 training step (AdamW + clipping) of ViT-B/32 + BERT-base in bf16, batch 256: clipit vs
#      transformers' PyTorch model eager and under torch.compile, samples/s and MFU (train_step.py);
#   2. the towers' fwd+bwd and forward vs PyTorch eager, bf16, batch 256: samples/s and MFU (towers.py);
#   3. BERT's embedding lookups fwd+bwd, ours vs nnx.Embed autodiff, bf16 (embedding_grad.py);
#   4. where a towers training step's time goes: its top XLA ops and the backward/forward split.
# Usage: bash benchmarks/gpu.sh [peak dense bf16 TFLOP/s, default 989 (H100/H200 SXM)] [python, default python3]
# Each step runs under `timeout` so one hang cannot use up the machine's time; output is unbuffered, so a
# step cut off by its timeout still shows what it printed (pipe into `tee` to keep a log).
#
# Needs, besides the repository (put on PYTHONPATH here): jax with CUDA, flax, optax, torch, transformers,
# safetensors, tokenizers (all in the GPU image), and clipit's config dependencies, which the image lacks:
# pydantic, pydantic-core, annotated-types, typing-inspection, tomli-w. This script first pip-installs
# the wheels in .whl/ (git-ignored; carry it) into /tmp/site, without an index. Fetch them beforehand,
# where an index is reachable, for the GPU machine's Python (3.12, x86-64):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
#       tomli-w==1.2.0
set -u
PEAK="${1:-989}"
PYTHON="${2:-python3}"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" >/dev/null; then
    timeout 30 "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
timeout 20 "$PYTHON" -c "import jax; print('jax', jax.__version__, jax.devices())"
# JAX takes 75% of the GPU's memory at start by default; PyTorch's two models (weights, gradients, AdamW
# moments) and batch-256 activations come close to the other 25% (about 30 of 35 GiB by estimate), so JAX
# gets 45% here, far more than its own step needs.
XLA_PYTHON_CLIENT_MEM_FRACTION=0.45 timeout 270 "$PYTHON" benchmarks/train_step.py --size base --dtype bfloat16 \
    --batch 256 --steps 5 --rounds 3 --peak-tflops "$PEAK"
timeout 150 "$PYTHON" benchmarks/towers.py --config base --dtype bfloat16 --batch 256 --rounds 2 --repeats 3 \
    --peak-tflops "$PEAK"
timeout 30 "$PYTHON" benchmarks/embedding_grad.py --dtype bfloat16 --rounds 20
timeout 60 "$PYTHON" benchmarks/profile_towers.py --config base --dtype bfloat16 --batch 256 --top 25

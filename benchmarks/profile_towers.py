"""Where the time of one towers step goes: the top XLA ops of a `jax.profiler` trace, per call.

    .venv/bin/python benchmarks/profile_towers.py                        # CPU-sized towers, fwd+bwd
    .venv/bin/python benchmarks/profile_towers.py --step forward --threads 1
    python benchmarks/profile_towers.py --config base --dtype bfloat16 --batch 256   # on a GPU

The same model, batch and step as benchmarks/towers.py (its `model_and_batch`, `jax_functions`), traced for `--calls`
calls after a warm-up, then read back with `jax.profiler.ProfileData` (no TensorBoard needed). On a
GPU the device plane's "XLA Ops" line gives each HLO op's kernel time; on the CPU the executor
threads' events give each thunk's time. Ops are printed with their share of the step and the source
op XLA's metadata names (e.g. `transpose(jvp(...))` for a backward op), so a slow backward can be
traced to the line that made it. On a GPU it answers docs/benchmarks.md's question ("our backward costs
7.8 forwards"); it has not yet run on one: the device plane and line names follow XLA's GPU profiler. On
the CPU it reproduces the per-op tables of that page.
"""

from __future__ import annotations

import argparse
import collections
import glob
import re
import tempfile

import jax
from towers import CONFIGS, jax_functions, model_and_batch, pin_to_cores

# Wrapper events that enclose the ops rather than being ops (CPU thunk executor, runtime, python).
_NOT_OPS = ("ThunkExecutor", "Thread", "end:", "$", "Slinky", "Pjit", "ParseArguments", "Common", "Handle")


def op_sources(hlo_text: str) -> dict[str, str]:
    """HLO instruction name -> its output shape and the `op_name` metadata JAX recorded for it (which
    jax op made it: `transpose(jvp(...))` marks a backward op)."""
    sources = {}
    for match in re.finditer(r"^\s*(?:ROOT )?%([\w.\-]+) = (\S+)[^\n]*$", hlo_text, re.MULTILINE):
        name = re.search(r'op_name="([^"]*)"', match.group(0))
        shape = match.group(2).split("{")[0]
        sources[match.group(1)] = f"{shape} {name.group(1) if name else ''}"
    return sources


def op_times(trace_dir: str, calls: int) -> dict[str, float]:
    """Seconds per call of each op in the trace: device ops where there is a device, else CPU thunks."""
    from jax.profiler import ProfileData

    (path,) = glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True)
    profile = ProfileData.from_file(path)
    device_planes = [plane for plane in profile.planes if plane.name.startswith("/device:")]
    totals: collections.Counter[str] = collections.Counter()
    if device_planes:
        for plane in device_planes:
            lines = [line for line in plane.lines if line.name == "XLA Ops"] or list(plane.lines)
            for line in lines:
                for event in line.events:
                    totals[event.name] += event.duration_ns
    else:
        for plane in profile.planes:
            for line in plane.lines:
                if not line.name.startswith("tf_XLA"):
                    continue
                for event in line.events:
                    if not event.name.startswith(_NOT_OPS):
                        totals[event.name] += event.duration_ns
    return {name: ns / 1e9 / calls for name, ns in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="small")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--step", choices=["train", "forward"], default="train")
    parser.add_argument("--calls", type=int, default=5, help="traced calls (after two warm-up calls)")
    parser.add_argument("--top", type=int, default=30, help="ops to list")
    parser.add_argument("--threads", type=int, default=0, help="pin the process to this many cores (CPU)")
    args = parser.parse_args()

    if args.threads:
        pin_to_cores(args.threads)
    model, batch = model_and_batch(args.config, args.dtype, args.batch)
    params, train_step, embed = jax_functions(model)
    step = train_step if args.step == "train" else embed
    inputs = [jax.device_put(x) for x in (params, *batch)]
    compiled = step.lower(*inputs).compile()
    sources = op_sources(compiled.as_text())
    for _ in range(2):
        jax.block_until_ready(compiled(*inputs))

    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir):
            for _ in range(args.calls):
                jax.block_until_ready(compiled(*inputs))
        times = op_times(trace_dir, args.calls)

    total = sum(times.values())
    kinds: collections.Counter[str] = collections.Counter()
    for name, seconds in times.items():
        kinds[re.sub(r"[.\d]+$", "", name)] += seconds
    print(
        f"{args.step} step, config {args.config}, {args.dtype}, batch {args.batch}, "
        f"{jax.devices()[0].platform}: {total * 1e3:.1f} ms of op time per call"
    )
    if args.step == "train":  # autodiff names backward ops transpose(jvp(...)): the forward/backward split
        backward = sum(t for name, t in times.items() if "transpose(jvp" in sources.get(name, ""))
        print(
            f"backward ops {backward * 1e3:.1f} ms = {backward / max(total - backward, 1e-12):.2f}x the rest"
        )
    print("\nby kind of op (fusion kind, or kernel family):")
    for kind, seconds in kinds.most_common(12):
        print(f"  {seconds * 1e3:9.2f} ms  {seconds / total:6.1%}  {kind}")
    print(f"\ntop {args.top} ops:")
    for name, seconds in sorted(times.items(), key=lambda item: -item[1])[: args.top]:
        source = sources.get(name, "")
        print(f"  {seconds * 1e3:9.2f} ms  {seconds / total:6.1%}  {name:28s} {source[:100]}")


if __name__ == "__main__":
    main()

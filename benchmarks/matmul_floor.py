#!/usr/bin/env python3
"""The fastest a GPT-2 decode step can be here: its weight products alone.

A decode step multiplies the new token's activations (one row per sequence)
by every weight matrix of the model: per layer q/k/v (768x2304), the
attention output (768x768) and the feed-forward pair (768x3072, 3072x768),
then the logits (768x50257, GPT-2's tied embedding). Nothing else in a step
reads as many bytes, so the time of these products alone, with the best
library on the machine, bounds every implementation's tokens/s from above:
`batch / floor seconds`. This script times them at GPT-2 124M's shape, in
float32 and (separately: it changes outputs) bfloat16, with XLA (JAX, what
kgpt2 runs), NumPy (its BLAS) and PyTorch (what HF transformers runs) when
it is installed, each product fed by the previous one so that none is
skipped. Each library is timed with the weights stored both ways, `(in, out)`
and `(out, in)` (GPT-2's logits read the embedding `(vocab, hidden)` the second
way), and the table keeps the faster. Distinct weights per layer (about 500 MB in float32) keep the
weights out of the caches, as in a real model.

With `--training B,L` it measures instead the limit of a training step of
B x L tokens: the GFLOP/s of every distinct matrix product of the step
(forward, input-gradient and weight-gradient; `kgpt2.bench.peak`), in
float32 and bfloat16, with XLA (JAX), TensorFlow (oneDNN) and PyTorch, and
each library's peak: the figure `kgpt2 bench` divides model FLOP/s by (the
MFU), there measured at the forward shapes only.

Run (from the repository root; `--torch-python` adds PyTorch from another
environment, such as the HF peer's):
  PYTHONPATH=$PWD python benchmarks/matmul_floor.py --batch-sizes 1,8 \
      --torch-python PEER_VENV/bin/python
  PYTHONPATH=$PWD python benchmarks/matmul_floor.py --training 8,128 \
      --torch-python PEER_VENV/bin/python
"""

import argparse
import json
import subprocess
import sys
import time

HIDDEN, INTERMEDIATE, LAYERS, VOCAB = 768, 3072, 12, 50257


def weight_shapes():
    """`(in, out)` of every weight product of one decode step, in order."""
    layer = [(HIDDEN, 3 * HIDDEN), (HIDDEN, HIDDEN), (HIDDEN, INTERMEDIATE), (INTERMEDIATE, HIDDEN)]
    return layer * LAYERS + [(HIDDEN, VOCAB)]


def _chain(matmul, weights, x, transposed=False):
    """Feed each product from the last one (cut to the next one's input width).

    With `transposed`, every weight is stored `(out, in)` and `matmul(x, w)`
    must contract `x`'s last axis with `w`'s last axis.
    """
    inputs = [w.shape[-1 if transposed else 0] for w in weights]
    for w, width in zip(weights, inputs[1:] + inputs[:1]):
        x = matmul(x, w)[:, :width]
    return x


def _weights(make, transposed):
    """`make(shape)` for every weight of a step, `(out, in)` if transposed."""
    return [make((o, i) if transposed else (i, o)) for i, o in weight_shapes()]


def _best(run, repeats):
    run()  # compile / warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def measure_jax(batch_size, dtype, transposed, repeats, steps):
    import jax
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(0)
    weights = _weights(lambda s: jnp.asarray(rng.standard_normal(s, dtype="float32") * 0.02, dtype), transposed)
    x = jnp.asarray(rng.standard_normal((batch_size, HIDDEN), dtype="float32"), dtype)
    contract = (((1,), (1 if transposed else 0,)), ((), ()))

    def matmul(x, w):
        y = jax.lax.dot_general(x, w, contract, preferred_element_type=jnp.float32)
        return y.astype(w.dtype)

    @jax.jit
    def loop(ws, x):
        return jax.lax.fori_loop(0, steps, lambda i, x: _chain(matmul, ws, x, transposed), x)

    return _best(lambda: loop(weights, x).block_until_ready(), repeats) / steps


def measure_numpy(batch_size, transposed, repeats, steps):
    import numpy as np

    rng = np.random.default_rng(0)
    weights = _weights(lambda s: rng.standard_normal(s, dtype="float32") * 0.02, transposed)
    x = rng.standard_normal((batch_size, HIDDEN), dtype="float32")

    def matmul(x, w):
        return x @ w.T if transposed else x @ w

    def run():
        for _ in range(steps):
            _chain(matmul, weights, x, transposed)

    return _best(run, repeats) / steps


TORCH_PROGRAM = """
import json, sys, time, torch
sys.path.insert(0, {here!r})
from matmul_floor import _best, _chain, _weights, HIDDEN
torch.set_grad_enabled(False)
g = torch.Generator().manual_seed(0)
out = {{}}
for dtype in ("float32", "bfloat16"):
    for transposed in (False, True):
        weights = _weights(lambda s: (torch.randn(s, generator=g) * 0.02).to(getattr(torch, dtype)), transposed)
        # F.linear is what HF's GPT-2 (Conv1D aside) and most torch code run.
        matmul = torch.nn.functional.linear if transposed else torch.matmul
        for b in {batch_sizes!r}:
            x = torch.randn(b, HIDDEN, generator=g).to(getattr(torch, dtype))
            def run():
                for _ in range({steps}):
                    _chain(matmul, weights, x, transposed)
            out[f"{{dtype}}/{{b}}/{{int(transposed)}}"] = _best(run, {repeats}) / {steps}
print(json.dumps({{"version": torch.__version__, "threads": torch.get_num_threads(), "seconds": out}}))
"""


def measure_torch(python, batch_sizes, repeats, steps):
    import pathlib

    program = TORCH_PROGRAM.format(
        here=str(pathlib.Path(__file__).resolve().parent),
        batch_sizes=list(batch_sizes),
        repeats=repeats,
        steps=steps,
    )
    result = subprocess.run([python, "-c", program], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def training_peaks(tokens, repeats, torch_python=None, json_path=None,
                   torch_dtypes=("float32", "bfloat16")):
    """Print (and return) every library's GFLOP/s at each product of a training step."""
    from kgpt2.bench.peak import matmul_peak
    from kgpt2.bench.peak import torch_matmul_peak
    from kgpt2.bench.peak import training_shapes

    shapes = training_shapes(tokens, HIDDEN, INTERMEDIATE, VOCAB)
    results = [matmul_peak(library, dtype, shapes, repeats=repeats)
               for library in ("jax", "tensorflow") for dtype in ("float32", "bfloat16")]
    if torch_python:
        results += torch_matmul_peak(torch_python, list(torch_dtypes), shapes, repeats)
    names = [f"{r['library']} {r['dtype']}" for r in results]
    print(f"GFLOP/s of each matrix product of a GPT-2 124M training step on {tokens} tokens "
          f"((m, k) @ (k, n); best of {repeats})")
    print(f"{'m x k x n':>20s} " + " ".join(f"{name[-34:]:>34s}" for name in names))
    for index, shape in enumerate(shapes):
        print(f"{' x '.join(map(str, shape)):>20s} "
              + " ".join(f"{r['rates'][index]['gflop_s']:34.1f}" for r in results))
    print(f"{'peak':>20s} " + " ".join(f"{r['peak_gflop_s']:34.1f}" for r in results))
    if json_path:
        with open(json_path, "w") as f:
            json.dump(results, f, indent=1)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=8, help="decode steps per timed call")
    parser.add_argument("--torch-python", default=None,
                        help="a Python interpreter that has PyTorch (e.g. the HF peer's)")
    parser.add_argument("--json", default=None, help="also write the figures here")
    parser.add_argument("--training", default=None, metavar="B,L",
                        help="measure a training step's products at B x L tokens instead")
    parser.add_argument("--torch-dtypes", default="float32,bfloat16",
                        help="with --training: PyTorch's dtypes (its bfloat16 products "
                        "can take minutes on a CPU without native bfloat16)")
    args = parser.parse_args(argv)
    if args.training:
        batch, length = (int(n) for n in args.training.split(","))
        training_peaks(batch * length, args.repeats, args.torch_python, args.json,
                       args.torch_dtypes.split(","))
        return 0
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]

    import jax

    float32_bytes = sum(i * o for i, o in weight_shapes()) * 4
    xla = "XLA (JAX %s)" % jax.__version__
    layouts = {}  # (library, dtype, batch) -> {layout: seconds}
    for b in batch_sizes:
        for transposed in (False, True):
            for dtype in ("float32", "bfloat16"):
                layouts.setdefault((xla, dtype, b), {})[transposed] = measure_jax(
                    b, dtype, transposed, args.repeats, args.steps)
            layouts.setdefault(("NumPy BLAS", "float32", b), {})[transposed] = measure_numpy(
                b, transposed, args.repeats, args.steps)
    if args.torch_python:
        torch = measure_torch(args.torch_python, batch_sizes, args.repeats, args.steps)
        for key, value in torch["seconds"].items():
            dtype, b, transposed = key.split("/")
            layouts.setdefault((f"PyTorch {torch['version']}", dtype, int(b)), {})[bool(int(transposed))] = value
    seconds = {key: min(by_layout.values()) for key, by_layout in layouts.items()}
    best_layout = {key: "(out,in)" if by_layout[True] < by_layout[False] else "(in,out)"
                   for key, by_layout in layouts.items()}

    print(f"Weight products of one GPT-2 124M decode step ({float32_bytes / 1e6:.0f} MB in float32); "
          "best of %d calls of %d steps" % (args.repeats, args.steps))
    print(f"{'library':24s} {'dtype':9s} {'batch':>5s} {'layout':>9s} {'ms/step':>8s} {'GB/s':>6s} {'max tok/s':>10s}")
    rows = []
    for (library, dtype, b), s in sorted(seconds.items(), key=lambda kv: (kv[0][2], kv[0][1] != "float32", kv[1])):
        nbytes = float32_bytes // (1 if dtype == "float32" else 2)
        layout = best_layout[(library, dtype, b)]
        rows.append(dict(library=library, dtype=dtype, batch_size=b, layout=layout, step_s=s,
                         gb_per_s=nbytes / s / 1e9, max_tok_per_s=b / s,
                         seconds_by_layout={("(out,in)" if t else "(in,out)"): v
                                            for t, v in layouts[(library, dtype, b)].items()}))
        print(f"{library:24s} {dtype:9s} {b:5d} {layout:>9s} {s * 1e3:8.2f} {nbytes / s / 1e9:6.1f} {b / s:10.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())

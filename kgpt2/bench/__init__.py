"""Measure generation and training speed: `kgpt2.bench.run`, `kgpt2 bench`.

`run` measures every (sampler, batch size, generation path) and a training
step on one or more Keras backends, optionally beside the HF transformers
peer, and returns a `BenchReport`. The modules, one idea each:

- `settings`: what can be measured and the check of a request;
- `generation`, `training`: the two measurements, in this process;
- `peak`, `flops`: the float32/bfloat16 matmul peak at a training step's
  shapes, and a step's model FLOP/s and MFU against it;
- `machine`: CPU, cores, load, bandwidth and library versions;
- `backends`: another Keras backend, in a child process;
- `hf`: the HF transformers peer script;
- `rounds`: pooling several rounds of the same measurement;
- `report`: `BenchReport`, its JSON file and the bandwidth ceiling;
- `plot`: the tokens/s chart;
- `benchmark`: `run`, which puts them together.

Names load on first use, so that the `kgpt2` command can read `settings`
without importing Keras.

Example:
```python
import kgpt2

report = kgpt2.bench.run("gpt2_tiny_random", batch_sizes=[1], samplers=["greedy"],
                         new_tokens=8, train=None)
print(report.summary[0]["steady_tok_per_s"], "tokens/s")
```
"""

from kgpt2.lazy import lazy_exports

_EXPORTS = {
    "BenchReport": "kgpt2.bench.report",
    "SUPPORTED_BACKENDS": "kgpt2.bench.settings",
    "run": "kgpt2.bench.benchmark",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = ["BenchReport", "SUPPORTED_BACKENDS", "run"]

"""A training step's model FLOP/s and its MFU (share of the measured peak).

Model FLOPs per trained token follow Kaplan et al. (2020) and PaLM's
appendix B: `6 N + 12 L d T`, where `N` is the model's parameter count
(GPT-2's token embedding included: its tied matrix computes the logits),
`L` the layers, `d` the hidden size and `T` the sequence length. `6 N` is
the weight products (2 FLOPs per multiply-add, forward once and backward
twice); `12 L d T` is attention's scores and weighted sum, which no weight
counts. Model FLOPs count what the model needs, not what an implementation
spends (no recomputation, no causal-mask savings), so they compare across
implementations. The model FLOP utilisation (MFU) is model FLOP/s over the
matrix-multiply peak (float32, or bfloat16 for a mixed-precision step)
`kgpt2.bench.peak` measured with the library
that trained.

Example:
```python
from kgpt2.bench.flops import training_flop_per_token, with_utilisation

per_token = training_flop_per_token(params=124_439_808, layers=12, hidden=768, sequence_length=128)
print(per_token)  # 760794624
row = with_utilisation({"steady_tok_per_s": 100.0}, per_token, peak_gflop_s=152.0)
print(round(row["model_gflop_s"], 1), round(row["mfu"], 3))  # 76.1 0.501
```
"""


def training_flop_per_token(params, layers, hidden, sequence_length):
    """Return the model FLOPs of training on one token: `6 N + 12 L d T`.

    Example:
    ```python
    from kgpt2.bench.flops import training_flop_per_token

    print(training_flop_per_token(params=1000, layers=2, hidden=8, sequence_length=4))  # 6768
    ```
    """
    return 6 * params + 12 * layers * hidden * sequence_length


def with_utilisation(row, flop_per_token, peak_gflop_s=None):
    """Return `row` (a training row) with its model FLOP/s and MFU added.

    Adds `flop_per_token`, `model_gflop_s` (= `flop_per_token x
    steady_tok_per_s / 1e9`) and, when a peak is known, `peak_gflop_s` and
    `mfu` (= `model_gflop_s / peak_gflop_s`); else `mfu` is None.

    Example:
    ```python
    from kgpt2.bench.flops import with_utilisation

    row = with_utilisation({"steady_tok_per_s": 2.0}, flop_per_token=1e9)
    print(row["model_gflop_s"], row["mfu"])  # 2.0 None
    ```
    """
    model_gflop_s = flop_per_token * row["steady_tok_per_s"] / 1e9
    return {
        **row,
        "flop_per_token": flop_per_token,
        "model_gflop_s": model_gflop_s,
        "peak_gflop_s": peak_gflop_s,
        "mfu": model_gflop_s / peak_gflop_s if peak_gflop_s else None,
    }

"""`BenchReport`, what `kgpt2.bench.run` returns, and what can be read off it.

A report holds every measurement as a plain row (a dict of numbers and
names, the same in the JSON file); `summary` pools the rows of several
rounds into one per measurement. The `kgpt2 bench` command renders a report
as tables; this module only computes.
"""

import dataclasses
import json
import os

from kgpt2.atomic import atomic_writer
from kgpt2.errors import InputError
from kgpt2.errors import MissingFileError

# Below this, weights may stay in the CPU caches between tokens, and a
# memory-bandwidth ceiling would not apply (server L3 caches reach ~100 MB).
CACHE_RESIDENT_BYTES = 128e6


@dataclasses.dataclass(frozen=True)
class BenchReport:
    """Every figure of one `kgpt2.bench.run`, with what produced it.

    Attributes:
        settings: the checked settings (preset, batch sizes, samplers,
            impls, prompt length, new tokens, calls, dtype, train shape and
            steps, backends, rounds).
        machine: the machine and library versions (of the first backend
            measured): CPU, cores, load, memory bandwidth, versions.
        backends: per Keras backend, `{"machine", "model", "matmul_peak"}`
            (the model's preset, parameter count, shape, dtype and weight
            bytes; the matrix-multiply peak its library reached, in the
            training step's precision, at
            the training step's shapes, see `kgpt2.bench.peak`, or None
            without training).
        results: every measured row of every round, each with `what`
            ("generate" or "train"), `backend`, `impl` and `round`; training
            rows also carry model FLOP/s and MFU (see `kgpt2.bench.flops`).
        summary: one row per measurement, rounds pooled (see
            `kgpt2.bench.rounds`): what the tables and chart show.
        hf_env: with `compare_hf`, the HF peer's torch and transformers
            versions, the interpreter and script that ran it and (with
            training) PyTorch's float32 `matmul_peak`; else None.

    Example:
    ```python
    import json
    from kgpt2.bench.report import BenchReport

    # `kgpt2.bench.run` returns one; here, an empty report built from data.
    report = BenchReport(settings={"preset": "gpt2_tiny_random"}, machine={}, backends={},
                         results=[], summary=[])
    saved = json.dumps(report.to_dict())
    print(BenchReport(**json.loads(saved)) == report)  # True
    ```
    """

    settings: dict
    machine: dict
    backends: dict
    results: list
    summary: list
    hf_env: dict | None = None

    def to_dict(self):
        """Return the report as plain dicts and lists, ready for `json.dump`."""
        return dataclasses.asdict(self)

    def rows(self, what):
        """Return the summary rows of `what`: "generate" or "train"."""
        return [row for row in self.summary if row["what"] == what]


@dataclasses.dataclass(frozen=True)
class Ceiling:
    """Batch-1 generation against the memory-bandwidth ceiling.

    Batch-1 decoding reads every weight once per token, so a token cannot
    take less than (weight bytes / memory bandwidth) seconds.

    Attributes:
        bandwidth_gb_s: the best matrix-vector bandwidth any backend measured.
        weight_bytes, dtype: the model's weights.
        tok_per_s: the ceiling, or None when the weights are small enough to
            stay in the CPU caches (no bandwidth bound applies).
        shares: `(series, sampler, best_tok_per_s, fraction_of_ceiling)` per
            batch-1 generation row (empty without a ceiling).
    """

    bandwidth_gb_s: float
    weight_bytes: int
    dtype: str
    tok_per_s: float | None
    shares: tuple = ()


def series_name(row):
    """Name the (backend, impl) pair a row belongs to, e.g. "jax/kgpt2".

    Example:
    ```python
    from kgpt2.bench.report import series_name

    print(series_name({"backend": "jax", "impl": "kgpt2"}))  # jax/kgpt2
    ```
    """
    return f"{row['backend']}/{row['impl']}"


def batch_one_ceiling(report):
    """Return where batch-1 generation stands against the bandwidth ceiling.

    The bandwidth is the best any backend's run measured: it is the
    machine's, and a busy moment only lowers a measurement.

    Returns:
        A `Ceiling`, or None when the report has no batch-1 generation row
        or no bandwidth measurement.

    Example:
    ```python
    from kgpt2.bench.report import BenchReport, batch_one_ceiling

    report = BenchReport(
        settings={}, machine={}, results=[],
        backends={"jax": {"machine": {"matvec_bandwidth_gb_s": 35.0},
                          "model": {"weight_bytes": 500e6, "dtype": "float32"}}},
        summary=[{"what": "generate", "backend": "jax", "impl": "kgpt2",
                  "sampler": "greedy", "batch": 1, "best_tok_per_s": 35.0}])
    ceiling = batch_one_ceiling(report)
    print(ceiling.tok_per_s, ceiling.shares[0][3])  # 70.0 0.5
    ```
    """
    bandwidths = [part["machine"].get("matvec_bandwidth_gb_s") or 0
                  for part in report.backends.values()]
    rows = [row for row in report.rows("generate")
            if row["batch"] == 1 and row["backend"] in report.backends]
    if not rows or not max(bandwidths, default=0):
        return None
    bandwidth = max(bandwidths)
    model = next(iter(report.backends.values()))["model"]
    if model["weight_bytes"] < CACHE_RESIDENT_BYTES:
        return Ceiling(bandwidth, model["weight_bytes"], model["dtype"], None)
    ceiling = bandwidth * 1e9 / model["weight_bytes"]
    shares = tuple(
        (series_name(row), row["sampler"], row["best_tok_per_s"], row["best_tok_per_s"] / ceiling)
        for row in rows
    )
    return Ceiling(bandwidth, model["weight_bytes"], model["dtype"], ceiling, shares)


def check_output_path(path):
    """Fail now, not after minutes of measuring, if `path` cannot be written.

    Example:
    ```python
    from kgpt2.bench.report import check_output_path

    check_output_path("report.json")  # the current folder exists: fine
    ```
    """
    if path is None:
        return
    path = os.fspath(path)
    if os.path.isdir(path):
        raise InputError(f"Output path '{path}' is a directory; give a file name.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise MissingFileError(f"Cannot write '{path}': its folder '{folder}' does not exist.")


def write_json(report, path):
    """Write `report` (a `BenchReport`) to `path` as JSON, atomically.

    Example:
    ```python
    import json, tempfile
    from kgpt2.bench.report import BenchReport, write_json

    path = tempfile.mkdtemp() + "/report.json"
    write_json(BenchReport({}, {}, {}, [], []), path)
    print(json.load(open(path))["results"])  # []
    ```
    """
    with atomic_writer(path) as file:
        json.dump(report.to_dict(), file, indent=2)
        file.write("\n")
    return path

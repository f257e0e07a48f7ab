"""Combine the rows of several benchmark rounds into one summary row each.

On a shared machine the load changes from minute to minute, so measuring
backend A, then B, then the HF peer, once each, compares different
machines. `kgpt2 bench --rounds N` measures them in turn N times, each
round in fresh processes; the summary pools the steady calls (or steps) of
every round, so the "best" figures are each path's speed at its quietest
moments. The first call of round 0 stays "the first call"; the first calls
of later rounds are new processes that may reuse the persistent
compilation cache, and are kept as `later_first_call_s`.
"""

from kgpt2.bench.generation import generation_row
from kgpt2.bench.training import training_row

# The fields that say what a row measured (the rest are measurements).
GENERATION_KEY = ("backend", "impl", "sampler", "batch", "prompt_length", "new_tokens")
TRAINING_KEY = ("backend", "impl", "precision", "batch", "sequence_length")


def _key(row):
    fields = GENERATION_KEY if row["what"] == "generate" else TRAINING_KEY
    return (row["what"], *(row.get(field) for field in fields))


def combine_rounds(rows):
    """Return one summary row per measurement, pooling every round's calls.

    Rows carry `round` (0, 1, ...); rows without one count as round 0.
    A summary row has the fields of a single-round row, computed from the
    pooled seconds (so tokens/s is still tokens / seconds), plus `rounds`.

    Example:
    ```python
    from kgpt2.bench.generation import generation_row
    from kgpt2.bench.rounds import combine_rounds

    rows = [dict(generation_row([9.0, 2.0, 3.0], batch=1, new_tokens=4, backend="jax",
                                impl="kgpt2", sampler="greedy", prompt_length=4), round=r)
            for r in range(2)]
    rows[1]["call_s"] = [1.5, 1.0, 4.0]
    summary, = combine_rounds(rows)
    print(summary["first_call_s"], summary["later_first_call_s"], summary["best_call_s"])  # 9.0 [1.5] 1.0
    ```
    """
    groups = {}
    for row in rows:
        groups.setdefault(_key(row), []).append(row)
    summary = []
    for group in groups.values():
        group.sort(key=lambda row: row.get("round", 0))
        first = group[0]
        if first["what"] == "generate":
            seconds = [first["call_s"][0]] + [s for row in group for s in row["call_s"][1:]]
            fields = {field: first[field] for field in GENERATION_KEY if field not in ("batch", "new_tokens")}
            combined = generation_row(seconds, batch=first["batch"], new_tokens=first["new_tokens"], **fields)
            combined["later_first_call_s"] = [row["call_s"][0] for row in group[1:]]
        else:
            seconds = [first["step_s"][0]] + [
                s for row in group for s in row["step_s"][row["warmup_steps"]:]
            ]
            cpu_seconds = None
            if all("cpu_step_s" in row for row in group):
                cpu_seconds = [first["cpu_step_s"][0]] + [
                    s for row in group for s in row["cpu_step_s"][row["warmup_steps"]:]
                ]
            fields = {field: first.get(field) for field in TRAINING_KEY
                      if field not in ("batch", "sequence_length")}
            combined = training_row(seconds, warmup_steps=1, batch=first["batch"],
                                    sequence_length=first["sequence_length"],
                                    cpu_step_seconds=cpu_seconds, **fields)
        combined["rounds"] = len(group)
        summary.append(combined)
    return summary

"""Generation speed: first-call seconds and steady tokens/s of a generation path.

The protocol is the HF transformers peer script's (see `kgpt2.bench.settings`):
a prompt of `prompt_length` token ids built from "The quick brown fox",
`new_tokens` new tokens, no early stop. Call 0 of each (sampler, batch size)
is the first call, which includes compilation; the calls after it are steady.
Several paths ("impls") are measured call by call in turn, so that a noisy,
shared machine slows them alike and their ratio stays meaningful.
"""

import logging
import statistics
import time

import keras
import keras_hub
import numpy as np

from kgpt2 import samplers as kgpt2_samplers
from kgpt2.bench.settings import IMPLS
from kgpt2.bench.settings import PROMPT_TOKEN_IDS
from kgpt2.bench.settings import SAMPLER_OPTIONS
from kgpt2.bench.settings import check_choices
from kgpt2.checks import check_integer
from kgpt2.errors import InputError
from kgpt2.generation.token_ids import generate_token_ids
from kgpt2.training.preprocessing import detached_preprocessor

logger = logging.getLogger("kgpt2")


def prompt_token_ids(prompt_length):
    """Return the benchmark prompt: "The quick brown fox" ids, repeated or cut.

    Example:
    ```python
    from kgpt2.bench.generation import prompt_token_ids

    print(prompt_token_ids(6))  # [464, 2068, 7586, 21831, 464, 2068]
    ```
    """
    check_integer(None, "prompt_length", prompt_length, minimum=1)
    repeats = -(-prompt_length // len(PROMPT_TOKEN_IDS))
    return list(PROMPT_TOKEN_IDS * repeats)[:prompt_length]


def make_sampler(name, impl="kgpt2"):
    """Return a fresh sampler for `name`, with the benchmark's options.

    The kgpt2 path gets `kgpt2.samplers.get(name, ...)`; plain KerasHub gets
    KerasHub's own sampler class, so that it is measured as users run it.

    Example:
    ```python
    from kgpt2.bench.generation import make_sampler

    print(make_sampler("top_k").k)  # 5
    ```
    """
    check_choices("samplers", [name], list(SAMPLER_OPTIONS))
    if impl == "keras_hub":
        return keras_hub.samplers.deserialize({"class_name": name, "config": SAMPLER_OPTIONS[name]})
    return kgpt2_samplers.get(name, **SAMPLER_OPTIONS[name])


def _keras_hub_call(lm, sampler, token_ids, max_length):
    """Plain `GPT2CausalLM.generate` on ids, as KerasHub documents it."""
    batch_size, prompt_length = token_ids.shape
    padded = np.zeros((batch_size, max_length), "int32")
    padded[:, :prompt_length] = token_ids
    padding_mask = np.zeros((batch_size, max_length), bool)
    padding_mask[:, :prompt_length] = True
    inputs = {"token_ids": padded, "padding_mask": padding_mask}

    def call():
        # `generate` compiles for the sampler set by `compile`; setting it
        # per call is free once the function exists for this sampler.
        if lm.sampler is not sampler:
            lm.compile(sampler=sampler)
        with detached_preprocessor(lm):
            return lm.generate(inputs, stop_token_ids=None)["token_ids"]

    return call


def _kgpt2_call(lm, sampler, token_ids, max_length):
    def call():
        return generate_token_ids(lm, token_ids, max_length, sampler=sampler)

    return call


def generation_call(lm, impl, sampler, token_ids, max_length):
    """Return a no-argument function that runs one generation of `impl`.

    The function returns the (batch, max_length) token ids as numpy, so that
    timing it includes waiting for the result.

    Example:
    ```python
    import numpy as np, kgpt2
    from kgpt2.bench.generation import generation_call, make_sampler

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
    call = generation_call(lm, "keras_hub", make_sampler("greedy"),
                           np.array([[464, 2068]]), max_length=6)
    print(call().shape)  # (1, 6)
    ```
    """
    calls = {"kgpt2": _kgpt2_call, "keras_hub": _keras_hub_call}
    check_choices("impls", [impl], IMPLS)
    return calls[impl](lm, sampler, np.asarray(token_ids, "int32"), max_length)


def _timed(call):
    start = time.perf_counter()
    output = call()
    return time.perf_counter() - start, output


def bench_generation(
    lm,
    impls=("kgpt2",),
    samplers=("greedy",),
    batch_sizes=(1,),
    prompt_length=4,
    new_tokens=128,
    calls=3,
):
    """Measure generation speed of each impl, sampler and batch size.

    For each sampler and batch size, every impl makes its first call, then
    the impls take turns for the remaining `calls - 1` steady calls.

    Args:
        lm: a `GPT2CausalLM`.
        impls: generation paths, from `IMPLS`.
        samplers: sampler names, from `SAMPLER_OPTIONS`.
        batch_sizes: batch sizes to measure.
        prompt_length: prompt tokens (the 4 "The quick brown fox" ids,
            repeated or cut to this length).
        new_tokens: tokens generated per sequence (no early stop).
        calls: calls per measurement: the first call, then `calls - 1`
            steady ones (at least 1).

    One line per finished measurement goes to the "kgpt2" logger.

    Returns:
        A list of dicts, one per (sampler, batch size, impl), with every call's
        seconds (`call_s`), `first_call_s`, `steady_call_s` (median of the
        steady calls), `best_call_s` (fastest steady call, the HF peer
        script's statistic) and the matching tokens/s (`tokens` divided by
        those seconds), plus `first_over_steady`.

    Example:
    ```python
    import kgpt2
    from kgpt2.bench.generation import bench_generation

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
    rows = bench_generation(lm, impls=["keras_hub"], new_tokens=4, calls=2)
    print(rows[0]["steady_tok_per_s"] > 0)  # True
    ```
    """
    impls = check_choices("impls", impls, IMPLS)
    samplers = check_choices("samplers", samplers, list(SAMPLER_OPTIONS))
    check_integer(None, "calls", calls, minimum=2)
    check_integer(None, "new_tokens", new_tokens, minimum=1)
    prompt = prompt_token_ids(prompt_length)
    max_length = prompt_length + new_tokens
    model_max = lm.backbone.max_sequence_length
    if max_length > model_max:
        raise InputError(
            f"prompt_length + new_tokens = {max_length} is longer than the "
            f"model's {model_max} positions."
        )
    for batch_size in batch_sizes:
        check_integer(None, "each batch size", batch_size, minimum=1)

    rows = []
    for sampler_name in samplers:
        # One sampler object per impl for every batch size: both paths
        # compile once per sampler object and reuse it across shapes.
        sampler_of = {impl: make_sampler(sampler_name, impl) for impl in impls}
        for batch_size in batch_sizes:
            token_ids = np.array([prompt] * batch_size, "int32")
            functions = {
                impl: generation_call(lm, impl, sampler_of[impl], token_ids, max_length)
                for impl in impls
            }
            seconds = {impl: [] for impl in impls}
            for _ in range(calls):
                for impl in impls:
                    elapsed, output = _timed(functions[impl])
                    if output.shape != (batch_size, max_length):
                        raise RuntimeError(
                            f"{impl} returned shape {output.shape}, expected "
                            f"{(batch_size, max_length)}."
                        )
                    seconds[impl].append(elapsed)
            for impl in impls:
                rows.append(
                    generation_row(
                        seconds[impl],
                        impl=impl,
                        backend=keras.config.backend(),
                        sampler=sampler_name,
                        batch=batch_size,
                        prompt_length=prompt_length,
                        new_tokens=new_tokens,
                    )
                )
                row = rows[-1]
                logger.info(
                    "  generate %-10s %-9s %-6s batch %-3d first %7.2f s  steady %8.1f tok/s",
                    row["backend"], impl, sampler_name, batch_size, row["first_call_s"],
                    row["steady_tok_per_s"],
                )
    return rows


def generation_row(call_seconds, batch, new_tokens, **fields):
    """Summarise the seconds of one measurement's calls as a result row.

    Example:
    ```python
    from kgpt2.bench.generation import generation_row

    row = generation_row([3.0, 1.0, 2.0], batch=2, new_tokens=8, impl="kgpt2")
    print(row["steady_call_s"], row["steady_tok_per_s"])  # 1.5 10.666666666666666
    ```
    """
    tokens = batch * new_tokens
    steady = statistics.median(call_seconds[1:])
    best = min(call_seconds[1:])
    return {
        "what": "generate",
        **fields,
        "batch": batch,
        "new_tokens": new_tokens,
        "tokens": tokens,
        "call_s": list(call_seconds),
        "first_call_s": call_seconds[0],
        "steady_call_s": steady,
        "best_call_s": best,
        "first_tok_per_s": tokens / call_seconds[0],
        "steady_tok_per_s": tokens / steady,
        "best_tok_per_s": tokens / best,
        "first_over_steady": call_seconds[0] / steady,
    }

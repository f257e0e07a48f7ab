"""What the repetition options and the samplers cost, relative to plain greedy.

Runs `lm.generate` (the compiled KerasHub loop) on `gpt2_base_random` (the
exact 124M GPT-2 shape) with a 4-token prompt, for each sampler of
`--samplers` (greedy, top_k with k=5, top_p with p=0.9) plain and with
`repetition_penalty`, `no_repeat_ngram_size` and both. Every
variant is a separate `GPT2CausalLM` sharing one backbone, so each keeps its
own compiled generate function; after one warm-up call each, the variants
are timed in interleaved rounds (noise on a shared machine hits them alike)
and the median is reported.

    PYTHONPATH=$PWD python benchmarks/samplers_repetition.py
    PYTHONPATH=$PWD python benchmarks/samplers_repetition.py --samplers greedy top_k top_p
    PYTHONPATH=$PWD python benchmarks/samplers_repetition.py --batch-sizes 1 8 \\
        --new-tokens 64 128 --rounds 5 --json results.json
    KERAS_BACKEND=tensorflow PYTHONPATH=$PWD python benchmarks/samplers_repetition.py
"""

import argparse
import json
import statistics
import time

VARIANTS = {
    "greedy": {},
    "repetition_penalty=1.2": dict(repetition_penalty=1.2),
    "no_repeat_ngram_size=3": dict(no_repeat_ngram_size=3),
    "both": dict(repetition_penalty=1.2, no_repeat_ngram_size=3),
}
SAMPLER_OPTIONS = {"greedy": {}, "top_k": dict(k=5, seed=0), "top_p": dict(p=0.9, seed=0)}
PROMPT = "The quick brown fox"  # 4 GPT-2 tokens (plus the start token)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="gpt2_base_random")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--new-tokens", type=int, nargs="+", default=[64])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samplers", nargs="+", default=["greedy"],
                        choices=sorted(SAMPLER_OPTIONS))
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--processing-only", action="store_true",
                        help="only time the repetition math, not lm.generate")
    args = parser.parse_args(argv)

    import keras
    import keras_hub

    import kgpt2  # first: it picks the Keras backend (JAX unless set)

    base = kgpt2.load(args.preset)
    prompt_tokens = 1 + len(base.preprocessor.tokenizer(PROMPT))
    lms = {}
    # Plain greedy is the reference every row is compared with.
    for sampler in dict.fromkeys(["greedy", *args.samplers]):
        for variant, options in VARIANTS.items():
            lm = keras_hub.models.GPT2CausalLM(
                backbone=base.backbone, preprocessor=base.preprocessor
            )
            lm.compile(sampler=kgpt2.samplers.get(
                sampler, **SAMPLER_OPTIONS[sampler], **options))
            name = variant if sampler == "greedy" else f"{sampler}, {variant}"
            lms[name.replace(", greedy", "")] = lm
    print(f"{args.preset}, Keras backend {keras.config.backend()}, "
          f"prompt {prompt_tokens} tokens (start token included)")

    results = []
    for new_tokens in [] if args.processing_only else args.new_tokens:
        for batch_size in args.batch_sizes:
            prompts = [PROMPT] * batch_size
            max_length = prompt_tokens + new_tokens

            def generate(lm):
                start = time.perf_counter()
                lm.generate(prompts, max_length=max_length, stop_token_ids=None)
                return time.perf_counter() - start

            compile_seconds = {name: generate(lm) for name, lm in lms.items()}
            seconds = {name: [] for name in lms}
            names = list(lms)
            for round_index in range(args.rounds):
                # Rotate the order so no variant always runs first or last.
                shift = round_index % len(names)
                for name in names[shift:] + names[:shift]:
                    seconds[name].append(generate(lms[name]))
            plain = statistics.median(seconds["greedy"])
            for name in lms:
                median = statistics.median(seconds[name])
                row = dict(
                    variant=name, batch_size=batch_size, new_tokens=new_tokens,
                    tokens_per_second=batch_size * new_tokens / median,
                    seconds=median, relative_to_greedy=plain / median,
                    first_call_seconds=compile_seconds[name],
                    all_seconds=seconds[name],
                )
                results.append(row)
                print(f"batch {batch_size:>2}  +{new_tokens:<4} {name:<24} "
                      f"{row['tokens_per_second']:8.1f} tokens/s  "
                      f"x{row['relative_to_greedy']:.3f} of greedy  "
                      f"(first call {row['first_call_seconds']:.1f} s)")
    results += time_logits_processing(args.batch_sizes, prompt_tokens,
                                      args.new_tokens, base)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(dict(preset=args.preset, backend=keras.config.backend(),
                           prompt_tokens=prompt_tokens, results=results),
                      file, indent=1)
    return results


def _compile(function):
    """jit on JAX, XLA on TensorFlow: how the generate loop runs it."""
    import keras

    if keras.config.backend() == "tensorflow":
        import tensorflow as tf

        return tf.function(function, jit_compile=True)
    import jax

    return jax.jit(function)


def time_logits_processing(batch_sizes, prompt_tokens, new_tokens_list, lm,
                           calls=200):
    """Time the repetition math alone on one decode step's shapes.

    The end-to-end difference is within run-to-run noise on a shared CPU, so
    this isolates it: `process_logits` on (batch, vocabulary) logits and a
    (batch, max_length) token buffer, compiled, `calls` times.
    """
    import numpy as np
    from keras import ops

    import kgpt2

    vocabulary_size = lm.backbone.vocabulary_size
    rows = []
    for new_tokens in new_tokens_list:
        max_length = prompt_tokens + new_tokens
        for batch_size in batch_sizes:
            rng = np.random.default_rng(0)
            logits = ops.convert_to_tensor(
                rng.normal(size=(batch_size, vocabulary_size)).astype("float32"))
            token_ids = ops.convert_to_tensor(
                rng.integers(0, vocabulary_size, (batch_size, max_length)).astype("int32"))
            index = ops.convert_to_tensor(max_length - 1, "int32")
            for name, options in VARIANTS.items():
                if not options:
                    continue
                sampler = kgpt2.samplers.get("greedy", **options)
                process = _compile(sampler.process_logits)
                np.asarray(process(logits, token_ids, index))  # compile
                samples = []
                for _ in range(5):
                    start = time.perf_counter()
                    for _ in range(calls):
                        out = process(logits, token_ids, index)
                    np.asarray(out)
                    samples.append((time.perf_counter() - start) / calls)
                row = dict(variant=name, batch_size=batch_size,
                           new_tokens=new_tokens, processing_only=True,
                           milliseconds_per_token=1e3 * min(samples))
                rows.append(row)
                print(f"batch {batch_size:>2}  length {max_length:<4} {name:<24} "
                      f"logits processing alone: "
                      f"{row['milliseconds_per_token']:.3f} ms per decode step")
    return rows


if __name__ == "__main__":
    main()

"""Packing vs padding on the Tang poems: padding fraction and training speed.

Usage (from the repository root; the poems are not shipped, point at the
chinese-poetry `全唐诗` folder):

    PYTHONPATH=$PWD python benchmarks/data_packing.py PATH/TO/quan_tang_shi \
        [--sequence-length 128] [--batch-size 8] [--steps 20] [--rounds 3]

1. Padding: every poem through `kgpt2.data.poetry` (defaults: Tang files
   only, Simplified, lines joined with ""), once unpacked and run through
   the model's `GPT2CausalLMPreprocessor` exactly as `fit` would, once
   packed. `kgpt2.data.token_stats` counts the padding positions. Tokens
   lost to truncation (poems longer than the sequence) are counted too.
2. Speed: `gpt2_tiny_random` fits `--steps` batches per epoch of each
   pipeline, two epochs per fit, alternating unpacked/packed for
   `--rounds` rounds on one model (one JAX compile: same shapes). The first
   epoch of each fit warms caches; the second is timed. Throughput counts
   only real (non-padding) target tokens, i.e. what the loss learns from;
   it is given for the median and for the fastest timed epoch. Both
   pipelines run the same batch shape, so at equal step time the ratio is
   the ratio of real targets per batch.
"""

import argparse
import json
import statistics
import time

import kgpt2


def padding_report(path, sequence_length, preprocessor):
    from kgpt2.data.packing import graph_tokenizer
    from kgpt2.data.poetry import read_poems

    tokenizer = preprocessor.tokenizer
    tokenize = graph_tokenizer(tokenizer)  # The ids fit sees (see its docstring).
    texts = read_poems(path)
    lengths = []
    for start in range(0, len(texts), 512):
        lengths += tokenize(texts[start:start + 512]).row_lengths().numpy().tolist()
    # The preprocessor keeps [start] + at most sequence_length - 1 tokens + [end].
    kept = sum(min(n, sequence_length - 1) for n in lengths)
    unpacked = kgpt2.data.token_stats(
        kgpt2.data.poetry(path, batch_size=256, shuffle=False, cache=False), preprocessor
    )
    packed = kgpt2.data.token_stats(
        kgpt2.data.poetry(path, batch_size=256, shuffle=False, cache=False, pack=True,
                          sequence_length=sequence_length, tokenizer=tokenizer)
    )
    stream = sum(lengths) + len(lengths)  # one <|endoftext|> before each poem
    return {
        "poems": len(texts),
        "poem_tokens": sum(lengths),
        "mean_poem_tokens": sum(lengths) / len(lengths),
        "poems_longer_than_window": sum(n > sequence_length - 1 for n in lengths),
        "unpacked": {**unpacked, "truncated_fraction": 1 - kept / sum(lengths)},
        "packed": {**packed, "dropped_tail_tokens": stream - packed["sequences"] * (sequence_length + 1)},
    }


def speed_report(path, sequence_length, batch_size, steps, rounds):
    import keras

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=sequence_length)
    lm.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=["accuracy"],
    )
    preprocessor = lm.preprocessor
    pipelines = {
        "unpacked": kgpt2.data.poetry(path, batch_size=batch_size, take=steps),
        "packed": kgpt2.data.poetry(path, batch_size=batch_size, take=steps, pack=True,
                                    sequence_length=sequence_length, tokenizer=preprocessor.tokenizer),
    }
    targets = {
        name: kgpt2.data.token_stats(data, preprocessor)["targets"]
        for name, data in pipelines.items()
    }

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)

    seconds = {name: [] for name in pipelines}
    for _ in range(rounds):
        for name, data in pipelines.items():
            timer = EpochTimer()
            lm.preprocessor = None if kgpt2.data.is_preprocessed(data) else preprocessor
            lm.fit(data, epochs=2, verbose=0, callbacks=[timer])
            seconds[name].append(timer.seconds[1])
            print(f"  {name}: epochs took {timer.seconds[0]:.1f} s, {timer.seconds[1]:.1f} s "
                  f"({targets[name] / timer.seconds[1]:.0f} real tokens/s)", flush=True)
    lm.preprocessor = preprocessor
    report = {}
    for name in pipelines:
        median = statistics.median(seconds[name])
        report[name] = {
            "target_tokens_per_epoch": targets[name],
            "epoch_seconds": seconds[name],
            "real_tokens_per_second": targets[name] / median,
            # On a shared machine the fastest epoch is the least disturbed.
            "best_real_tokens_per_second": targets[name] / min(seconds[name]),
        }
    for key in ("real_tokens_per_second", "best_real_tokens_per_second"):
        report[f"speedup_{key}"] = report["packed"][key] / report["unpacked"][key]
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("poems", help="the chinese-poetry 全唐诗 folder (or any poetry() path)")
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-padding", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    results = {"sequence_length": args.sequence_length}
    if not args.skip_padding:
        lm = kgpt2.load("gpt2_tiny_random", sequence_length=args.sequence_length)
        results["padding"] = padding_report(args.poems, args.sequence_length, lm.preprocessor)
        print(json.dumps(results, indent=2, ensure_ascii=False), flush=True)
    if not args.skip_speed:
        results["speed"] = speed_report(
            args.poems, args.sequence_length, args.batch_size, args.steps, args.rounds
        )
        results["speed"]["batch_size"], results["speed"]["steps"] = args.batch_size, args.steps
        print(json.dumps(results["speed"], indent=2), flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2, ensure_ascii=False)


if __name__ == "__main__":
    main()

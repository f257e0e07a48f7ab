#!/usr/bin/env python3
"""Does the demo's fine-tuned model write in the poems' form? Over seeds.

Runs `kgpt2.demo.run` with the given settings, loads the run it kept, and
reports: held-out perplexity before/after, the unigram perplexity of the
training poems' token stream (what a model that ignores its input reaches)
and its bigram perplexity (what reading the previous token alone could
reach), how many token types the stream has, how much the next-token
distribution depends on the input (total variation distance between two
different poem prefixes, 0 = input ignored), and over
`--seeds` seeds x 8 samples per sampler the share of complete lines of 5 or
7 characters (`kgpt2.demo.poem_form_share`) and of CJK characters.

Run (from the repository root):
  python benchmarks/demo_form.py --steps 100 --learning-rate 5e-3
  python benchmarks/demo_form.py --steps 300 --learning-rate 5e-3 --seeds 2
"""

import argparse
import collections
import json
import math
import tempfile
import time


def stream_perplexities(lm):
    """Unigram and bigram perplexity of the training poems' token stream.

    The unigram figure is what a model that ignores its input reaches; the
    bigram figure (plug-in estimate on the same stream, so optimistic) is
    what a model that reads only the previous token could reach.
    """
    from kgpt2.data import sample_poems_path
    from kgpt2.data.packing import graph_tokenizer
    from kgpt2.data.poetry import read_poems

    rows = graph_tokenizer(lm.preprocessor.tokenizer)(read_poems(sample_poems_path())).to_list()
    stream = [token for row in rows for token in [50256, *row]]
    counts = collections.Counter(stream)
    pairs = collections.Counter(zip(stream, stream[1:]))
    unigram = -sum(c / len(stream) * math.log(c / len(stream)) for c in counts.values())
    bigram = -sum(c / (len(stream) - 1) * math.log(c / counts[a]) for (a, _), c in pairs.items())
    return math.exp(unigram), math.exp(bigram), len(counts)


def input_dependence(lm):
    """Total variation distance of the next-token odds after two prefixes."""
    import keras
    import numpy as np

    odds = []
    for text in ("春眠不觉晓，处处", "床前明月光，疑是"):
        ids = np.array([[50256, *lm.preprocessor.tokenizer(text)]], "int32")
        logits = lm({"token_ids": ids, "padding_mask": np.ones_like(ids, bool)})
        odds.append(np.asarray(keras.ops.softmax(logits[0, -1]), "float64"))
    return 0.5 * float(np.abs(odds[0] - odds[1]).sum())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--learning-rate", type=float, default=5e-3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--sequence-length", type=int, default=48)
    parser.add_argument("--seeds", type=int, default=2)
    arguments = parser.parse_args()

    import kgpt2
    from kgpt2.demo import cjk_share
    from kgpt2.demo import poem_form_share
    from kgpt2.demo import run

    start = time.process_time()
    result = run(
        steps=arguments.steps, learning_rate=arguments.learning_rate,
        batch_size=arguments.batch_size, sequence_length=arguments.sequence_length,
        run_dir=tempfile.mkdtemp() + "/demo", printer=lambda *_: None,
    )
    cpu_seconds = time.process_time() - start
    lm = kgpt2.load(str(result["run_dir"]), sequence_length=arguments.sequence_length)
    report = dict(
        vars(arguments), cpu_seconds=round(cpu_seconds, 1),
        perplexity={k: round(v, 1) for k, v in result["perplexity"].items()},
        **dict(zip(("unigram_perplexity", "bigram_perplexity", "token_types"),
                   (round(v, 1) for v in stream_perplexities(lm)))),
        input_dependence=round(input_dependence(lm), 4),
    )
    for name, options in [("top_k", dict(k=10)), ("top_p", dict(p=0.8))]:
        texts = []
        for seed in range(arguments.seeds):
            sampler = kgpt2.samplers.get(name, seed=seed, valid_utf8=True, **options)
            texts += kgpt2.generate(
                lm, "春眠不觉晓", sampler=sampler, max_length=arguments.sequence_length,
                nsamples=8, batch_size=8, stop_token_ids=None, truncate="<|endoftext|>",
            )
        report[name] = dict(
            form=round(poem_form_share(texts), 2),
            cjk=round(sum(map(cjk_share, texts)) / len(texts), 2),
            replacement_characters=sum("\ufffd" in text for text in texts),
            first=texts[0],
        )
    print(json.dumps(report, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()

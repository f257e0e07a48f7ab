#!/usr/bin/env python3
"""What loading a model in a lower precision does to its outputs.

`kgpt2.load(..., dtype="bfloat16")` (and `kgpt2 bench --dtype bfloat16`)
halve the bytes read per token, which is what bounds decoding speed on a
CPU; but they change the numbers. This script measures by how much, on the
same weights: the float32 model, optionally fine-tuned first on the Tang
poems shipped with kgpt2 (so its predictions mean something; a randomly
initialised model's next-token distributions are nearly flat, the hardest
case for agreement), against a copy in the lower precision.

- Teacher-forced on held-out poems: how often both pick the same most likely
  next token, the mean KL divergence float32 -> lower, and the mean absolute
  difference of the log-probability given to the true next token.
- Greedy generation from each poem's first tokens: the share of generated
  tokens that are equal, and how far the two continuations go before they
  first differ.

Run (from the repository root):
  PYTHONPATH=$PWD python benchmarks/precision_effect.py --preset gpt2_tiny_random --train-steps 120
  PYTHONPATH=$PWD python benchmarks/precision_effect.py --preset gpt2_base_random
"""

import argparse
import json
import sys
import tempfile


def held_out_tokens(lm, count, length, skip):
    """`count` rows of `length` token ids from the shipped poems after the first `skip`."""
    import numpy as np

    from kgpt2.data import sample_poems_path
    from kgpt2.data.poetry import read_poems

    tokenizer = lm.preprocessor.tokenizer
    ids = []
    for poem in read_poems(sample_poems_path(), to_simplified=True)[skip:]:
        ids.extend(np.asarray(tokenizer(poem)).tolist())
    needed = count * length
    if len(ids) < needed:
        raise ValueError(f"The held-out poems give {len(ids)} tokens, fewer than {needed}.")
    return np.asarray(ids[:needed], "int32").reshape(count, length)


def teacher_forced(full, low, tokens):
    import numpy as np
    from keras import ops

    def log_probs(lm):
        logits = lm.backbone.token_embedding(
            lm.backbone({"token_ids": tokens, "padding_mask": np.ones_like(tokens)}), reverse=True)
        return np.asarray(ops.log_softmax(ops.cast(logits, "float32"), axis=-1), "float64")[:, :-1]

    p, q = log_probs(full), log_probs(low)
    targets = tokens[:, 1:, None]
    return {
        "top1_agreement": float(np.mean(p.argmax(-1) == q.argmax(-1))),
        "mean_kl": float(np.mean(np.sum(np.exp(p) * (p - q), axis=-1))),
        "mean_abs_target_logprob_diff": float(np.mean(np.abs(
            np.take_along_axis(p, targets, -1) - np.take_along_axis(q, targets, -1)))),
        "positions": int(p.shape[0] * p.shape[1]),
    }


def greedy(full, low, tokens, prompt_length, new_tokens):
    import numpy as np

    from kgpt2.generation.token_ids import generate_token_ids

    prompts = tokens[:, :prompt_length]
    length = prompt_length + new_tokens
    a = generate_token_ids(full, prompts, length, sampler="greedy")[:, prompt_length:]
    b = generate_token_ids(low, prompts, length, sampler="greedy")[:, prompt_length:]
    same = a == b
    first_difference = np.where(same.all(1), new_tokens, np.argmin(same, axis=1))
    return {
        "token_agreement": float(same.mean()),
        "identical_continuations": int(same.all(1).sum()),
        "mean_tokens_before_first_difference": float(first_difference.mean()),
        "prompts": int(len(prompts)),
        "new_tokens": new_tokens,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="gpt2_base_random")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16"])
    parser.add_argument("--train-steps", type=int, default=0,
                        help="first fine-tune on the shipped poems, as `kgpt2 demo` does")
    parser.add_argument("--held-out", type=int, default=16, help="rows of held-out text")
    parser.add_argument("--length", type=int, default=64, help="tokens per row")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    import kgpt2
    import kgpt2.demo

    lm = kgpt2.load(args.preset, sequence_length=args.length)
    # Training (if any) sees the first 300 of the 400 shipped poems; the
    # measured rows come from the other 100, so they are unseen text.
    skip = 300
    if args.train_steps:
        train = kgpt2.data.poetry(
            kgpt2.data.sample_poems_path(), to_simplified=True, batch_size=8, pack=True,
            sequence_length=args.length, tokenizer=lm.preprocessor.tokenizer, limit=skip)
        with tempfile.TemporaryDirectory() as checkpoints:
            kgpt2.finetune(lm, train.repeat(), steps=args.train_steps, learning_rate=2e-3,
                           checkpoint_dir=checkpoints, run_name="precision", save_every=args.train_steps,
                           print_every=max(1, args.train_steps // 4), restore_from="fresh")
    low = kgpt2.presets.with_dtype(lm, args.dtype)
    tokens = held_out_tokens(lm, args.held_out, args.length, skip)
    result = {
        "preset": args.preset,
        "train_steps": args.train_steps,
        "dtype": args.dtype,
        "teacher_forced": teacher_forced(lm, low, tokens),
        "greedy": greedy(lm, low, tokens, prompt_length=4, new_tokens=args.new_tokens),
    }
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())

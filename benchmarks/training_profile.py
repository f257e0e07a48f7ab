#!/usr/bin/env python3
"""Where a JAX training step's time goes: the step cut into timed sub-steps.

On `gpt2_base_random` at batch x length tokens (default 8 x 128), float32
(or `--mixed-precision`), this times, each compiled on its own by XLA and
best of `--repeats`:

- `train_on_batch`: the whole Keras step (forward, backward, Adam, metrics);
- `forward logits`: the model's forward pass to the 50257-way logits;
- `forward + loss`: the same plus the softmax cross-entropy;
- `loss + gradients`: `value_and_grad` of that loss (no optimizer);
- `Adam update`: the optimizer's update of every weight from given gradients;
- `head forward + backward`: the logits product and cross-entropy alone,
  with their gradients (hidden states and tied embedding): what the
  50257-way output costs in a step;
- `head products`: the three matrix products of the head alone (forward
  logits, hidden-state gradient, embedding gradient);

and prints each with its model FLOP/s where that is meaningful, against
the float32 matmul peak `kgpt2.bench.peak` measures at the step's shapes.

With `--ab precision`, it instead times `train_on_batch` compiled for
float32 and for mixed_bfloat16 in turn, `--rounds` times, in this one
process (so both see the same load), on any backend
(`KERAS_BACKEND=tensorflow` measures TensorFlow's).

Run (from the repository root; JAX is the default backend):
  PYTHONPATH=$PWD python benchmarks/training_profile.py
  PYTHONPATH=$PWD python benchmarks/training_profile.py --mixed-precision
  KERAS_BACKEND=tensorflow PYTHONPATH=$PWD python benchmarks/training_profile.py --ab precision
"""

import argparse
import time

import jax
import jax.numpy as jnp
import keras

import kgpt2
from kgpt2.bench.peak import matmul_peak
from kgpt2.bench.peak import training_shapes
from kgpt2.bench.training import training_batch
from kgpt2.training.compiling import compile as compile_lm
from kgpt2.training.preprocessing import detached_preprocessor


def best_seconds(run, repeats):
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(run())
        times.append(time.perf_counter() - start)
    return min(times)


def ab(lm, x, y, sample_weight, what, rounds, repeats, tokens):
    """Time `train_on_batch` under two compilations (`what` differs) in turn, `rounds` times."""
    variants = {policy: (lambda policy=policy: compile_lm(
        lm, learning_rate=5e-5, steps=1000, mixed_precision=policy))
        for policy in ("float32", "mixed_bfloat16")}
    seconds = {name: [] for name in variants}
    with detached_preprocessor(lm):
        for _ in range(rounds):
            for name, compile_variant in variants.items():
                compile_variant()
                seconds[name].append(best_seconds(
                    lambda: lm.train_on_batch(x, y, sample_weight=sample_weight), repeats))
                print(f"{name:38s} {seconds[name][-1]:7.3f} s/step", flush=True)
    print(f"{keras.config.backend()}: best of {rounds} rounds x {repeats} steps")
    for name, values in seconds.items():
        print(f"{name:38s} best {min(values):7.3f} s/step = {tokens / min(values):6.1f} tok/s")
    first, second = (min(values) for values in seconds.values())
    print(f"second / first tokens/s: {first / second:.2f}x")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", default="8,128", help="BATCH,LENGTH")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mixed-precision", action="store_true")
    parser.add_argument("--ab", choices=["precision"], default=None)
    parser.add_argument("--rounds", type=int, default=2, help="with --ab")
    args = parser.parse_args(argv)
    batch, length = (int(n) for n in args.train.split(","))
    tokens = batch * length

    lm = kgpt2.load("gpt2_base_random", sequence_length=length)
    compile_lm(lm, learning_rate=5e-5, steps=1000, mixed_precision=args.mixed_precision)
    x, y, sample_weight = training_batch(batch, length, lm.backbone.vocabulary_size)
    if args.ab:
        return ab(lm, x, y, sample_weight, args.ab, args.rounds, args.repeats, tokens)
    assert keras.config.backend() == "jax", "the profile needs the JAX backend"
    rows = []
    with detached_preprocessor(lm):
        rows.append(("train_on_batch", best_seconds(
            lambda: lm.train_on_batch(x, y, sample_weight=sample_weight), args.repeats), 3))

    trainable = [v.value for v in lm.trainable_variables]
    non_trainable = [v.value for v in lm.non_trainable_variables]
    loss_fn = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction="mean_with_sample_weight")

    def logits(trainable, x):
        return lm.stateless_call(trainable, non_trainable, x)[0]

    def loss(trainable, x, y, w):
        return loss_fn(y, logits(trainable, x), w)

    forward = jax.jit(logits)
    forward_loss = jax.jit(loss)
    gradients = jax.jit(jax.value_and_grad(loss))
    rows.append(("forward logits", best_seconds(lambda: forward(trainable, x), args.repeats), 1))
    rows.append(("forward + loss", best_seconds(
        lambda: forward_loss(trainable, x, y, sample_weight), args.repeats), 1))
    rows.append(("loss + gradients", best_seconds(
        lambda: gradients(trainable, x, y, sample_weight), args.repeats), 3))

    optimizer = lm.optimizer
    optimizer_variables = [v.value for v in optimizer.variables]
    grads = [jnp.ones_like(t) * 1e-3 for t in trainable]
    apply = jax.jit(optimizer.stateless_apply)
    rows.append(("Adam update", best_seconds(
        lambda: apply(optimizer_variables, grads, trainable), args.repeats), 0))

    embedding = lm.backbone.token_embedding.embeddings.value
    hidden = jax.random.normal(jax.random.key(0), (batch, length, embedding.shape[1]))
    dtype = lm.backbone.token_embedding.compute_dtype

    def head_loss(hidden, embedding):
        head = jnp.einsum("btd,vd->btv", hidden.astype(dtype), embedding.astype(dtype))
        return loss_fn(y, head, sample_weight)

    head = jax.jit(jax.value_and_grad(head_loss, argnums=(0, 1)))
    rows.append(("head forward + backward", best_seconds(
        lambda: head(hidden, embedding), args.repeats), None))
    flat = hidden.reshape(tokens, -1).astype(dtype)
    table = embedding.astype(dtype)

    @jax.jit
    def head_products(flat, table):
        out = flat @ table.T
        return out, out @ table, out.T @ flat

    rows.append(("head products", best_seconds(
        lambda: head_products(flat, table), args.repeats), None))

    model = lm.backbone
    params = model.count_params()
    head_flop = 3 * 2 * tokens * embedding.shape[0] * embedding.shape[1]
    shapes = training_shapes(tokens, model.hidden_dim, model.intermediate_dim,
                             model.vocabulary_size, backward=False)
    peak = matmul_peak("jax", "float32", shapes, repeats=2)["peak_gflop_s"]
    print(f"gpt2_base_random {batch} x {length}, "
          f"{'mixed_bfloat16' if args.mixed_precision else 'float32'}, jax {jax.__version__}; "
          f"XLA float32 matmul peak at the step's shapes {peak:.1f} GFLOP/s")
    print(f"{'part':26s} {'seconds':>8s} {'share':>6s} {'GFLOP/s':>8s} {'of peak':>8s}")
    step = rows[0][1]
    for name, seconds, passes in rows:
        flop = head_flop if passes is None else 2 * passes * params * tokens
        rate = f"{flop / seconds / 1e9:8.1f} {100 * flop / seconds / 1e9 / peak:7.0f}%" if flop else ""
        print(f"{name:26s} {seconds:8.3f} {100 * seconds / step:5.0f}% {rate}")


if __name__ == "__main__":
    main()

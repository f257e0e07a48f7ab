"""Mixed-precision products on JAX/CPU accumulate in float32 (kgpt2.training.float32_accumulation).

The speed of it is measured by `kgpt2 bench --mixed-precision`; these
tests check what the rewrite does to the computation: which products it
changes, that values and structure stay those of the original function,
and that `kgpt2.compile` puts it into a mixed-precision training step.
"""

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest

import kgpt2
from kgpt2.keras_backend import cpu_bfloat16_instructions
from kgpt2.training.compiling import accumulates_in_float32
from kgpt2.training.float32_accumulation import accumulate_in_float32

pytestmark = pytest.mark.skipif(keras.config.backend() != "jax", reason="a JAX transformation")

# XLA runs bfloat16-in, float32-out products on CPUs with bfloat16
# instructions; elsewhere only the rewritten programs' structure is checked,
# and kgpt2.compile must leave Keras's step alone.
RUNS_HERE = bool(cpu_bfloat16_instructions())


def product_dtypes(function, *args):
    """`(input dtypes, result dtype)` of every `dot_general` `function` runs, nested calls included."""
    found = []

    def walk(jaxpr):
        for equation in jaxpr.eqns:
            if equation.primitive.name == "dot_general":
                found.append((tuple(str(v.aval.dtype) for v in equation.invars),
                              str(equation.outvars[0].aval.dtype)))
            for param in equation.params.values():
                inner = getattr(param, "jaxpr", param)
                if hasattr(inner, "eqns"):
                    walk(inner)

    walk(jax.make_jaxpr(function)(*args).jaxpr)
    return found


def loss(weights, x):
    hidden = jax.nn.gelu(x @ weights["w1"])
    return jnp.mean((hidden @ weights["w2"]).astype(jnp.float32) ** 2)


def test_half_precision_weight_products_ask_for_float32_results():
    rng = np.random.default_rng(0)
    weights = {name: jnp.asarray(rng.normal(size=shape), jnp.bfloat16)
               for name, shape in (("w1", (16, 32)), ("w2", (32, 8)))}
    x = jnp.asarray(rng.normal(size=(4, 16)), jnp.bfloat16)
    step = jax.value_and_grad(loss)

    before = product_dtypes(step, weights, x)
    after = product_dtypes(accumulate_in_float32(step), weights, x)
    # Forward (2) and backward (3: w2's gradient, the hidden gradient, w1's).
    assert before == [(("bfloat16", "bfloat16"), "bfloat16")] * 5
    assert after == [(("bfloat16", "bfloat16"), "float32")] * 5
    if not RUNS_HERE:
        return
    value, gradients = jax.jit(accumulate_in_float32(step))(weights, x)
    expected_value, expected_gradients = step(weights, x)
    assert value.dtype == expected_value.dtype
    np.testing.assert_allclose(float(value), float(expected_value), rtol=2e-2)
    assert jax.tree_util.tree_structure(gradients) == jax.tree_util.tree_structure(expected_gradients)
    for name in weights:
        assert gradients[name].dtype == jnp.bfloat16
        np.testing.assert_allclose(np.asarray(gradients[name], "float32"),
                                   np.asarray(expected_gradients[name], "float32"),
                                   rtol=5e-2, atol=5e-2)


def test_products_inside_nested_jit_calls_are_rewritten_and_others_kept():
    inner = jax.jit(lambda a, b: a @ b)
    a16 = jnp.ones((4, 8), jnp.bfloat16)
    a32 = jnp.ones((4, 8), jnp.float32)
    batched = jnp.ones((2, 4, 8), jnp.bfloat16)

    def function(a16, a32, batched):
        return (inner(a16, a16.T), a32 @ a32.T,
                jnp.einsum("bij,bkj->bik", batched, batched))

    assert product_dtypes(accumulate_in_float32(function), a16, a32, batched) == [
        (("bfloat16", "bfloat16"), "float32"),  # inside `inner`, inlined
        (("float32", "float32"), "float32"),  # float32: unchanged
        # Batched (attention's): XLA's CPU kernel lacks this form, kept.
        (("bfloat16", "bfloat16"), "bfloat16"),
    ]
    if not RUNS_HERE:
        return
    outputs = jax.jit(accumulate_in_float32(function))(a16, a32, batched)
    assert [o.dtype for o in outputs] == [jnp.bfloat16, jnp.float32, jnp.bfloat16]
    assert float(outputs[0][0, 0]) == 8.0


def test_only_mixed_bfloat16_on_a_jax_cpu_with_bfloat16_instructions_accumulates_in_float32():
    amx = dict(bfloat16_instructions=("amx_bf16",))
    assert accumulates_in_float32("mixed_bfloat16", backend="jax", platform="cpu", **amx)
    assert not accumulates_in_float32("mixed_bfloat16", backend="jax", platform="cpu",
                                      bfloat16_instructions=())
    assert not accumulates_in_float32("mixed_float16", backend="jax", platform="cpu", **amx)
    assert not accumulates_in_float32("float32", backend="jax", platform="cpu", **amx)
    assert not accumulates_in_float32("mixed_bfloat16", backend="jax", platform="gpu", **amx)
    assert not accumulates_in_float32("mixed_bfloat16", backend="tensorflow", platform="cpu", **amx)


@pytest.mark.slow
def test_compile_puts_float32_accumulation_into_the_mixed_precision_step():
    from kgpt2.bench.training import training_batch

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=16)
    lm.preprocessor = None  # the step is fed token ids
    x, y, sample_weight = training_batch(2, 16, lm.backbone.vocabulary_size)

    def step_products():
        lm.make_train_function(force=True)
        state = ([v.value for v in lm.trainable_variables],
                 [v.value for v in lm.non_trainable_variables],
                 [v.value for v in lm.optimizer.variables],
                 [v.value for v in lm.metrics_variables])
        return product_dtypes(lm.train_step, state, (x, y, sample_weight))

    kgpt2.compile(lm, steps=2, mixed_precision=True)
    lm.train_on_batch(x, y, sample_weight=sample_weight)  # builds the optimizer; runs the step
    mixed = step_products()
    unbatched_half = [p for p in mixed if p[0] == ("bfloat16", "bfloat16") and p[1] == "float32"]
    if RUNS_HERE:
        # 2 layers x (q, k, v, output, two feed-forward) + the logits, with gradients.
        assert len(unbatched_half) >= 3 * (2 * 6 + 1), mixed
    else:
        assert not unbatched_half, mixed
    assert all(result == "float32" for inputs, result in mixed if inputs != ("bfloat16", "bfloat16"))

    kgpt2.compile(lm, steps=2)  # back to float32: Keras's own step again
    lm.train_on_batch(x, y, sample_weight=sample_weight)
    assert all(p == (("float32", "float32"), "float32") for p in step_products())

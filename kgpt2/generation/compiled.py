"""Compile `generate_step` once per model, sampler and bucketed shape.

Like `CausalLM.make_generate_function`, but shared by every call with the
same `(lm, sampler)`: on JAX it is one `jax.jit` whose weights and sampler
state are arguments (never baked-in constants, so training the model or
reseeding the sampler needs no recompile); on TensorFlow one `tf.function`
per prefill length, XLA-compiled when `lm.jit_compile` says so; on other
backends it runs eagerly.

Example:
```python
import keras_hub, numpy as np, kgpt2
from kgpt2.generation.compiled import compiled_generate_function
from kgpt2.generation.bucketed_prompts import bucket_prompts

lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
run = compiled_generate_function(lm, keras_hub.samplers.GreedySampler())
bucketed = bucket_prompts(np.array([[464, 2068]]), np.array([2]), max_length=8)
print(bucketed.generated(run(bucketed)).shape)  # (1, 8)
```
"""

import contextlib
import itertools
import weakref

import keras

from kgpt2.compilation_cache import enable_compilation_cache
from kgpt2.generation.generate_step import generate_step

# lm -> {(sampler, dtype policy name): function}; weak so that dropping a
# model frees its programs.
_FUNCTIONS = weakref.WeakKeyDictionary()


def _jax_function(lm_ref, sampler):
    import jax

    # The name shows up in JAX's compile logs and monitoring events.
    def kgpt2_generate(state, prompt, mask, offset, index, prefill_length, stop_token_ids):
        lm = lm_ref()
        sampler_values, trainable_values, non_trainable_values = state
        mapping = itertools.chain(
            zip(sampler.variables, sampler_values),
            zip(lm.trainable_variables, trainable_values),
            zip(lm.non_trainable_variables, non_trainable_values),
        )
        with keras.StatelessScope(state_mapping=mapping) as scope:
            output = generate_step(
                lm, sampler, prompt, mask, offset, index, prefill_length, stop_token_ids
            )
        new_sampler_values = []
        for variable in sampler.variables:
            value = scope.get_current_value(variable)
            new_sampler_values.append(variable.value if value is None else value)
        return output, new_sampler_values

    compiled = jax.jit(
        kgpt2_generate, static_argnames=("prefill_length", "stop_token_ids")
    )

    def run(bucketed, stop_token_ids=None):
        lm = lm_ref()
        state = (
            [v.value for v in sampler.variables],
            [v.value for v in lm.trainable_variables],
            [v.value for v in lm.non_trainable_variables],
        )
        output, sampler_values = compiled(
            state,
            bucketed.prompt,
            bucketed.mask,
            bucketed.offset,
            bucketed.index,
            prefill_length=bucketed.prefill_length,
            stop_token_ids=stop_token_ids,
        )
        for variable, value in zip(sampler.variables, sampler_values):
            variable.assign(value)
        return output

    return run


def _tensorflow_function(lm_ref, sampler):
    import tensorflow as tf

    functions = {}

    def run(bucketed, stop_token_ids=None):
        key = (bucketed.prefill_length, stop_token_ids)
        if key not in functions:

            def kgpt2_generate(prompt, mask, offset, index):
                return generate_step(
                    lm_ref(), sampler, prompt, mask, offset, index,
                    bucketed.prefill_length, stop_token_ids,
                )

            # As KerasHub does: the model's setting, so that seeded samples
            # match `lm.generate` (TensorFlow's random streams differ with and
            # without XLA). `lm.jit_compile` resolves to False for a
            # GPT2CausalLM because its tokenizer layer cannot be compiled.
            jit_compile = getattr(lm_ref(), "jit_compile", True)
            functions[key] = tf.function(kgpt2_generate, jit_compile=jit_compile)
        return functions[key](
            bucketed.prompt, bucketed.mask, tf.constant(bucketed.offset), tf.constant(bucketed.index)
        )

    return run


def _eager_function(lm_ref, sampler):
    def run(bucketed, stop_token_ids=None):
        if keras.config.backend() == "torch":
            import torch

            context = torch.no_grad()
        else:
            context = contextlib.nullcontext()
        with context:
            return generate_step(
                lm_ref(), sampler, bucketed.prompt, bucketed.mask, bucketed.offset,
                bucketed.index, bucketed.prefill_length, stop_token_ids,
            )

    return run


def compiled_generate_function(lm, sampler):
    """Return `run(bucketed, stop_token_ids=None)` for `lm` and `sampler`, cached.

    `run` generates into a `BucketedPrompts` and returns the `(batch, bucket)`
    output; shapes seen before (same batch size, bucket and prefill length)
    reuse their compiled program.
    """
    functions = _FUNCTIONS.setdefault(lm, {})
    # A program traced under one dtype policy keeps it: `set_precision`
    # after a mixed-precision fine-tune must get a new one.
    key = (sampler, lm.dtype_policy.name)
    if key not in functions:
        backend = keras.config.backend()
        if backend == "jax" and not lm.run_eagerly:
            enable_compilation_cache()
            build = _jax_function
        elif backend == "tensorflow" and not lm.run_eagerly:
            build = _tensorflow_function
        else:
            build = _eager_function
        functions[key] = build(weakref.ref(lm), sampler)
    return functions[key]


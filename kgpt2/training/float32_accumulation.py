"""Half-precision matrix products that accumulate in float32, on JAX.

Under a mixed-precision policy Keras multiplies bfloat16 (or float16)
activations by bfloat16 weights and asks for a bfloat16 result. XLA's CPU
compiler has no kernel for that: it converts both inputs to float32 and
runs a float32 product, so mixed precision is no faster than float32
there. Asked for a float32 result of the same bfloat16 inputs, it runs the
CPU's native bfloat16 multiply-add (AVX512-BF16, AMX) instead, several
times faster. `accumulate_in_float32` rewrites a function's unbatched
half-precision products (every weight product of a Transformer) that way,
then casts each result back, so the function computes what it did (to the
rounding of the accumulation, which is finer) in the same dtypes.
"""

import functools

import jax
import jax.numpy as jnp
from jax.extend import core

HALF_DTYPES = (jnp.bfloat16, jnp.float16)


def _is_half_product(equation):
    if equation.primitive is not jax.lax.dot_general_p:
        return False
    # XLA's CPU kernel for batched products (attention's, about 1% of a
    # GPT-2 step's FLOPs) has no bfloat16-in, float32-out form for some
    # layouts: those keep Keras's dtypes.
    (_, _), (lhs_batch, _) = equation.params["dimension_numbers"]
    if lhs_batch:
        return False
    dtypes = [variable.aval.dtype for variable in equation.invars]
    out_dtype = equation.outvars[0].aval.dtype
    return out_dtype in HALF_DTYPES and all(dtype == out_dtype for dtype in dtypes)


def _product_in_float32(equation, lhs, rhs):
    params = dict(equation.params, preferred_element_type=jnp.float32)
    product = jax.lax.dot_general_p.bind(lhs, rhs, **params)
    return product.astype(equation.outvars[0].aval.dtype)


def _inner_jaxpr(equation):
    """The closed jaxpr a `jit` equation calls, else None."""
    if equation.primitive.name not in ("pjit", "jit"):
        return None
    return equation.params.get("jaxpr")


def _evaluate(jaxpr, consts, *args):
    """Evaluate `jaxpr`, its half-precision products accumulating in float32.

    Nested `jit` calls are inlined so their products are rewritten too;
    other higher-order primitives (loops, conditionals, custom derivatives)
    run unchanged.
    """
    values = {}

    def read(variable):
        return variable.val if isinstance(variable, core.Literal) else values[variable]

    for variable, value in zip(jaxpr.constvars, consts):
        values[variable] = value
    for variable, value in zip(jaxpr.invars, args):
        values[variable] = value
    for equation in jaxpr.eqns:
        inputs = [read(variable) for variable in equation.invars]
        inner = _inner_jaxpr(equation)
        if _is_half_product(equation):
            outputs = [_product_in_float32(equation, *inputs)]
        elif inner is not None:
            outputs = _evaluate(inner.jaxpr, inner.consts, *inputs)
        else:
            params = equation.primitive.get_bind_params(equation.params)
            with equation.ctx.manager:
                outputs = equation.primitive.bind(*inputs, **params)
            if not equation.primitive.multiple_results:
                outputs = [outputs]
        for variable, value in zip(equation.outvars, outputs):
            values[variable] = value
    return [read(variable) for variable in jaxpr.outvars]


def accumulate_in_float32(function):
    """Wrap a JAX-traceable `function` so its half-precision products accumulate in float32.

    The wrapper traces `function` to a jaxpr and evaluates it with every
    unbatched `dot_general` whose inputs and result are bfloat16 (or float16) asked
    for a float32 result, then cast back to the half dtype. Arguments and
    results keep their structure and dtypes. Call it inside `jax.jit`. XLA
    runs such products on CPUs with bfloat16 instructions
    (`kgpt2.keras_backend.cpu_bfloat16_instructions`), which is where
    `kgpt2.compile_lm` uses it; elsewhere they may fail to run.

    Example:
    ```python
    import jax, jax.numpy as jnp
    from kgpt2.training.float32_accumulation import accumulate_in_float32

    a = jnp.ones((4, 8), jnp.bfloat16)
    jaxpr = jax.make_jaxpr(accumulate_in_float32(jnp.matmul))(a, a.T)
    # The product, then the cast back:
    print([str(e.outvars[0].aval.dtype) for e in jaxpr.eqns])  # ['float32', 'bfloat16']
    ```
    """

    @functools.wraps(function)
    def wrapped(*args, **kwargs):
        closed, out_shape = jax.make_jaxpr(
            functools.partial(function, **kwargs), return_shape=True
        )(*args)
        outputs = _evaluate(closed.jaxpr, closed.consts, *jax.tree_util.tree_leaves(args))
        return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(out_shape), outputs)

    return wrapped

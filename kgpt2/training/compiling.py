"""`kgpt2.compile_lm`: apply a fine-tuning `Recipe` to a model (optimizer, loss, precision, LoRA)."""

import keras
import keras_hub

from kgpt2.compilation_cache import enable_compilation_cache
from kgpt2.errors import InputError
from kgpt2.keras_backend import cpu_bfloat16_instructions
from kgpt2.keras_backend import has_accelerator
from kgpt2.training.accuracy import NextTokenAccuracy
from kgpt2.training.preprocessing import detached_preprocessor
from kgpt2.training.recipe import Recipe
from kgpt2.training.recipe import precision_policy
from kgpt2.training.schedule import WarmupPolynomialDecay
from kgpt2.training.weights import lora_rank_of


def check_causal_lm(lm):
    if not isinstance(lm, keras_hub.models.CausalLM):
        raise InputError(
            f"Expected a keras_hub CausalLM such as the one kgpt2.load() "
            f"returns, got {type(lm).__name__}."
        )


def set_precision(lm, policy_name):
    """Switch `lm`'s compute dtype policy in place (its weights stay float32).

    `kgpt2.compile_lm` calls it with the recipe's `mixed_precision`. Call it
    with `"float32"` to generate in float32 after a mixed-precision
    fine-tune: on a CPU, XLA's bfloat16-output products make generation
    slower than in float32, while the training step multiplies bfloat16
    with float32 results (`accumulates_in_float32`).

    Args:
        lm: a `GPT2CausalLM`.
        policy_name: `"float32"`, `"mixed_bfloat16"` or `"mixed_float16"`
            (or False/True, as `Recipe.mixed_precision` takes them).

    Returns:
        `lm`.

    Raises:
        InputError: another value (the message names it); `lm` is unchanged.

    Example:
    ```python
    import kgpt2
    from kgpt2.training.compiling import set_precision

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=32)
    print(set_precision(lm, "mixed_bfloat16").backbone.compute_dtype)  # bfloat16
    print(set_precision(lm, "float32").backbone.compute_dtype)  # float32
    ```
    """
    policy = keras.DTypePolicy(precision_policy(policy_name))
    # The backbone's layers read their policy at call time, so this switches
    # an already-built model in place; weights stay float32. The
    # preprocessor keeps its own (integer/string) policies.
    for layer in [lm, *lm.backbone._flatten_layers(include_self=True)]:
        layer.dtype_policy = policy
    # KerasHub's own `generate` keeps the program it traced under the old policy.
    lm.generate_function = None
    return lm


def uses_xla_train_step(policy_name, backend=None, accelerator=None):
    """Whether `kgpt2.compile_lm` builds the training step with XLA.

    On TensorFlow without a GPU/TPU, Keras runs the step as a oneDNN graph;
    XLA fuses its elementwise ops (GELU, dropout, layer norm, Adam's update)
    around the same matrix products, which made the float32 step of
    gpt2_base_random at 8 x 128 1.16x faster
    (`benchmarks/tf_training_profile.py --ab xla`). Mixed precision keeps
    the oneDNN graph (XLA CPU's bfloat16 products were found slow, and
    XLA's step was not measured in bfloat16). Elsewhere the backend's own
    choice stands. XLA draws other dropout masks than TensorFlow's kernels
    (same rate and distribution); without dropout both steps give the same
    losses to float rounding.

    Example:
    ```python
    from kgpt2.training.compiling import uses_xla_train_step

    print(uses_xla_train_step("float32", backend="tensorflow", accelerator=False))  # True
    print(uses_xla_train_step("mixed_bfloat16", backend="tensorflow", accelerator=False))  # False
    print(uses_xla_train_step("float32", backend="jax", accelerator=False))  # False
    ```
    """
    if backend is None:
        backend = keras.config.backend()
    if accelerator is None:
        accelerator = has_accelerator()
    return backend == "tensorflow" and policy_name == "float32" and not accelerator


def build_train_step(lm, xla):
    """Build `lm`'s training step again, compiled with XLA or not.

    Keras reads `lm.jit_compile` when it makes the step function, and so
    does generation: this switches only the training step and leaves
    `lm.jit_compile` as it was. The tokenizer can't be compiled, so Keras
    refuses XLA while the preprocessor is attached; the step never runs it
    (kgpt2 feeds token ids), so it is detached while the step is made.

    Example:
    ```python
    import kgpt2
    from kgpt2.training.compiling import build_train_step

    lm = kgpt2.compile_lm(kgpt2.load("gpt2_tiny_random", sequence_length=16), steps=10)
    jit_compile = lm.jit_compile
    build_train_step(lm, xla=False)
    print(lm.train_function is not None, lm.jit_compile == jit_compile)  # True True
    ```
    """
    jit_compile = lm.jit_compile
    with detached_preprocessor(lm):
        lm.jit_compile = xla
        try:
            lm.make_train_function(force=True)
        finally:
            lm.jit_compile = jit_compile


def accumulates_in_float32(policy_name, backend=None, platform=None, bfloat16_instructions=None):
    """Whether `kgpt2.compile_lm` makes the training step's bfloat16 products accumulate in float32.

    On JAX on a CPU with bfloat16 instructions (AVX512-BF16, AMX), a
    mixed_bfloat16 step's products otherwise run as float32 products (see
    `kgpt2.training.float32_accumulation`). Elsewhere Keras's step stays:
    GPUs and TPUs multiply bfloat16 natively, and a CPU without those
    instructions has no faster kernel to gain.

    Args:
        policy_name: the recipe's precision policy.
        backend, platform: the Keras backend and JAX platform; None reads them.
        bfloat16_instructions: the CPU's bfloat16 instruction sets; None
            reads them (`kgpt2.keras_backend.cpu_bfloat16_instructions`).

    Example:
    ```python
    from kgpt2.training.compiling import accumulates_in_float32

    amx = dict(backend="jax", bfloat16_instructions=("amx_bf16",))
    print(accumulates_in_float32("mixed_bfloat16", platform="cpu", **amx))  # True
    print(accumulates_in_float32("float32", platform="cpu", **amx))  # False
    print(accumulates_in_float32("mixed_bfloat16", platform="gpu", **amx))  # False
    ```
    """
    if backend is None:
        backend = keras.config.backend()
    if backend != "jax" or policy_name != "mixed_bfloat16":
        return False
    if platform is None:
        import jax

        platform = jax.default_backend()
    if bfloat16_instructions is None:
        bfloat16_instructions = cpu_bfloat16_instructions()
    return platform == "cpu" and bool(bfloat16_instructions)


def _set_train_step(lm, float32_accumulation):
    # An instance attribute shadows the class's `train_step`; Keras's JAX
    # trainer reads `self.train_step` when it makes the step function.
    lm.__dict__.pop("train_step", None)
    if float32_accumulation:
        from kgpt2.training.float32_accumulation import accumulate_in_float32

        lm.train_step = accumulate_in_float32(lm.train_step)


def _enable_lora(lm, rank):
    enabled = lora_rank_of(lm)
    if enabled is None:
        lm.backbone.enable_lora(rank)
    elif enabled != rank:
        raise InputError(
            f"LoRA is already enabled on this model with rank {enabled}; it "
            f"can't be changed to lora_rank={rank}. Load the model again."
        )


def as_recipe(recipe=None, **options):
    """Return `recipe` (default `Recipe()`) with `options` (its fields) applied.

    Example:
    ```python
    from kgpt2.training.compiling import as_recipe

    print(as_recipe(steps=10).steps)  # 10
    ```
    """
    if recipe is None:
        recipe = Recipe()
    elif not isinstance(recipe, Recipe):
        raise InputError(f"recipe must be a kgpt2.Recipe, got {type(recipe).__name__}.")
    return recipe.replace(**options) if options else recipe


def _optimizer(recipe, total_steps):
    schedule = WarmupPolynomialDecay(
        recipe.learning_rate,
        decay_steps=total_steps,
        warmup_steps=recipe.warmup_steps,
        end_learning_rate=recipe.end_learning_rate,
    )
    accumulation = recipe.gradient_accumulation_steps
    options = dict(
        global_clipnorm=recipe.clipnorm,
        # Keras counts accumulation from 2; 1 means none.
        gradient_accumulation_steps=accumulation if accumulation > 1 else None,
    )
    if recipe.weight_decay > 0:
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=recipe.weight_decay, **options)
        # GPT-2's layer norms are `gamma`/`beta`: like biases, not decayed.
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    else:
        optimizer = keras.optimizers.Adam(schedule, **options)
    # Runs that differ only in steps or rates then share one compiled step.
    schedule.keep_settings_in(optimizer)
    return optimizer


def compile_lm(lm, recipe=None, *, sampler=None, dataset=None, **options):
    """Compile `lm` for fine-tuning with `recipe` (default: the reference recipe).

    Adam (AdamW when `weight_decay > 0`, never decaying biases and layer
    norms) on a `WarmupPolynomialDecay` schedule from `learning_rate` to
    `end_learning_rate`, `SparseCategoricalCrossentropy(from_logits=True)`
    and `NextTokenAccuracy` (logged as `accuracy`). Padding is masked by the sample
    weights the preprocessor makes, and the loss is the mean over the real
    tokens (`reduction="mean_with_sample_weight"`): with Keras's default
    (a mean over all positions, padding included) a batch of short texts
    has a smaller loss and smaller gradients, and `exp(loss)` is not the
    perplexity. `mixed_precision` switches `lm`'s compute dtype in place
    (float32 switches it back); `lora_rank` enables LoRA on the attention
    query and value projections, freezing every other weight (saved
    presets hold the merged weights). On TensorFlow without an accelerator
    the float32 training step is compiled with XLA (see
    `uses_xla_train_step`); generation is compiled as before.

    Args:
        lm: a `GPT2CausalLM` (e.g. from `kgpt2.load`).
        recipe: a `kgpt2.Recipe`; None for `Recipe()`.
        sampler: the `generate()` sampler (name or `keras_hub.samplers`
            instance); defaults to KerasHub's `"top_k"`.
        dataset: a `tf.data.Dataset` to derive the schedule's length from
            when the recipe has no `steps` (`epochs` passes over it).
        **options: `Recipe` fields, applied on top of `recipe`
            (e.g. `steps=100, learning_rate=1e-3`).

    Returns:
        `lm`, compiled.

    Raises:
        InputError: neither `steps` nor a dataset of known length, a
            `lora_rank` above the model's hidden size, or an invalid option
            (the message names it).

    Example:
    ```python
    import kgpt2
    import tensorflow as tf

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=32)
    texts = tf.data.Dataset.from_tensor_slices(["a poem", "another one"]).batch(2)
    kgpt2.compile_lm(lm, kgpt2.Recipe(learning_rate=1e-3, epochs=4), dataset=texts)
    # The peak learning rate, then 0.0 once the schedule has run out.
    print(round(float(lm.optimizer.learning_rate), 6))
    lm.fit(texts, epochs=4, verbose=0)
    print(round(float(lm.optimizer.learning_rate), 6))
    ```
    """
    check_causal_lm(lm)
    recipe = as_recipe(recipe, **options)
    recipe.check_fits(lm)
    total_steps, _ = recipe.count_steps(dataset)
    optimizer = _optimizer(recipe, total_steps)
    if recipe.lora_rank is not None:
        _enable_lora(lm, recipe.lora_rank)
    set_precision(lm, recipe.mixed_precision)
    _set_train_step(lm, accumulates_in_float32(recipe.mixed_precision))
    lm.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction="mean_with_sample_weight"
        ),
        weighted_metrics=[NextTokenAccuracy()],
        sampler=sampler if sampler is not None else "top_k",
    )
    if uses_xla_train_step(recipe.mixed_precision):
        build_train_step(lm, xla=True)
    # The training step compiles on the first batch; a later process reads it back.
    enable_compilation_cache()
    return lm

"""`kgpt2.compile`: the reference fine-tuning recipe, with its memory knobs."""

from kgpt2.training.steps import count_steps
from kgpt2.training.weights import lora_rank_of

MIXED_PRECISION_POLICIES = ("mixed_bfloat16", "mixed_float16")


def check_causal_lm(lm):
    import keras_hub

    if not isinstance(lm, keras_hub.models.CausalLM):
        raise ValueError(
            f"Expected a keras_hub CausalLM such as the one kgpt2.load() "
            f"returns, got {type(lm).__name__}."
        )


def precision_policy(mixed_precision):
    """Map `mixed_precision` (False, True or a policy name) to a dtype policy name.

    `True` means `mixed_bfloat16`: float32 weights, bfloat16 compute, no
    loss scaling needed (fast on TPUs, Ampere+ GPUs and recent CPUs). Pass
    `"mixed_float16"` for older GPUs; Keras then adds loss scaling.

    Example:
    ```python
    from kgpt2.training.compile import precision_policy

    print(precision_policy(True), precision_policy(False))  # mixed_bfloat16 float32
    ```
    """
    if mixed_precision is None or mixed_precision is False:
        return "float32"
    if mixed_precision is True:
        return "mixed_bfloat16"
    if mixed_precision in MIXED_PRECISION_POLICIES:
        return mixed_precision
    raise ValueError(
        f"mixed_precision must be False, True or one of "
        f"{', '.join(MIXED_PRECISION_POLICIES)}; got {mixed_precision!r}."
    )


def _set_precision(lm, policy_name):
    import keras

    policy = keras.DTypePolicy(policy_name)
    # The backbone's layers read their policy at call time, so this switches
    # an already-built model in place; weights stay float32. The
    # preprocessor keeps its own (integer/string) policies.
    for layer in [lm, *lm.backbone._flatten_layers(include_self=True)]:
        layer.dtype_policy = policy


def _enable_lora(lm, rank):
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"lora_rank must be an integer >= 1 or None, got {rank!r}.")
    enabled = lora_rank_of(lm)
    if enabled is None:
        lm.backbone.enable_lora(rank)
    elif enabled != rank:
        raise ValueError(
            f"LoRA is already enabled on this model with rank {enabled}; it "
            f"can't be changed to lora_rank={rank}. Load the model again."
        )


def compile(
    lm,
    learning_rate=5e-5,
    steps=None,
    warmup_steps=0,
    weight_decay=0.0,
    clipnorm=None,
    end_learning_rate=0.0,
    sampler=None,
    mixed_precision=False,
    lora_rank=None,
    gradient_accumulation_steps=1,
    dataset=None,
    epochs=1,
):
    """Compile `lm` for fine-tuning with the reference recipe.

    Adam (AdamW when `weight_decay > 0`, never decaying biases and layer
    norms) on a `WarmupPolynomialDecay` schedule from `learning_rate` to
    `end_learning_rate`, `SparseCategoricalCrossentropy(from_logits=True)`
    and `weighted_metrics=["accuracy"]`. Padding is masked by the sample
    weights the preprocessor makes, and the loss is the mean over the real
    tokens (`reduction="mean_with_sample_weight"`): with Keras's default
    (a mean over all positions, padding included) a batch of short texts
    has a smaller loss and smaller gradients, and `exp(loss)` is not the
    perplexity.

    Args:
        lm: a `GPT2CausalLM` (e.g. from `kgpt2.load`).
        learning_rate: the peak learning rate.
        steps: total training steps (the schedule's length). When None,
            `len(dataset) * epochs`.
        warmup_steps: linear warmup steps at the start.
        weight_decay: decoupled weight decay (AdamW) when > 0.
        clipnorm: clip the global gradient norm to this value (Keras's
            `global_clipnorm`); None to not clip.
        end_learning_rate: the rate after the last step.
        sampler: the `generate()` sampler (name or `keras_hub.samplers`
            instance); defaults to KerasHub's `"top_k"`.
        mixed_precision: False, True (`mixed_bfloat16`) or `"mixed_float16"`:
            float32 weights with half-precision compute. Switches `lm` in
            place; False switches it back to float32.
        lora_rank: enable LoRA of this rank on the attention query and value
            projections (`lm.backbone.enable_lora`): every other weight is
            frozen. Saved presets hold the merged weights.
        gradient_accumulation_steps: apply one optimizer update every this
            many steps, with the mean gradient (an effective batch this many
            times larger for the memory of one). The schedule still counts
            steps, so it ends at `end_learning_rate` after `steps` steps.
        dataset, epochs: a `tf.data.Dataset` and epoch count to derive
            `steps` from when `steps` is None.

    Returns:
        `lm`, compiled.

    Raises:
        ValueError: neither `steps` nor a dataset of known length, or an
            invalid option (the message names it).

    Example:
    ```python
    import kgpt2
    import tensorflow as tf

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=32)
    texts = tf.data.Dataset.from_tensor_slices(["a poem", "another one"]).batch(2)
    kgpt2.compile(lm, learning_rate=1e-3, dataset=texts, epochs=4)
    print(round(float(lm.optimizer.learning_rate), 6))  # 0.001
    lm.fit(texts, epochs=4, verbose=0)
    print(round(float(lm.optimizer.learning_rate), 6))  # 0.0
    ```
    """
    import keras

    from kgpt2.training.schedule import WarmupPolynomialDecay

    check_causal_lm(lm)
    total_steps, _ = count_steps(dataset, epochs, steps)
    if clipnorm is not None and (isinstance(clipnorm, bool) or not clipnorm > 0):
        raise ValueError(f"clipnorm must be a number > 0 or None, got {clipnorm!r}.")
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) or weight_decay < 0:
        raise ValueError(f"weight_decay must be a number >= 0, got {weight_decay!r}.")
    if (
        isinstance(gradient_accumulation_steps, bool)
        or not isinstance(gradient_accumulation_steps, int)
        or gradient_accumulation_steps < 1
    ):
        raise ValueError(
            "gradient_accumulation_steps must be an integer >= 1, got "
            f"{gradient_accumulation_steps!r}."
        )
    policy = precision_policy(mixed_precision)
    schedule = WarmupPolynomialDecay(
        learning_rate,
        decay_steps=total_steps,
        warmup_steps=warmup_steps,
        end_learning_rate=end_learning_rate,
    )
    if lora_rank is not None:
        _enable_lora(lm, lora_rank)
    _set_precision(lm, policy)

    options = dict(
        global_clipnorm=clipnorm,
        # Keras counts accumulation from 2; 1 means none.
        gradient_accumulation_steps=gradient_accumulation_steps
        if gradient_accumulation_steps > 1
        else None,
    )
    if weight_decay > 0:
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=weight_decay, **options)
        # GPT-2's layer norms are `gamma`/`beta`: like biases, not decayed.
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    else:
        optimizer = keras.optimizers.Adam(schedule, **options)
    lm.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction="mean_with_sample_weight"
        ),
        weighted_metrics=["accuracy"],
        sampler=sampler if sampler is not None else "top_k",
    )
    return lm

"""`Recipe`: every option of how a model is fine-tuned, in one frozen dataclass."""

import dataclasses

from kgpt2.checks import check_choice
from kgpt2.checks import check_integer
from kgpt2.checks import check_number
from kgpt2.errors import InputError
from kgpt2.presets.catalog import RANDOM_PRESETS
from kgpt2.presets.gpt2_layout import DISTRIBUTIONS
from kgpt2.training.options import Options
from kgpt2.training.options import option
from kgpt2.training.steps import count_steps

MIXED_PRECISION_POLICIES = ("mixed_bfloat16", "mixed_float16")
PRECISION_POLICIES = ("float32", *MIXED_PRECISION_POLICIES)
# Peak learning rates: the reference recipe's for pretrained GPT-2, and a
# larger one for the random-init presets, which train from scratch (at 5e-5
# their loss barely moves in a short run).
PRETRAINED_LEARNING_RATE = 5e-5
FROM_SCRATCH_LEARNING_RATE = 2e-3


def precision_policy(mixed_precision):
    """Map `mixed_precision` (False, True or a policy name) to a dtype policy name.

    `True` means `mixed_bfloat16`: float32 weights, bfloat16 compute, no
    loss scaling needed (fast on TPUs, Ampere+ GPUs and recent CPUs). Pass
    `"mixed_float16"` for older GPUs; Keras then adds loss scaling.

    Example:
    ```python
    from kgpt2.training.recipe import precision_policy

    print(precision_policy(True), precision_policy(False))  # mixed_bfloat16 float32
    ```
    """
    if mixed_precision is None or mixed_precision is False:
        return "float32"
    if mixed_precision is True:
        return "mixed_bfloat16"
    if mixed_precision in PRECISION_POLICIES:
        return mixed_precision
    raise InputError(
        f"mixed_precision must be False, True or one of "
        f"{', '.join(PRECISION_POLICIES)}; got {mixed_precision!r}."
    )


def default_learning_rate(preset):
    """The peak learning rate that suits a preset: 2e-3 from scratch, else 5e-5.

    The random-init presets (`gpt2_tiny_random`, `gpt2_base_random`) learn
    everything from the data; pretrained ones are only adjusted.

    Example:
    ```python
    from kgpt2.training.recipe import default_learning_rate

    print(default_learning_rate("gpt2_tiny_random"), default_learning_rate("gpt2_base_en"))
    # 0.002 5e-05
    ```
    """
    if isinstance(preset, str) and preset in RANDOM_PRESETS:
        return FROM_SCRATCH_LEARNING_RATE
    return PRETRAINED_LEARNING_RATE


@dataclasses.dataclass(frozen=True)
class Recipe(Options):
    """How a model is fine-tuned: optimizer, schedule, length, precision, LoRA.

    The reference recipe is Adam (AdamW when `weight_decay > 0`) on a
    linear warmup then a linear decay from `learning_rate` to
    `end_learning_rate` over the run, with a cross-entropy loss averaged over
    the real (not padding) tokens. `kgpt2.compile_lm(lm, recipe)` applies it;
    `kgpt2.finetune(lm, data, recipe=recipe)` trains with it and stores its
    fields in every checkpoint, so that a resumed run can say which ones
    changed. Values are checked when the recipe is made; `lora_rank` is
    checked against the model's hidden size when the recipe is applied.

    Attributes:
        learning_rate: the peak learning rate. 5e-5 (the reference) suits
            pretrained presets; `Recipe.for_preset` picks 2e-3 for the
            random-init ones.
        warmup_steps: steps of linear warmup from 0 to `learning_rate`.
        end_learning_rate: the rate after the last step.
        weight_decay: decoupled weight decay (AdamW) when > 0; biases and
            layer norms are never decayed.
        clipnorm: clip the global gradient norm to this; None: no clipping.
        steps: total training steps. None: `epochs` passes over the data
            (whose length must then be known).
        epochs: the Keras epochs the run is split into (validation and the
            `epoch` column of metrics.csv follow them). None: one epoch per
            pass over the data (a single one when the data repeats forever).
        lora_rank: train only LoRA adapters of this rank on the attention
            query and value projections; None: train every weight.
        mixed_precision: `"float32"`, `"mixed_bfloat16"` or
            `"mixed_float16"` (float32 weights, half-precision compute);
            `True`/`False` are accepted for `"mixed_bfloat16"`/`"float32"`.
        gradient_accumulation_steps: apply one optimizer update every this
            many steps, with the mean gradient (a batch this many times
            larger for the memory of one). The schedule still counts steps.
        distribution: None (one device), `"data_parallel"` or
            `"model_parallel"` (JAX's `keras.distribution` over all local
            devices; see `kgpt2.plan`). Used by `kgpt2.finetune` only.

    Example:
    ```python
    import kgpt2

    recipe = kgpt2.Recipe(learning_rate=1e-3, warmup_steps=10, steps=200)
    print(recipe.replace(lora_rank=8).lora_rank, recipe.mixed_precision)  # 8 float32
    print(kgpt2.Recipe.from_dict(recipe.to_dict()) == recipe)  # True
    ```
    """

    learning_rate: float = option(
        PRETRAINED_LEARNING_RATE, "peak learning rate",
        default_text=f"{FROM_SCRATCH_LEARNING_RATE:g} for the *_random presets "
        f"(they train from scratch), {PRETRAINED_LEARNING_RATE:g} otherwise",
    )
    warmup_steps: int = option(0, "steps of linear warmup up to the peak learning rate")
    end_learning_rate: float = option(0.0, "learning rate after the last step (linear decay to it)")
    weight_decay: float = option(0.0, "AdamW weight decay when > 0 (never on biases and layer norms)")
    clipnorm: float | None = option(None, "clip the global gradient norm to this value", type=float)
    steps: int | None = option(
        None, "total training steps of the run", type=int, group="length",
        default_text="epochs x the batches of one pass over the data",
    )
    epochs: int | None = option(
        None, "epochs to split the run into (validation after each)", type=int, group="length",
        default_text="one per pass over the data",
    )
    lora_rank: int | None = option(
        None, "train only LoRA adapters of this rank (attention query/value)", type=int
    )
    mixed_precision: str = option(
        "float32", "compute in half precision with float32 weights (POLICY: mixed_bfloat16 "
        "when given alone, or mixed_float16)", nargs="?", const="mixed_bfloat16", metavar="POLICY",
        choices=PRECISION_POLICIES,
    )
    gradient_accumulation_steps: int = option(
        1, "apply one optimizer update every this many steps (mean gradient)"
    )
    distribution: str | None = option(
        None, "train over all devices (of every process, with --num-processes) with "
        "keras.distribution (JAX); `kgpt2 plan` says what fits", choices=DISTRIBUTIONS,
    )

    def __post_init__(self):
        owner = type(self).__name__
        check_number(owner, "learning_rate", self.learning_rate, minimum=0)
        check_integer(owner, "warmup_steps", self.warmup_steps, minimum=0)
        check_number(owner, "end_learning_rate", self.end_learning_rate, minimum=0)
        check_number(owner, "weight_decay", self.weight_decay, minimum=0)
        check_number(owner, "clipnorm", self.clipnorm, minimum=0, exclusive_minimum=True, allow_none=True)
        check_integer(owner, "steps", self.steps, minimum=1, allow_none=True)
        check_integer(owner, "epochs", self.epochs, minimum=1, allow_none=True)
        if self.steps is not None and self.epochs is not None and self.epochs > self.steps:
            raise InputError(
                f"{owner}: epochs={self.epochs} is more than steps={self.steps}: each epoch needs a step."
            )
        if self.steps is not None and self.warmup_steps > self.steps:
            raise InputError(
                f"{owner}: warmup_steps={self.warmup_steps} is more than steps={self.steps}."
            )
        check_integer(owner, "lora_rank", self.lora_rank, minimum=1, allow_none=True)
        self._set("mixed_precision", precision_policy(self.mixed_precision))
        check_integer(owner, "gradient_accumulation_steps", self.gradient_accumulation_steps, minimum=1)
        if self.distribution is not None:
            check_choice(owner, "distribution", self.distribution, DISTRIBUTIONS)

    @classmethod
    def for_preset(cls, preset, **options):
        """The recipe for fine-tuning `preset`, with `options` on top.

        Only the learning rate depends on the preset (`default_learning_rate`).

        Example:
        ```python
        import kgpt2

        print(kgpt2.Recipe.for_preset("gpt2_tiny_random", steps=40).learning_rate)  # 0.002
        ```
        """
        options.setdefault("learning_rate", default_learning_rate(preset))
        return cls(**options)

    def count_steps(self, dataset=None):
        """Return `(total_steps, steps_per_epoch)` of this recipe on `dataset`.

        See `kgpt2.training.steps.count_steps`.

        Example:
        ```python
        import tensorflow as tf
        import kgpt2

        batches = tf.data.Dataset.from_tensor_slices(["a", "b", "c"]).batch(1)
        print(kgpt2.Recipe(steps=5).count_steps(batches))  # (5, 3)
        ```
        """
        return count_steps(dataset, self.epochs, self.steps)

    def check_fits(self, lm):
        """Raise `InputError` if the recipe can't apply to `lm` (a LoRA rank above its width).

        Example:
        ```python
        import kgpt2

        lm = kgpt2.load("gpt2_tiny_random", sequence_length=32)
        kgpt2.Recipe(lora_rank=8).check_fits(lm)  # passes: hidden size 64
        ```
        """
        hidden = lm.backbone.hidden_dim
        if self.lora_rank is not None and self.lora_rank > hidden:
            raise InputError(
                f"Recipe: lora_rank={self.lora_rank} is larger than the model's "
                f"hidden size {hidden}: a rank above it adds parameters without "
                f"adding capacity. Pick lora_rank <= {hidden} (4-64 is usual)."
            )

    def changes_from(self, saved):
        """The options that differ from `saved` (a checkpoint's stored fields).

        Returns `(name, saved_value, current_value)` for each option stored
        in `saved` whose value is now different; options missing from
        `saved` (older checkpoints) are not compared.

        Example:
        ```python
        import kgpt2

        saved = kgpt2.Recipe(learning_rate=1e-3).to_dict()
        print(kgpt2.Recipe(learning_rate=2e-3).changes_from(saved))
        # [('learning_rate', 0.001, 0.002)]
        ```
        """
        return [
            (name, saved[name], value)
            for name, value in self.to_dict().items()
            if name in saved and saved[name] != value
        ]

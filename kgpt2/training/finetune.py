"""`kgpt2.finetune`: a named, resumable, crash-safe fine-tuning run."""

import contextlib
import dataclasses
import pathlib

from kgpt2.presets import MAX_SEQUENCE_LENGTH
from kgpt2.training.compile import check_causal_lm
from kgpt2.training.compile import compile as compile_lm
from kgpt2.training.compile import precision_policy
from kgpt2.runs import validate_run_name
from kgpt2.training.steps import count_steps
from kgpt2.training.steps import fit_segments
from kgpt2.training.weights import copy_weights

RESTORE_FROM = ("latest", "fresh")
# Settings whose change on resume is worth a line in the log.
RESUMED_SETTINGS = (
    "learning_rate",
    "total_steps",
    "warmup_steps",
    "end_learning_rate",
    "weight_decay",
    "clipnorm",
    "mixed_precision",
)


@dataclasses.dataclass
class FinetuneResult:
    """What `kgpt2.finetune` returns.

    Attributes:
        run_dir: the run directory; `kgpt2.load(run_dir)` loads its latest model.
        step: the step of the run's latest checkpoint, where a resumed run
            starts (earlier calls included).
        total_steps: the run's planned length.
        stop_reason: `"completed"`, `"interrupted"` (Ctrl-C/SIGTERM, saved),
            `"nan"` (non-finite loss, last good checkpoint kept) or
            `"stopped"` (a callback set `stop_training`).
        history: Keras's `History.history` of this call (per epoch).
        metrics: the last step's row of `metrics.csv` (loss, accuracy,
            learning_rate, tokens_per_second, val_* after validation).
        tokens_per_second: mean training throughput of this call, or None.
        checkpoint: the run's latest checkpoint folder, or None.
        resumed_from: the step this call started after (0 for a new run).
        message: why training stopped early, when it did.
    """

    run_dir: pathlib.Path
    step: int
    total_steps: int
    stop_reason: str
    history: dict
    metrics: dict
    tokens_per_second: float
    checkpoint: pathlib.Path
    resumed_from: int
    message: str = None


def _check_count(value, label):
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{label} must be an integer >= 0 or None, got {value!r}.")
    return value


def _check_dataset(dataset, label):
    """Return whether `dataset` is tokenized; raise if it isn't usable."""
    import tensorflow as tf

    from kgpt2.data import is_preprocessed

    if not isinstance(dataset, tf.data.Dataset):
        raise ValueError(
            f"{label} must be a tf.data.Dataset of text batches or of "
            f"tokenized (x, y, sample_weight) batches, got {type(dataset).__name__}."
        )
    spec = dataset.element_spec
    tokenized = is_preprocessed(dataset)
    first = spec[0]["token_ids"] if tokenized else spec
    if not tokenized and not (isinstance(first, tf.TensorSpec) and first.dtype == tf.string):
        raise ValueError(
            f"{label} yields {spec}, neither batches of strings nor "
            "tokenized ({'token_ids', 'padding_mask'}, y, sample_weight) batches."
        )
    if first.shape.rank == (1 if tokenized else 0):
        raise ValueError(
            f"{label} yields single examples, not batches: batch it first, "
            f"e.g. {label}.batch(8)."
        )
    return tokenized


def _tokens_per_example(lm, dataset, tokenized):
    if tokenized and dataset.element_spec[0]["token_ids"].shape[-1] is not None:
        return int(dataset.element_spec[0]["token_ids"].shape[-1])
    return lm.preprocessor.sequence_length


def finetune(
    lm,
    train_ds,
    val_ds=None,
    epochs=1,
    steps=None,
    run_name="run1",
    checkpoint_dir="checkpoint",
    restore_from="latest",
    save_every=1000,
    sample_every=None,
    sample_prompt="",
    sample_length=100,
    print_every=10,
    learning_rate=5e-5,
    warmup_steps=0,
    weight_decay=0.0,
    clipnorm=None,
    end_learning_rate=0.0,
    lora_rank=None,
    mixed_precision=False,
    gradient_accumulation_steps=1,
    distribution=None,
    sampler=None,
    keep_checkpoints=1,
    callbacks=None,
    print_fn=print,
):
    """Fine-tune `lm` in run directory `checkpoint_dir/run_name`, resumably.

    Compiles `lm` with `kgpt2.compile` (the reference recipe: Adam on a
    warmup + polynomial-decay schedule ending at `end_learning_rate` after
    the last step), trains it in place, and keeps the run directory current:
    the latest model as a KerasHub preset (`kgpt2.load(run_dir)`), optimizer,
    step and RNG state to resume exactly, `metrics.csv`, `loss.png` and
    `samples.txt`.

    Crash safety: checkpoints are written atomically (a crash or `kill -9`
    mid-save leaves the previous one loadable); Ctrl-C or SIGTERM saves the
    current step, then returns; a NaN/inf loss stops the run and keeps the
    last good checkpoint. Running the same call again with
    `restore_from="latest"` resumes at the saved step with the optimizer
    state, schedule position and data position of an uninterrupted run.

    Args:
        lm: a `GPT2CausalLM` (e.g. `kgpt2.load("gpt2_base_en")`).
        train_ds: a batched `tf.data.Dataset` of strings (tokenized with
            `lm.preprocessor`), or of tokenized `(x, y, sample_weight)`
            batches (e.g. packed ones from `kgpt2.data`).
        val_ds: an optional validation dataset of the same kind, evaluated
            after each epoch (val_loss and val_perplexity in metrics.csv).
        epochs: passes over `train_ds`; with `steps`, the number of epochs
            the steps are split into (validation after each).
        steps: total training steps of the run (resuming counts from the
            saved step up to this). Needed when `train_ds`'s length is
            unknown or infinite.
        run_name: the run's folder name inside `checkpoint_dir` (letters,
            digits, `_`, `-`, `.`; no paths).
        restore_from: `"latest"` resumes the run's latest checkpoint (or
            starts from `lm` if it has none); `"fresh"` starts from `lm`
            and replaces the run's checkpoints and logs.
        save_every: steps between checkpoints (the last step and early stops
            are always saved); None or 0 to save only then.
        sample_every: steps between samples (None or 0: no samples).
        sample_prompt, sample_length: the samples' prompt and length in
            tokens (prompt included).
        print_every: steps between progress lines (None or 0: none).
        learning_rate, warmup_steps, weight_decay, clipnorm,
        end_learning_rate, lora_rank, mixed_precision,
        gradient_accumulation_steps, sampler: see `kgpt2.compile`.
        distribution: None (one device), `"data_parallel"` (weights
            replicated, each batch split over all local devices) or
            `"model_parallel"` (weights, gradients and Adam moments sharded
            with GPT-2's layout map), via `keras.distribution` on the JAX
            backend. `lm` is rebuilt under it for training and the trained
            weights are copied back into `lm`; see `kgpt2.plan` for what fits.
        keep_checkpoints: how many checkpoints the run keeps.
        callbacks: extra `keras.callbacks.Callback`s, run after kgpt2's.
        print_fn: where progress, checkpoint and sample lines go.

    Returns:
        A `FinetuneResult`.

    Raises:
        ValueError: a bad argument, dataset or run name, a run locked by
            another process, or a checkpoint that doesn't fit `lm` (the
            message says what and how to fix it).

    Example:
    ```python
    import tempfile, kgpt2
    import tensorflow as tf

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=32)
    poems = tf.data.Dataset.from_tensor_slices(["床前明月光", "疑是地上霜"] * 8).batch(4)
    folder = tempfile.mkdtemp()
    result = kgpt2.finetune(lm, poems, steps=8, learning_rate=1e-3, checkpoint_dir=folder)
    print(result.step, result.stop_reason)  # 8 completed
    print(kgpt2.load(result.run_dir).count_params() == lm.count_params())  # True
    ```
    """
    import keras

    from kgpt2.training.callbacks import MetricsCSV
    from kgpt2.training.callbacks import RunCheckpoint
    from kgpt2.training.callbacks import SampleEvery
    from kgpt2.training.callbacks import StopOnInterrupt
    from kgpt2.training.callbacks import StopOnNaN
    from kgpt2.training.callbacks import TokensPerSecond
    from kgpt2.training.callbacks.metrics_csv import truncate_metrics
    from kgpt2.training.batches import RunBatches
    from kgpt2.training.checkpoints import RunDirectory
    from kgpt2.training.distribution import distributed
    from kgpt2.training.plot import plot_loss_curve
    from kgpt2.training.preprocessing import detached_preprocessor

    check_causal_lm(lm)
    tokenized = _check_dataset(train_ds, "train_ds")
    if val_ds is not None and _check_dataset(val_ds, "val_ds") != tokenized:
        raise ValueError(
            "train_ds and val_ds must both be text or both be tokenized; got "
            f"{'tokenized' if tokenized else 'text'} train_ds and the other kind of val_ds."
        )
    if lm.preprocessor is None:
        raise ValueError(
            "lm has no preprocessor: kgpt2.finetune tokenizes text and saves "
            "the tokenizer with each checkpoint. Reattach it (lm.preprocessor = ...)."
        )
    if restore_from not in RESTORE_FROM:
        raise ValueError(f"restore_from must be 'latest' or 'fresh', got {restore_from!r}.")
    save_every = _check_count(save_every, "save_every")
    sample_every = _check_count(sample_every, "sample_every")
    print_every = _check_count(print_every, "print_every")
    extra_callbacks = list(callbacks or [])
    for callback in extra_callbacks:
        if not isinstance(callback, keras.callbacks.Callback):
            raise ValueError(f"callbacks must be keras.callbacks.Callback instances, got {callback!r}.")
    total_steps, steps_per_epoch = count_steps(train_ds, epochs, steps)
    settings = dict(
        run_name=run_name,
        total_steps=total_steps,
        steps_per_epoch=steps_per_epoch,
        learning_rate=learning_rate,
        warmup_steps=warmup_steps,
        end_learning_rate=end_learning_rate,
        weight_decay=weight_decay,
        clipnorm=clipnorm,
        lora_rank=lora_rank,
        mixed_precision=precision_policy(mixed_precision),
        gradient_accumulation_steps=gradient_accumulation_steps,
        keras_backend=keras.config.backend(),
        distribution=distribution,
    )

    if sample_every and (
        isinstance(sample_length, bool)
        or not isinstance(sample_length, int)
        or not 1 <= sample_length <= MAX_SEQUENCE_LENGTH
    ):
        raise ValueError(
            f"sample_length must be an integer in [1, {MAX_SEQUENCE_LENGTH}], got {sample_length!r}."
        )
    validate_run_name(run_name)
    user_lm = lm
    with contextlib.ExitStack() as stack:
        # keras.distribution lays a variable out when it is created: train a
        # copy built under the distribution, then give the caller's model
        # the trained weights (the callback runs before the scope closes).
        lm = stack.enter_context(distributed(user_lm, distribution))
        if lm is not user_lm:
            stack.callback(copy_weights, lm, user_lm)
        # Compile first: its errors (bad options) leave no run directory behind.
        compile_lm(
            lm,
            learning_rate=learning_rate,
            steps=total_steps,
            warmup_steps=warmup_steps,
            weight_decay=weight_decay,
            clipnorm=clipnorm,
            end_learning_rate=end_learning_rate,
            sampler=sampler,
            mixed_precision=mixed_precision,
            lora_rank=lora_rank,
            gradient_accumulation_steps=gradient_accumulation_steps,
        )

        with RunDirectory.open(checkpoint_dir, run_name, keep_checkpoints) as run:
            checkpoint = run.latest() if restore_from == "latest" else None
            start_step = 0
            if checkpoint is not None:
                run.restore(lm, checkpoint)
                start_step = checkpoint.step
                print_fn(f"Resuming {run.path} at step {start_step} from {checkpoint.path.name}")
                for key in RESUMED_SETTINGS:
                    if key in checkpoint.state and checkpoint.state[key] != settings[key]:
                        print_fn(f"  note: {key} was {checkpoint.state[key]!r}, now {settings[key]!r}")
                truncate_metrics(run.metrics_csv, start_step)
            else:
                run.start_over()

            def result(stop_reason, history, callbacks_used=None, message=None):
                latest = run.latest()
                logger, meter = callbacks_used or (None, None)
                return FinetuneResult(
                    run_dir=run.path,
                    step=latest.step if latest else start_step,
                    total_steps=total_steps,
                    stop_reason=stop_reason,
                    history=history,
                    metrics=dict(logger.last_row) if logger and logger.last_row else {},
                    tokens_per_second=meter.tokens_per_second if meter else None,
                    checkpoint=latest.path if latest else None,
                    resumed_from=start_step,
                    message=message,
                )

            if start_step >= total_steps:
                print_fn(f"{run.path} is already at step {start_step} of {total_steps}: nothing to train.")
                return result("completed", {})

            preprocessor = lm.preprocessor
            meter = TokensPerSecond(_tokens_per_example(lm, train_ds, tokenized))
            logger = MetricsCSV(run.metrics_csv, start_step, print_every, total_steps, print_fn)
            nan_stop = StopOnNaN(start_step, print_fn=print_fn, run=run)
            interrupt = StopOnInterrupt(print_fn=print_fn)
            checkpointer = RunCheckpoint(
                run, save_every, total_steps, start_step, settings, preprocessor, print_fn
            )
            # Order matters: the meter's tokens/s reaches the CSV through the
            # step's logs, and stop decisions come before the checkpoint's.
            all_callbacks = [meter, logger, nan_stop, interrupt, checkpointer]
            if sample_every:
                all_callbacks.append(
                    SampleEvery(
                        sample_every, sample_prompt, sample_length, run.samples_txt,
                        start_step, preprocessor, print_fn,
                    )
                )
            all_callbacks.extend(extra_callbacks)

            print_fn(
                f"Fine-tuning {run.path}: steps {start_step + 1}-{total_steps} "
                f"({steps_per_epoch} per epoch), learning rate {learning_rate:g}, "
                f"Keras backend {keras.config.backend()}"
            )
            # kgpt2 feeds model inputs itself (text is tokenized here), so the
            # preprocessor stays detached during fit: KerasHub would apply it again.
            text_preprocessor = None if tokenized else preprocessor
            batches = RunBatches(train_ds, start_step, text_preprocessor)
            if val_ds is not None and not tokenized:
                val_ds = val_ds.map(lambda *batch: preprocessor(*batch))
            history = {}
            with detached_preprocessor(lm), interrupt:
                for segment in fit_segments(start_step, total_steps, steps_per_epoch):
                    step_before = checkpointer.step
                    # The batches are model inputs already: skip KerasHub's
                    # fit, which would only add preprocessing (and can't take
                    # a generator), for Keras's own.
                    segment_history = keras.Model.fit(
                        lm,
                        batches.generator(),
                        initial_epoch=segment.initial_epoch,
                        epochs=segment.epochs,
                        steps_per_epoch=segment.steps_per_epoch,
                        validation_data=val_ds,
                        callbacks=all_callbacks,
                        shuffle=False,  # the dataset's own order, resumable
                        verbose=0,
                    )
                    for key, values in segment_history.history.items():
                        history.setdefault(key, []).extend(values)
                    if lm.stop_training:
                        break
                    batches.keep_unused(trained=checkpointer.step - step_before)

            if nan_stop.stopped_step is not None:
                stop_reason, message = "nan", nan_stop.message
            elif interrupt.interrupted:
                stop_reason = "interrupted"
                message = f"Interrupted ({interrupt.interrupted}) at step {checkpointer.step}; run again with restore_from='latest' to resume."
            elif lm.stop_training:
                stop_reason, message = "stopped", f"A callback stopped training at step {checkpointer.step}."
            else:
                stop_reason, message = "completed", None
            plot_loss_curve(run.metrics_csv, run.loss_png)
            outcome = result(stop_reason, history, (logger, meter), message)
            if outcome.checkpoint is not None:
                print_fn(f"Run {run.path} is at step {outcome.step}: kgpt2.load({str(run.path)!r}) loads it.")
            return outcome

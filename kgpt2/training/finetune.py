"""`kgpt2.finetune`: a named, resumable, crash-safe fine-tuning run.

`finetune` runs five steps, each a function below: validate the inputs,
open (or resume) the run, build the callbacks, train, report.
"""

import contextlib
import dataclasses
import logging
import pathlib

import keras
import tensorflow as tf

from kgpt2.data import is_preprocessed
from kgpt2.errors import InputError
from kgpt2.training.batches import RunBatches
from kgpt2.training.callbacks import MetricsCSV
from kgpt2.training.callbacks import RunCheckpoint
from kgpt2.training.callbacks import SampleEvery
from kgpt2.training.callbacks import StopOnInterrupt
from kgpt2.training.callbacks import StopOnNaN
from kgpt2.training.callbacks import TokensPerSecond
from kgpt2.training.callbacks.compile_progress import CompileProgress
from kgpt2.training.callbacks.metrics_csv import truncate_metrics
from kgpt2.training.callbacks.tensorboard import TENSORBOARD_DIR
from kgpt2.training.callbacks.tensorboard import TensorBoardLogger
from kgpt2.training.callbacks.tensorboard import check_log_dir
from kgpt2.training.checkpoints import RunDirectory
from kgpt2.training.compiling import as_recipe
from kgpt2.training.compiling import check_causal_lm
from kgpt2.training.compiling import compile_lm
from kgpt2.training.distribution import distributed
from kgpt2.training.plot import plot_loss_curve
from kgpt2.training.preprocessing import detached_preprocessor
from kgpt2.training.processes import barrier
from kgpt2.training.processes import connect_processes
from kgpt2.training.processes import shard_batches
from kgpt2.training.recipe import Recipe
from kgpt2.training.run_options import RunOptions
from kgpt2.training.steps import batches_per_pass
from kgpt2.training.steps import fit_segments
from kgpt2.training.weights import copy_weights

log = logging.getLogger(__name__)


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


@dataclasses.dataclass
class _Plan:
    """What one `finetune` call trains: the options and the data's shape."""

    recipe: Recipe
    run: RunOptions
    tokenized: bool
    total_steps: int
    steps_per_epoch: int
    sequence_length: int
    data_shards: int = 1
    data_shard_index: int = 0

    def state(self):
        """The fields stored in each checkpoint's training_state.json."""
        return dict(
            self.recipe.to_dict(),
            run_name=self.run.run_name,
            total_steps=self.total_steps,
            steps_per_epoch=self.steps_per_epoch,
            sequence_length=self.sequence_length,
            keras_backend=keras.config.backend(),
        )

    def changes_from(self, saved):
        """`(name, saved, now)` for each stored option or data shape that changed."""
        changes = self.recipe.changes_from(saved)
        for name in ("total_steps", "sequence_length"):
            if name in saved and saved[name] != getattr(self, name):
                changes.append((name, saved[name], getattr(self, name)))
        return changes


def _check_dataset(dataset, label):
    """Return whether `dataset` is tokenized; raise if it isn't usable."""
    if not isinstance(dataset, tf.data.Dataset):
        raise InputError(
            f"{label} must be a tf.data.Dataset of text batches or of "
            f"tokenized (x, y, sample_weight) batches, got {type(dataset).__name__}."
        )
    spec = dataset.element_spec
    tokenized = is_preprocessed(dataset)
    first = spec[0]["token_ids"] if tokenized else spec
    if not tokenized and not (isinstance(first, tf.TensorSpec) and first.dtype == tf.string):
        raise InputError(
            f"{label} yields {spec}, neither batches of strings nor "
            "tokenized ({'token_ids', 'padding_mask'}, y, sample_weight) batches."
        )
    if first.shape.rank == (1 if tokenized else 0):
        raise InputError(
            f"{label} yields single examples, not batches: batch it first, "
            f"e.g. {label}.batch(8)."
        )
    return tokenized


def _sequence_length(lm, dataset, tokenized):
    if tokenized and dataset.element_spec[0]["token_ids"].shape[-1] is not None:
        return int(dataset.element_spec[0]["token_ids"].shape[-1])
    return lm.preprocessor.sequence_length


def _split_options(recipe, run, options):
    """Apply keyword `options` to the recipe or the run options, by field name."""
    recipe_fields, run_fields = set(Recipe.field_names()), set(RunOptions.field_names())
    unknown = sorted(set(options) - recipe_fields - run_fields)
    if unknown:
        raise InputError(
            f"finetune() got unknown option(s) {', '.join(unknown)}; it takes the "
            f"fields of kgpt2.Recipe ({', '.join(Recipe.field_names())}) and of "
            f"kgpt2.RunOptions ({', '.join(RunOptions.field_names())})."
        )
    if run is None:
        run = RunOptions()
    elif not isinstance(run, RunOptions):
        raise InputError(f"run must be a kgpt2.RunOptions, got {type(run).__name__}.")
    recipe = as_recipe(recipe, **{k: v for k, v in options.items() if k in recipe_fields})
    run_changes = {k: v for k, v in options.items() if k in run_fields}
    return recipe, run.replace(**run_changes) if run_changes else run


def _data_shards(recipe, run):
    """Join the process group `run` asks for; return `(data_shards, this_shard)`.

    Data parallel: each process feeds its part of every batch. Model
    parallel lays weights, not the batch, over the devices: every process
    feeds the whole batch.
    """
    count, index = connect_processes(run.num_processes, run.process_id, run.coordinator)
    if count > 1 and recipe.distribution is None:
        raise InputError(
            f"Training in {count} processes needs distribution='data_parallel' or "
            "'model_parallel' (--distribution): without one each process would "
            "train its own copy."
        )
    if count > 1 and recipe.distribution == "data_parallel":
        return count, index
    return 1, 0


def _check_batch_divides(dataset, tokenized, shards):
    spec = dataset.element_spec[0]["token_ids"] if tokenized else dataset.element_spec
    size = spec.shape[0]
    if shards > 1 and size is not None and size % shards:
        raise InputError(
            f"train_ds's batches of {size} don't divide among the {shards} processes: "
            f"use a batch size that is a multiple of {shards}."
        )


def _validate(lm, train_ds, val_ds, recipe, run, options, callbacks):
    """Check every input before anything is built or written; return the `_Plan`."""
    check_causal_lm(lm)
    recipe, run = _split_options(recipe, run, options)
    shards, shard_index = _data_shards(recipe, run)
    tokenized = _check_dataset(train_ds, "train_ds")
    if val_ds is not None and _check_dataset(val_ds, "val_ds") != tokenized:
        raise InputError(
            "train_ds and val_ds must both be text or both be tokenized; got "
            f"{'tokenized' if tokenized else 'text'} train_ds and the other kind of val_ds."
        )
    if lm.preprocessor is None:
        raise InputError(
            "lm has no preprocessor: kgpt2.finetune tokenizes text and saves "
            "the tokenizer with each checkpoint. Reattach it (lm.preprocessor = ...)."
        )
    for callback in callbacks:
        if not isinstance(callback, keras.callbacks.Callback):
            raise InputError(f"callbacks must be keras.callbacks.Callback instances, got {callback!r}.")
    recipe.check_fits(lm)
    run.check_sample_prompt(lm.preprocessor.tokenizer)
    _check_batch_divides(train_ds, tokenized, shards)
    total_steps, steps_per_epoch = recipe.count_steps(train_ds)
    return _Plan(
        recipe, run, tokenized, total_steps, steps_per_epoch,
        _sequence_length(lm, train_ds, tokenized), shards, shard_index,
    )


def _open_run(run_directory, lm, plan):
    """Resume `run`'s latest checkpoint into `lm`, or clear its logs; return the start step."""
    checkpoint = run_directory.latest() if plan.run.restore_from == "latest" else None
    if checkpoint is None:
        run_directory.start_over()
        return 0
    log.info("Resuming %s at step %d from %s", run_directory.path, checkpoint.step, checkpoint.path.name)
    for name, saved, now in plan.changes_from(checkpoint.state):
        log.info("  note: %s was %r, now %r", name, saved, now)
    run_directory.restore(lm, checkpoint)
    if run_directory.writer:
        truncate_metrics(run_directory.metrics_csv, checkpoint.step)
    return checkpoint.step


@dataclasses.dataclass
class _Callbacks:
    """kgpt2's callbacks of one call, and the list `fit` gets."""

    meter: object
    logger: object
    nan_stop: object
    interrupt: object
    checkpointer: object
    all: list


def _build_callbacks(run_directory, plan, start_step, preprocessor, extra):
    options = plan.run
    meter = TokensPerSecond(plan.sequence_length)
    logger = MetricsCSV(run_directory.metrics_csv, start_step, options.print_every, plan.total_steps)
    nan_stop = StopOnNaN(start_step, run_directory=run_directory)
    interrupt = StopOnInterrupt()
    checkpointer = RunCheckpoint(
        run_directory, options.save_every, plan.total_steps, start_step, plan.state(), preprocessor
    )
    # Order matters: the meter's tokens/s reaches the CSV through the
    # step's logs, and stop decisions come before the checkpoint's.
    # In a process group only the writer records metrics and samples; the
    # others still generate the samples, since every process takes part
    # in each computation on the distributed model.
    every = [CompileProgress(), meter, logger, nan_stop, interrupt, checkpointer] if run_directory.writer else [
        meter, nan_stop, interrupt, checkpointer
    ]
    if options.sample_every:
        every.append(
            SampleEvery(
                options.sample_every, options.sample_prompt, options.sample_length,
                run_directory.samples_txt if run_directory.writer else None, start_step, preprocessor,
                total_steps=plan.total_steps,
            )
        )
    if options.tensorboard and run_directory.writer:
        samples = next((c for c in every if isinstance(c, SampleEvery)), None)
        every.append(TensorBoardLogger(run_directory.path / TENSORBOARD_DIR, start_step, samples))
    logger = logger if run_directory.writer else None
    return _Callbacks(meter, logger, nan_stop, interrupt, checkpointer, every + list(extra))


def _describe_epochs(plan, train_ds):
    per_pass = batches_per_pass(train_ds)
    if per_pass == plan.steps_per_epoch:
        return f"{per_pass} steps per epoch (one pass over the data)"
    passes = f"{per_pass} batches per pass" if per_pass else "the data repeats"
    return f"{plan.steps_per_epoch} steps per epoch ({passes})"


def _train(lm, train_ds, val_ds, plan, start_step, callbacks):
    """Fit steps `start_step + 1 .. total_steps`; return Keras's merged history."""
    preprocessor = lm.preprocessor
    # kgpt2 feeds model inputs itself (text is tokenized here), so the
    # preprocessor stays detached during fit: KerasHub would apply it again.
    batches = RunBatches(
        shard_batches(train_ds, plan.data_shards, plan.data_shard_index),
        start_step, None if plan.tokenized else preprocessor,
    )
    if val_ds is not None:
        val_ds = shard_batches(val_ds, plan.data_shards, plan.data_shard_index)
    if val_ds is not None and not plan.tokenized:
        val_ds = val_ds.map(lambda *batch: preprocessor(*batch))
    history = {}
    checkpointer = callbacks.checkpointer
    with detached_preprocessor(lm), callbacks.interrupt, contextlib.closing(batches):
        for segment in fit_segments(start_step, plan.total_steps, plan.steps_per_epoch):
            step_before = checkpointer.step
            # The batches are model inputs already: skip KerasHub's fit,
            # which would only add preprocessing (and can't take a
            # generator), for Keras's own.
            segment_history = keras.Model.fit(
                lm,
                batches.generator(),
                initial_epoch=segment.initial_epoch,
                epochs=segment.epochs,
                steps_per_epoch=segment.steps_per_epoch,
                validation_data=val_ds,
                callbacks=callbacks.all,
                shuffle=False,  # the dataset's own order, resumable
                verbose=0,
            )
            for key, values in segment_history.history.items():
                history.setdefault(key, []).extend(values)
            if lm.stop_training:
                break
            batches.keep_unused(trained=checkpointer.step - step_before)
    return history


def _stop_reason(lm, callbacks):
    """`(stop_reason, message)` of a finished `_train`."""
    step = callbacks.checkpointer.step
    if callbacks.nan_stop.stopped_step is not None:
        return "nan", callbacks.nan_stop.message
    if callbacks.interrupt.interrupted:
        return "interrupted", (
            f"Interrupted ({callbacks.interrupt.interrupted}) at step {step}, saved; "
            "train the same run again (restore_from='latest', the default) to resume."
        )
    if lm.stop_training:
        return "stopped", f"A callback stopped training at step {step}."
    return "completed", None


def _report(run_directory, plan, start_step, stop_reason, history, callbacks=None, message=None):
    """Draw loss.png and return the `FinetuneResult`."""
    if callbacks is not None and run_directory.writer:
        title = f"{run_directory.path.name}: training loss"
        plot_loss_curve(run_directory.metrics_csv, run_directory.loss_png, title=title)
    latest = run_directory.latest()
    logger, meter = (callbacks.logger, callbacks.meter) if callbacks else (None, None)
    result = FinetuneResult(
        run_dir=run_directory.path,
        step=latest.step if latest else start_step,
        total_steps=plan.total_steps,
        stop_reason=stop_reason,
        history=history,
        metrics=dict(logger.last_row) if logger and logger.last_row else {},
        tokens_per_second=meter.tokens_per_second if meter else None,
        checkpoint=latest.path if latest else None,
        resumed_from=start_step,
        message=message,
    )
    if callbacks is not None and result.checkpoint is not None:
        path = run_directory.path
        log.info("Run %s is at step %d: kgpt2.load(%r) loads it.", path, result.step, str(path))
    return result


def finetune(lm, train_ds, val_ds=None, *, recipe=None, run=None, sampler=None, callbacks=None, **options):
    """Fine-tune `lm` with `recipe` in the run folder `run.checkpoint_dir/run.run_name`, resumably.

    Compiles `lm` with `kgpt2.compile_lm(lm, recipe)` (the reference recipe by
    default: Adam on a warmup + linear-decay schedule ending at
    `end_learning_rate` after the last step), trains it in place, and keeps
    the run folder current: the latest model as a KerasHub preset
    (`kgpt2.load(run_dir)`), optimizer, step and RNG state to resume
    exactly, `metrics.csv`, `loss.png` and `samples.txt`. Progress,
    checkpoint and sample lines go to the `kgpt2` logger (level INFO).

    Crash safety: checkpoints are written atomically (a crash or `kill -9`
    mid-save leaves the previous one loadable); Ctrl-C or SIGTERM saves the
    current step, then returns; a NaN/inf loss stops the run and keeps the
    last good checkpoint. Calling `finetune` again on the same run (with
    `restore_from="latest"`, the default) resumes at the saved step with the
    optimizer state, schedule position and data position of an
    uninterrupted run, and logs each recipe field (and the sequence length)
    that differs from the checkpoint's.

    Several processes (hosts, or one per accelerator) train one model when
    `run.num_processes` (or JAX's cluster environment) says so: call
    `kgpt2.connect_processes` in each before loading the model, and pass a
    distribution. With `"data_parallel"` each process feeds its own rows
    of every batch (whose size must divide by the process count) and
    gradients are reduced across processes; with `"model_parallel"` the
    weights are sharded over every process's devices and each process
    feeds the whole batch (load the model with
    `kgpt2.load(preset, distribution="model_parallel")` so that no process
    ever holds all of it; a model loaded whole is rebuilt sharded).
    Process 0 alone writes the run while the others wait for each
    checkpoint to be complete; the result's `metrics` are process 0's.

    Args:
        lm: a `GPT2CausalLM` (e.g. `kgpt2.load("gpt2_base_en")`).
        train_ds: a batched `tf.data.Dataset` of strings (tokenized with
            `lm.preprocessor`), or of tokenized `(x, y, sample_weight)`
            batches (e.g. packed ones from `kgpt2.data`).
        val_ds: an optional validation dataset of the same kind, evaluated
            after each epoch (val_loss and val_perplexity in metrics.csv).
        recipe: a `kgpt2.Recipe` (how to train); None for `Recipe()`.
        run: a `kgpt2.RunOptions` (where the run lives, what it records);
            None for `RunOptions()`.
        sampler: the sampler of the samples (see `kgpt2.compile_lm`).
        callbacks: extra `keras.callbacks.Callback`s, run after kgpt2's.
        **options: fields of `Recipe` or `RunOptions` applied on top of
            `recipe` and `run`, e.g. `steps=100, learning_rate=1e-3,
            run_name="poems"`.

    Returns:
        A `FinetuneResult`.

    Raises:
        ValueError: a bad option, dataset or run name (`kgpt2.InputError`),
            a run locked by another process, or a checkpoint that doesn't
            fit `lm` (the message says what and how to fix it).

    Example:
    ```python
    import tempfile, kgpt2
    import tensorflow as tf

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=32)
    poems = tf.data.Dataset.from_tensor_slices(["床前明月光", "疑是地上霜"] * 8).batch(4)
    recipe = kgpt2.Recipe(steps=8, learning_rate=1e-3)
    run = kgpt2.RunOptions(checkpoint_dir=tempfile.mkdtemp())
    result = kgpt2.finetune(lm, poems, recipe=recipe, run=run)
    print(result.step, result.stop_reason)
    print(kgpt2.load(result.run_dir).count_params())
    ```
    """
    extra_callbacks = list(callbacks or [])
    plan = _validate(lm, train_ds, val_ds, recipe, run, options, extra_callbacks)
    user_lm = lm
    with contextlib.ExitStack() as stack:
        # keras.distribution lays a variable out when it is created: train a
        # copy built under the distribution, then give the caller's model
        # the trained weights (the callback runs before the scope closes).
        lm = stack.enter_context(distributed(user_lm, plan.recipe.distribution))
        if lm is not user_lm:
            stack.callback(copy_weights, lm, user_lm)
        # Compile first: its errors (bad options) leave no run directory behind.
        compile_lm(lm, plan.recipe, sampler=sampler, dataset=train_ds)
        options = plan.run
        with RunDirectory.open(options.checkpoint_dir, options.run_name, options.keep_checkpoints) as run_directory:
            if options.tensorboard and run_directory.writer:  # checked as the run folder is
                check_log_dir(run_directory.path / TENSORBOARD_DIR)
            start_step = _open_run(run_directory, lm, plan)
            # The other processes go on once the writer has cleaned the run up.
            barrier("run opened")
            if start_step >= plan.total_steps:
                log.info("%s is already at step %d of %d: nothing to train.",
                         run_directory.path, start_step, plan.total_steps)
                return _report(run_directory, plan, start_step, "completed", {})
            used = _build_callbacks(run_directory, plan, start_step, lm.preprocessor, extra_callbacks)
            log.info(
                "Fine-tuning %s: steps %d-%d, %s, learning rate %g, %s, Keras backend %s",
                run_directory.path, start_step + 1, plan.total_steps, _describe_epochs(plan, train_ds),
                plan.recipe.learning_rate, plan.recipe.mixed_precision, keras.config.backend(),
            )
            history = _train(lm, train_ds, val_ds, plan, start_step, used)
            stop_reason, message = _stop_reason(lm, used)
            return _report(run_directory, plan, start_step, stop_reason, history, used, message)

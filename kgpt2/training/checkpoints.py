"""Training-run checkpoints: save a model's full training state, restore it.

The run folder's layout, its `LATEST` pointer, pruning and the rules for
adopting a folder live in `kgpt2.runs`; this module writes and reads what a
checkpoint holds: the model as a KerasHub preset, the optimizer's variables,
the model's RNG and LoRA state, and the training state.
"""

import json
import os
import pathlib
import shutil

import keras
import numpy as np

from kgpt2 import runs
from kgpt2.errors import WriteError
from kgpt2.runs import Checkpoint  # noqa: F401  (what `latest` returns)
from kgpt2.runs import RunError
from kgpt2.training import processes
from kgpt2.training.preprocessing import attached_preprocessor
from kgpt2.training.schedule import checkpointed_variables

FORMAT_VERSION = 1


def model_state_variables(lm):
    """The variables a resumed run needs beyond the preset's (merged) weights.

    The dropout layers' RNG states (so that a resumed run draws the same
    masks as an uninterrupted one), and every variable of LoRA-enabled
    layers: presets store `kernel + A @ B` merged, which can't be split back.

    Example:
    ```python
    import kgpt2
    from kgpt2.training.checkpoints import model_state_variables

    lm = kgpt2.load("gpt2_tiny_random")
    # The dropout layers' random-generator states.
    print(len(model_state_variables(lm)))  # 7
    ```
    """
    weight_ids = {id(weight) for weight in lm.weights}
    variables = [v for v in lm.variables if id(v) not in weight_ids]
    for layer in lm.backbone._flatten_layers(include_self=False):
        if getattr(layer, "lora_enabled", False):
            variables.extend(layer.variables)
    return variables


def _to_numpy(variable):
    return keras.ops.convert_to_numpy(variable.value)


def _save_arrays(path, variables):
    with open(path, "wb") as file:
        np.savez(file, **{str(i): _to_numpy(v) for i, v in enumerate(variables)})


def _load_arrays(path, variables, what, checkpoint):
    import zipfile

    try:
        with np.load(path) as arrays:
            values = [arrays[str(i)] for i in range(len(arrays.files))]
    except FileNotFoundError:
        raise RunError(
            f"{path} is missing, so the run can't resume exactly. "
            + runs.recovery_hint(checkpoint.parent)
        ) from None
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise RunError(
            f"{path} is damaged ({type(error).__name__}: {error}), so the run "
            "can't resume exactly. " + runs.recovery_hint(checkpoint.parent)
        ) from None
    shapes = [tuple(v.shape) for v in variables]
    if [tuple(value.shape) for value in values] != shapes:
        raise RunError(
            f"Checkpoint {checkpoint} doesn't fit this model: its {what} has "
            f"{len(values)} variables, the model's has {len(variables)} (or "
            "their shapes differ). Resume with the settings the run was "
            "trained with (lora_rank, gradient_accumulation_steps, "
            "mixed_precision, preset), or pass restore_from='fresh'."
        )
    for variable, value in zip(variables, values):
        variable.assign(value)


def _save_preset(lm, folder):
    # Save a mixed-precision model as float32 (its weights' dtype): KerasHub
    # can't load a preset whose config names a mixed policy, and Keras would
    # merge LoRA weights in the half-precision compute dtype.
    layers = [lm, *lm.backbone._flatten_layers(include_self=True)]
    policies = [layer.dtype_policy for layer in layers]
    try:
        for layer, policy in zip(layers, policies):
            if policy.compute_dtype != policy.variable_dtype:
                layer.dtype_policy = policy.variable_dtype
        lm.save_to_preset(str(folder))
    finally:
        for layer, policy in zip(layers, policies):
            layer.dtype_policy = policy


def _check_same_architecture(lm, preset):
    config_file = preset / "config.json"
    try:
        saved = json.loads(config_file.read_text("utf-8"))["config"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        raise RunError(
            f"{config_file} is unreadable ({type(error).__name__}: {error}). "
            + runs.recovery_hint(preset.parent.parent)
        ) from None
    current = lm.backbone.get_config()
    ignored = {"name", "trainable", "dtype"}
    different = sorted(
        key
        for key in set(saved) | set(current)
        if key not in ignored and saved.get(key) != current.get(key)
    )
    if different:
        details = ", ".join(f"{k}: run {saved.get(k)!r} vs model {current.get(k)!r}" for k in different)
        raise RunError(
            f"Can't resume from {preset.parent}: it holds a different "
            f"architecture ({details}). Pass the preset the run was trained "
            "from, a new run_name, or restore_from='fresh'."
        )


def _fsync_tree(folder):
    # Renames are atomic, but only flushed files make them durable after a
    # power loss.
    for root, _, files in os.walk(folder):
        for name in files:
            descriptor = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        runs.fsync_folder(root)


class RunDirectory:
    """The folder of one fine-tuning run, opened for training.

    Holds an exclusive lock while open (two processes can't train one run),
    writes checkpoints atomically, and keeps the newest `keep_checkpoints`
    on disk (see `kgpt2.runs` for the layout and the rules). In a
    multi-process group (`kgpt2.connect_processes`) only the writer,
    process 0, locks and writes; the others read the run and wait at each
    save until the writer's checkpoint is complete.

    Example:
    ```python
    import tempfile, kgpt2
    from kgpt2.training.checkpoints import RunDirectory

    lm = kgpt2.compile_lm(kgpt2.load("gpt2_tiny_random", sequence_length=32), steps=10)
    lm.optimizer.build(lm.trainable_variables)
    with RunDirectory.open(tempfile.mkdtemp(), "run1") as run_directory:
        run_directory.save(lm, step=0, state={})
        print(run_directory.latest().step)  # 0
        print(kgpt2.load(run_directory.path).preprocessor.sequence_length)  # 32
    ```
    """

    def __init__(self, path, keep_checkpoints=1, writer=True):
        if isinstance(keep_checkpoints, bool) or not isinstance(keep_checkpoints, int) or keep_checkpoints < 1:
            raise RunError(f"keep_checkpoints must be an integer >= 1, got {keep_checkpoints!r}.")
        self.path = pathlib.Path(path)
        self.keep_checkpoints = keep_checkpoints
        self.writer = writer
        self._lock = None

    @classmethod
    def open(cls, checkpoint_dir, run_name, keep_checkpoints=1):
        """Create or adopt, lock and clean up run `checkpoint_dir/run_name`.

        Refuses a folder that holds other files than a kgpt2 run's, and a
        folder it can't write, before anything is trained or restored.
        A process other than the group's writer only reads the run.
        """
        run_directory = cls(runs.resolve_run_dir(checkpoint_dir, run_name), keep_checkpoints, processes.is_writer())
        if not run_directory.writer:
            return run_directory
        runs.open_run(run_directory.path)
        run_directory._acquire_lock()
        return run_directory

    def _acquire_lock(self):
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks, no protection.
            return
        lock = open(self.path / runs.LOCK_FILE, "a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise RunError(
                f"Run {self.path} is being trained by another process (it "
                "holds the run's lock). Wait for it, stop it, or pick another "
                "run_name."
            ) from None
        self._lock = lock

    def close(self):
        """Release the run's lock."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    @property
    def metrics_csv(self):
        return self.path / "metrics.csv"

    @property
    def loss_png(self):
        return self.path / "loss.png"

    @property
    def samples_txt(self):
        return self.path / "samples.txt"

    def latest(self):
        """The checkpoint `LATEST` names, or None for a run without one."""
        folder = runs.latest_checkpoint(self.path)
        return None if folder is None else runs.read_checkpoint(folder)

    def start_over(self):
        """Remove the run's checkpoints and logs (`restore_from="fresh"`); the writer's job."""
        if self.writer:
            runs.start_over(self.path)

    def _previous(self):
        try:
            latest = self.latest()
        except RunError:
            latest = None
        if latest is None:
            return "The run had no checkpoint before this one."
        return (
            f"The previous checkpoint ({latest.path.name}, step {latest.step}) "
            f"is intact: kgpt2.load('{self.path}') loads it and "
            "restore_from='latest' resumes from it."
        )

    def save(self, lm, step, state, preprocessor=None):
        """Write a checkpoint of `lm` (model, optimizer, RNG) at `step`, atomically.

        `state` is stored in `training_state.json` with the step. If `lm`'s
        preprocessor is detached (tokenized data), pass it as `preprocessor`
        so that the preset keeps its tokenizer.

        Raises:
            WriteError: the checkpoint could not be written (disk full, a
                file size limit, permissions); the previous one is intact.

        Every process of a group calls it; the writer writes, and all
        return once the checkpoint is complete.
        """
        if not lm.optimizer.built:
            lm.optimizer.build(lm.trainable_variables)
        # Every process takes part in gathering what is sharded across them.
        with processes.gathered([*lm.variables, *lm.optimizer.variables]):
            if self.writer:
                checkpoint = self._write(lm, step, state, preprocessor)
        processes.barrier(f"checkpoint {step}")
        return checkpoint if self.writer else self.latest()

    def _write(self, lm, step, state, preprocessor):
        name = runs.new_checkpoint_name(step)
        staging = self.path / f"{runs.STAGING_PREFIX}{name}"
        final = self.path / name
        extras = model_state_variables(lm)
        state = dict(
            state,
            format=FORMAT_VERSION,
            step=step,
            optimizer_variables=[v.path for v in checkpointed_variables(lm.optimizer)],
            model_state_variables=[v.path for v in extras],
        )
        try:
            staging.mkdir()
            with attached_preprocessor(lm, preprocessor):
                _save_preset(lm, staging / runs.MODEL_FOLDER)
            _save_arrays(staging / "optimizer.npz", checkpointed_variables(lm.optimizer))
            _save_arrays(staging / "model_state.npz", extras)
            (staging / runs.STATE_FILE).write_text(json.dumps(state, indent=2), "utf-8")
            _fsync_tree(staging)
            os.rename(staging, final)
            runs.fsync_folder(self.path)
            runs.point_to(self.path, final)
        except Exception as error:  # h5py, numpy and Keras raise various types
            # LATEST still names the previous checkpoint: this one is no one's.
            for leftover in (staging, final):
                shutil.rmtree(leftover, ignore_errors=True)
            cause = getattr(error, "strerror", None) or f"{type(error).__name__}: {error}"
            raise WriteError(
                f"Could not write the checkpoint of step {step} in {self.path}: "
                f"{cause}. {self._previous()}"
            ) from error
        runs.prune_checkpoints(self.path, self.keep_checkpoints)
        return Checkpoint(final, state)

    def restore(self, lm, checkpoint):
        """Load `checkpoint` into `lm` (compiled as for training); return its state.

        Restores the weights, the dropout RNG states, unmerged LoRA weights
        and every optimizer variable (moments and iteration count, hence the
        learning-rate schedule's position).

        Raises:
            RunError: a file of the checkpoint is missing or damaged, or it
                holds another architecture; the message says how to go on.
        """
        _check_same_architecture(lm, checkpoint.preset)
        weights = checkpoint.preset / "model.weights.h5"
        if not weights.exists():
            weights = checkpoint.preset / "model.weights.json"  # sharded
        try:
            lm.backbone.load_weights(str(weights))
            if lm.has_task_weights():
                lm.load_task_weights(str(checkpoint.preset / "task.weights.h5"))
        except Exception as error:  # h5py and Keras raise various types
            raise RunError(
                f"Can't read the model weights in {checkpoint.preset} "
                f"({type(error).__name__}: {error}). " + runs.recovery_hint(self.path)
            ) from error
        _load_arrays(checkpoint.path / "model_state.npz", model_state_variables(lm), "model state", checkpoint.path)
        if not lm.optimizer.built:
            lm.optimizer.build(lm.trainable_variables)
        _load_arrays(checkpoint.path / "optimizer.npz", checkpointed_variables(lm.optimizer),
                     "optimizer", checkpoint.path)
        return checkpoint.state

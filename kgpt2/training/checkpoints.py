"""Crash-safe run directories: atomic checkpoints and a pointer to the latest.

Layout of a run, `checkpoint/<run_name>/`:

    LATEST                   names the latest checkpoint's preset folder,
                             e.g. `ckpt-00000120-3fa9c1/model`
    ckpt-00000120-3fa9c1/
        model/               a KerasHub preset: kgpt2.load("checkpoint/run1")
        optimizer.npz        optimizer variables (moments, iteration count)
        model_state.npz      dropout RNG states and unmerged LoRA weights
        training_state.json  step, epoch and the run's settings
    metrics.csv, loss.png, samples.txt

A checkpoint is written into a hidden staging folder, flushed to disk and
renamed into place; only then is `LATEST` replaced (written beside, flushed,
renamed over: atomic on POSIX), and only after that are older checkpoints
deleted. A crash or `kill -9` at any point leaves `LATEST` naming a complete
checkpoint, and the staging leftovers are removed when the run is next opened.
"""

import dataclasses
import json
import os
import pathlib
import secrets
import shutil

from kgpt2.presets.loading import RUN_POINTER_FILE
from kgpt2.presets.loading import resolve_run_pointer
from kgpt2.training import processes
from kgpt2.training.preprocessing import attached_preprocessor
from kgpt2.training.runs import run_directory

STAGING_PREFIX = ".staging-"
CHECKPOINT_PREFIX = "ckpt-"
LOCK_FILE = ".lock"
STATE_FILE = "training_state.json"
FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """One complete checkpoint folder of a run."""

    path: pathlib.Path
    state: dict

    @property
    def step(self):
        return self.state["step"]

    @property
    def preset(self):
        """The KerasHub preset folder of the checkpoint's model."""
        return self.path / "model"


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
    print(len(model_state_variables(lm)))  # 7 dropout RNG states
    ```
    """
    weight_ids = {id(weight) for weight in lm.weights}
    variables = [v for v in lm.variables if id(v) not in weight_ids]
    for layer in lm.backbone._flatten_layers(include_self=False):
        if getattr(layer, "lora_enabled", False):
            variables.extend(layer.variables)
    return variables


def _to_numpy(variable):
    import keras

    return keras.ops.convert_to_numpy(variable.value)


def _save_arrays(path, variables):
    import numpy as np

    with open(path, "wb") as file:
        np.savez(file, **{str(i): _to_numpy(v) for i, v in enumerate(variables)})


def _load_arrays(path, variables, what, checkpoint):
    import numpy as np

    with np.load(path) as arrays:
        values = [arrays[str(i)] for i in range(len(arrays.files))]
    shapes = [tuple(v.shape) for v in variables]
    if [tuple(value.shape) for value in values] != shapes:
        raise ValueError(
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
    saved = json.loads((preset / "config.json").read_text("utf-8"))["config"]
    current = lm.backbone.get_config()
    ignored = {"name", "trainable", "dtype"}
    different = sorted(
        key
        for key in set(saved) | set(current)
        if key not in ignored and saved.get(key) != current.get(key)
    )
    if different:
        details = ", ".join(f"{k}: run {saved.get(k)!r} vs model {current.get(k)!r}" for k in different)
        raise ValueError(
            f"Can't resume from {preset.parent}: it holds a different "
            f"architecture ({details}). Pass the preset the run was trained "
            "from, a new run_name, or restore_from='fresh'."
        )


def _fsync(path, directory=False):
    # Renames are atomic, but only flushed files make them durable after a
    # power loss; directories need their own fsync on POSIX.
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        descriptor = os.open(path, flags)
    except OSError:
        return  # e.g. directories can't be opened on Windows
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _fsync_tree(folder):
    for root, _, files in os.walk(folder):
        for name in files:
            _fsync(os.path.join(root, name))
        _fsync(root, directory=True)


class RunDirectory:
    """The folder of one fine-tuning run, opened for training.

    Holds an exclusive lock while open (two processes can't train one run),
    writes checkpoints atomically, and keeps the newest `keep_checkpoints`.
    In a multi-process group (`kgpt2.connect_processes`) only the writer,
    process 0, locks and writes; the others read the run and wait at each
    save until the writer's checkpoint is complete.

    Example:
    ```python
    import tempfile, kgpt2
    from kgpt2.training.checkpoints import RunDirectory

    lm = kgpt2.compile(kgpt2.load("gpt2_tiny_random", sequence_length=32), steps=10)
    lm.optimizer.build(lm.trainable_variables)
    with RunDirectory.open(tempfile.mkdtemp(), "run1") as run:
        run.save(lm, step=0, state={})
        print(run.latest().step)  # 0
        print(kgpt2.load(run.path).preprocessor.sequence_length)  # 32
    ```
    """

    def __init__(self, path, keep_checkpoints=1, writer=True):
        if isinstance(keep_checkpoints, bool) or not isinstance(keep_checkpoints, int) or keep_checkpoints < 1:
            raise ValueError(f"keep_checkpoints must be an integer >= 1, got {keep_checkpoints!r}.")
        self.path = pathlib.Path(path)
        self.keep_checkpoints = keep_checkpoints
        self.writer = writer
        self._written = []
        self._lock = None

    @classmethod
    def open(cls, checkpoint_dir, run_name, keep_checkpoints=1):
        """Create (if needed), lock and clean up run `checkpoint_dir/run_name`.

        A process other than the group's writer only reads the run.
        """
        run = cls(run_directory(checkpoint_dir, run_name), keep_checkpoints, processes.is_writer())
        if not run.writer:
            return run
        if run.path.exists() and not run.path.is_dir():
            raise ValueError(f"Run directory {run.path} is a file; remove it or pick another run_name.")
        run.path.mkdir(parents=True, exist_ok=True)
        run._acquire_lock()
        for leftover in run.path.glob(STAGING_PREFIX + "*"):
            # A save that a crash interrupted; nobody else writes here.
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
        return run

    def _acquire_lock(self):
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks, no protection.
            return
        lock = open(self.path / LOCK_FILE, "a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise ValueError(
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
        from kgpt2.presets import PresetError

        try:
            preset = resolve_run_pointer(self.path)
        except PresetError as error:
            raise ValueError(str(error)) from None
        if preset is None:
            return None
        folder = preset.parent
        state_file = folder / STATE_FILE
        if not state_file.is_file():
            raise ValueError(
                f"{folder} has a model but no {STATE_FILE}, so training can't "
                "resume from it; pass restore_from='fresh' to start over."
            )
        return Checkpoint(folder, json.loads(state_file.read_text("utf-8")))

    def save(self, lm, step, state, preprocessor=None):
        """Write a checkpoint of `lm` (model, optimizer, RNG) at `step`, atomically.

        `state` is stored in `training_state.json` with the step. If `lm`'s
        preprocessor is detached (tokenized data), pass it as `preprocessor`
        so that the preset keeps its tokenizer. Every process of a group
        calls it; the writer writes, and all return once the checkpoint is
        complete.
        """
        if not self.writer:
            processes.barrier(f"checkpoint {step}")
            return self.latest()
        name = f"{CHECKPOINT_PREFIX}{step:08d}-{secrets.token_hex(3)}"
        staging = self.path / f"{STAGING_PREFIX}{name}"
        final = self.path / name
        if not lm.optimizer.built:
            lm.optimizer.build(lm.trainable_variables)
        extras = model_state_variables(lm)
        state = dict(
            state,
            format=FORMAT_VERSION,
            step=step,
            optimizer_variables=[v.path for v in lm.optimizer.variables],
            model_state_variables=[v.path for v in extras],
        )
        staging.mkdir()
        try:
            with attached_preprocessor(lm, preprocessor):
                _save_preset(lm, staging / "model")
            _save_arrays(staging / "optimizer.npz", lm.optimizer.variables)
            _save_arrays(staging / "model_state.npz", extras)
            (staging / STATE_FILE).write_text(json.dumps(state, indent=2), "utf-8")
            _fsync_tree(staging)
            os.rename(staging, final)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        _fsync(self.path, directory=True)
        self._point_to(f"{name}/model")
        self._written.append(name)
        self._prune()
        processes.barrier(f"checkpoint {step}")
        return Checkpoint(final, state)

    def _point_to(self, relative_preset):
        pointer = self.path / RUN_POINTER_FILE
        temporary = self.path / f"{STAGING_PREFIX}{RUN_POINTER_FILE}-{secrets.token_hex(3)}"
        with open(temporary, "w", encoding="utf-8") as file:
            file.write(relative_preset + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, pointer)
        _fsync(self.path, directory=True)

    def _prune(self):
        keep = set(self._written[-self.keep_checkpoints:])
        for folder in self.path.glob(CHECKPOINT_PREFIX + "*"):
            if folder.is_dir() and folder.name not in keep:
                shutil.rmtree(folder, ignore_errors=True)

    def restore(self, lm, checkpoint):
        """Load `checkpoint` into `lm` (compiled as for training); return its state.

        Restores the weights, the dropout RNG states, unmerged LoRA weights
        and every optimizer variable (moments and iteration count, hence the
        learning-rate schedule's position).
        """
        _check_same_architecture(lm, checkpoint.preset)
        weights = checkpoint.preset / "model.weights.h5"
        if not weights.exists():
            weights = checkpoint.preset / "model.weights.json"  # sharded
        lm.backbone.load_weights(str(weights))
        if lm.has_task_weights():
            lm.load_task_weights(str(checkpoint.preset / "task.weights.h5"))
        _load_arrays(checkpoint.path / "model_state.npz", model_state_variables(lm), "model state", checkpoint.path)
        if not lm.optimizer.built:
            lm.optimizer.build(lm.trainable_variables)
        _load_arrays(checkpoint.path / "optimizer.npz", lm.optimizer.variables, "optimizer", checkpoint.path)
        return checkpoint.state

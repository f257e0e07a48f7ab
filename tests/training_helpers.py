"""Shared helpers of the tests/test_training_*.py files (not a test module)."""

import json
import os
import pathlib
import queue
import subprocess
import sys
import threading
import time

TESTS = pathlib.Path(__file__).parent
ROOT = TESTS.parent
TANG = TESTS / "fixtures" / "tang" / "poet.tang.0.json"
SEQUENCE_LENGTH = 32
# The training settings most tests share: the same settings compile to the
# same XLA program, which the JAX compilation cache then compiles only once.
# The tests that share them are about crashes, resuming and NaN losses, not
# samples: each would compile a sampler for nothing. Samples with their
# default options are tested by test_training_finetune.py (one device),
# test_distribution.py and test_processes.py (data and model parallel).
SETTINGS = dict(steps=8, epochs=2, learning_rate=2e-3, warmup_steps=2, sample_every=0)


def tang_texts():
    """The 60 poems of the Tang fixture, one string each (traditional script)."""
    return ["".join(record["paragraphs"]) for record in json.loads(TANG.read_text("utf-8"))]


def text_dataset(batch_size=4, count=None):
    import tensorflow as tf

    texts = tang_texts()[:count]
    return tf.data.Dataset.from_tensor_slices(texts).batch(batch_size, drop_remainder=True)


def tokenize_to_file(path, sequence_length=SEQUENCE_LENGTH):
    """Tokenize the fixture once with the real GPT-2 preprocessor into an .npz."""
    import keras_hub
    import numpy as np

    from kgpt2.presets import gpt2_tokenizer

    preprocessor = keras_hub.models.GPT2CausalLMPreprocessor(
        tokenizer=gpt2_tokenizer(), sequence_length=sequence_length
    )
    x, y, sample_weight = preprocessor(tang_texts())
    np.savez(
        path,
        token_ids=np.asarray(x["token_ids"]),
        padding_mask=np.asarray(x["padding_mask"]),
        y=np.asarray(y),
        sample_weight=np.asarray(sample_weight),
    )
    return path


def tokenized_dataset(npz_path, batch_size=4, count=None, shuffle_seed=None):
    """A dataset of `(x, y, sample_weight)` batches, as kgpt2.data's packed ones."""
    import numpy as np
    import tensorflow as tf

    with np.load(npz_path) as arrays:
        columns = {key: arrays[key][:count] for key in arrays.files}
    dataset = tf.data.Dataset.from_tensor_slices(
        (
            {"token_ids": columns["token_ids"], "padding_mask": columns["padding_mask"]},
            columns["y"],
            columns["sample_weight"],
        )
    )
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(columns["y"]), seed=shuffle_seed)
    return dataset.batch(batch_size, drop_remainder=True)


def enable_jax_compilation_cache():
    """The JAX compilation cache folder this pytest session shares.

    tests/conftest.py points this process and every process it starts at one
    folder before JAX is imported; tests hand it to their training children
    (`jax_cache` in the child's config). Pointing them at another folder here
    would make each child, and each xdist worker, compile its programs again.
    """
    return os.environ["KGPT2_TESTS_COMPILATION_CACHE"]


class Child:
    """A `tests/training_child.py` subprocess whose output lines we can await."""

    def __init__(self, mode, config, workdir):
        config_path = pathlib.Path(workdir) / f"{mode}-config.json"
        config_path.write_text(json.dumps(config), "utf-8")
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, str(TESTS / "training_child.py"), mode, str(config_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines = []
        self._queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, marker, timeout=300):
        """Return the first output line containing `marker`; fail on exit or timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(
                    f"child exited before printing {marker!r}:\n" + "\n".join(self.lines[-40:])
                )
            self.lines.append(line)
            if marker in line:
                return line
        self.process.kill()
        raise AssertionError(f"no {marker!r} within {timeout} s:\n" + "\n".join(self.lines[-40:]))

    def finish(self, timeout=300):
        """Wait for exit; return (returncode, all output)."""
        returncode = self.process.wait(timeout=timeout)
        while True:
            line = self._queue.get(timeout=10)
            if line is None:
                break
            self.lines.append(line)
        return returncode, "\n".join(self.lines)

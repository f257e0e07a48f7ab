"""Subprocess of the crash tests: train or save, then get killed or interrupted.

Usage: python tests/training_child.py train|save CONFIG.json
"""

import json
import logging
import pathlib
import signal
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).parent))

import keras
from training_helpers import SEQUENCE_LENGTH
from training_helpers import tokenized_dataset

import kgpt2

mode, config_path = sys.argv[1], sys.argv[2]
config = json.loads(pathlib.Path(config_path).read_text("utf-8"))
if config.get("jax_cache"):
    # The parent's cache: the same settings compile to the same program.
    import jax

    jax.config.update("jax_compilation_cache_dir", config["jax_cache"])


def say(*parts):
    print(*parts, flush=True)


# kgpt2 logs its progress; the parent reads it from our stdout.
logging.basicConfig(stream=sys.stdout, level=logging.WARNING, format="%(message)s")
logging.getLogger("kgpt2").setLevel(logging.INFO)


class PauseAfterStep(keras.callbacks.Callback):
    """Make step N's end last, so the parent can signal us right there.

    The pause ends after `seconds`, or once a Ctrl-C was received: kgpt2's
    handler then puts Python's default one back.
    """

    def __init__(self, step, seconds):
        super().__init__()
        self.pause_step, self.seconds, self.step = step, seconds, 0

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step != self.pause_step:
            return
        say(f"PAUSED after step {self.step}")
        deadline = time.monotonic() + self.seconds
        while time.monotonic() < deadline:
            if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                break
            time.sleep(0.05)


def hang(where):
    say(f"PAUSED in {where}")
    time.sleep(600)


lm = kgpt2.load("gpt2_tiny_random", sequence_length=SEQUENCE_LENGTH)
if mode == "train":
    dataset = tokenized_dataset(config["data"], **config.get("dataset", {}))
    pause = config.get("pause_after_step")
    callbacks = [PauseAfterStep(*pause)] if pause else []
    result = kgpt2.finetune(lm, dataset, callbacks=callbacks, **config["finetune"])
    say(f"RESULT {result.stop_reason} {result.step}")
elif mode == "save":
    import os

    import keras_hub

    from kgpt2.training.checkpoints import RunDirectory

    kgpt2.compile(lm, steps=10)
    with RunDirectory.open(config["checkpoint_dir"], "run1") as run:
        run.save(lm, step=1, state={})
        say("SAVED step 1")
        embeddings = lm.backbone.token_embedding.embeddings
        embeddings.assign(embeddings + 1.0)
        if config["pause_in"] == "staging":
            # The preset is half of the checkpoint: optimizer and state follow.
            original = keras_hub.models.GPT2CausalLM.save_to_preset

            def save_then_hang(self, *args, **kwargs):
                original(self, *args, **kwargs)
                hang("save_to_preset")

            keras_hub.models.GPT2CausalLM.save_to_preset = save_then_hang
        else:
            # The checkpoint folder is complete and in place; LATEST is next.
            replace = os.replace

            def hang_before_pointer(source, target):
                if str(target).endswith("LATEST"):
                    hang("os.replace")
                return replace(source, target)

            os.replace = hang_before_pointer
        run.save(lm, step=2, state={})
        say("SAVED step 2")

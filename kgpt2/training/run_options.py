"""`RunOptions`: where a fine-tuning run lives and what it records, in one frozen dataclass."""

import dataclasses
import os

from kgpt2.checks import check_choice
from kgpt2.checks import check_integer
from kgpt2.errors import InputError
from kgpt2.presets import MAX_SEQUENCE_LENGTH
from kgpt2.runs import validate_run_name
from kgpt2.training.options import Options
from kgpt2.training.options import option
from kgpt2.training.processes import process_options

RESTORE_FROM = ("latest", "fresh")


@dataclasses.dataclass(frozen=True)
class RunOptions(Options):
    """The run folder of a fine-tuning, and its checkpoint, log and sample cadence.

    Unlike a `Recipe`, these options don't change what the model learns:
    they may differ between the calls that train one run.

    Attributes:
        run_name: the run's folder inside `checkpoint_dir` (letters, digits,
            `_`, `-`, `.`; no paths).
        checkpoint_dir: the folder holding runs.
        restore_from: `"latest"` resumes the run's latest checkpoint (or
            starts from the given model if it has none); `"fresh"` starts
            from the given model and replaces the run's checkpoints and logs.
        save_every: steps between checkpoints; 0 (or None): only the last
            step and early stops, which are always saved.
        keep_checkpoints: how many checkpoints the run keeps.
        sample_every: steps between samples, and one at the last step
            (printed and appended to `samples.txt`); 0 (or None): none.
        sample_prompt: the samples' prompt (`""`: unconditional).
        sample_length: the samples' length in tokens, prompt included.
        print_every: steps between progress lines; 0 (or None): none.
        num_processes: how many processes train together (one per host or
            accelerator, see `kgpt2.connect_processes`); None: from the
            environment JAX's cluster detection reads, else 1.
        process_id: this process's number (0 writes the run's files); None:
            from the environment.
        coordinator: `HOST:PORT` of process 0; None: from the environment.
        tensorboard: also write TensorBoard event files (loss, accuracy,
            learning rate, tokens/s, validation, samples) to the run's
            `tensorboard/` folder; see `kgpt2.training.callbacks.TensorBoardLogger`.

    Example:
    ```python
    import kgpt2

    run = kgpt2.RunOptions(run_name="poems", sample_every=50)
    print(run.save_every, run.replace(save_every=0).save_every)  # 1000 0
    ```
    """

    run_name: str = option("run1", "the run's folder name inside --checkpoint-dir")
    checkpoint_dir: str = option("checkpoint", "the folder holding runs")
    restore_from: str = option(
        "latest", "latest: resume the run's latest checkpoint; fresh: start over, "
        "replacing the run's checkpoints and logs", choices=RESTORE_FROM,
    )
    save_every: int = option(1000, "steps between checkpoints (0: only at the end)")
    keep_checkpoints: int = option(1, "how many checkpoints the run keeps")
    sample_every: int = option(100, "steps between samples, plus one at the end (0: none)")
    sample_prompt: str = option("", "the samples' prompt")
    sample_length: int = option(100, "the samples' length in tokens, prompt included")
    print_every: int = option(10, "steps between progress lines (0: none)")
    num_processes: int | None = option(
        None, "processes training together, one per host or accelerator (JAX's distributed "
        "runtime; use with --distribution)", type=int,
        default_text="from JAX_NUM_PROCESSES or the cluster (SLURM, Open MPI, Cloud TPU), else 1",
    )
    process_id: int | None = option(
        None, "this process's number, 0 to num_processes - 1 (process 0 writes the run)", type=int,
        default_text="from JAX_PROCESS_ID or the cluster",
    )
    coordinator: str | None = option(
        None, "HOST:PORT of process 0, reachable from every process", type=str, metavar="HOST:PORT",
        default_text="from JAX_COORDINATOR_ADDRESS or the cluster",
    )
    tensorboard: bool = option(False, "also write TensorBoard event files to the run's tensorboard/ folder")

    def __post_init__(self):
        owner = type(self).__name__
        validate_run_name(self.run_name)
        if not isinstance(self.checkpoint_dir, (str, os.PathLike)) or not str(self.checkpoint_dir):
            raise InputError(f"{owner}: checkpoint_dir must be a folder path, got {self.checkpoint_dir!r}.")
        self._set("checkpoint_dir", os.fspath(self.checkpoint_dir))
        check_choice(owner, "restore_from", self.restore_from, RESTORE_FROM)
        for name in ("save_every", "sample_every", "print_every"):
            value = check_integer(owner, name, getattr(self, name), minimum=0, allow_none=True)
            self._set(name, value or 0)
        check_integer(owner, "keep_checkpoints", self.keep_checkpoints, minimum=1)
        if not isinstance(self.sample_prompt, str):
            raise InputError(f"{owner}: sample_prompt must be a string, got {self.sample_prompt!r}.")
        check_integer(owner, "sample_length", self.sample_length, minimum=1, maximum=MAX_SEQUENCE_LENGTH)
        process_options(self.num_processes, self.process_id, self.coordinator)
        if not isinstance(self.tensorboard, bool):
            raise InputError(f"{owner}: tensorboard must be True or False, got {self.tensorboard!r}.")

    def check_sample_prompt(self, tokenizer):
        """Raise `InputError` if `sample_prompt` leaves no room in `sample_length`.

        The sample's length counts the prompt's tokens and the start token;
        a prompt that fills it would be cut and give no new tokens.

        Example:
        ```python
        import kgpt2

        lm = kgpt2.load("gpt2_tiny_random", sequence_length=32)
        kgpt2.RunOptions(sample_prompt="Once upon a time").check_sample_prompt(lm.preprocessor.tokenizer)
        ```
        """
        if not self.sample_every or not self.sample_prompt:
            return
        used = len(tokenizer(self.sample_prompt)) + 1  # the start token
        if used >= self.sample_length:
            raise InputError(
                f"RunOptions: sample_prompt is {used} tokens with the start token, "
                f"so sample_length={self.sample_length} leaves no room for new "
                f"tokens; pass a sample_length above {used} or a shorter prompt."
            )

"""`kgpt2 finetune`: fine-tune a preset on a data spec in a named, resumable run.

The data flags are this command's own; every training and run flag is
generated from the fields of `kgpt2.Recipe` and `kgpt2.RunOptions`.
"""

import logging

import kgpt2
from kgpt2.cli.option_flags import GivenOnce
from kgpt2.cli.option_flags import add_option_flags
from kgpt2.cli.option_flags import given_options
from kgpt2.keras_backend import use_training_backend
from kgpt2.training.processes import process_options
from kgpt2.training.recipe import Recipe
from kgpt2.training.run_options import RunOptions

log = logging.getLogger(__name__)


def register(subparsers):
    parser = subparsers.add_parser(
        "finetune",
        help="fine-tune a preset on your data (named runs, resumable checkpoints)",
        description="Fine-tune --preset on --data with warmup + linear-decay Adam, "
        "saving checkpoints atomically to CHECKPOINT_DIR/RUN_NAME. Run the "
        "same command again to resume from the latest checkpoint; Ctrl-C "
        "saves before exiting. `kgpt2.load(\"checkpoint/run1\")` (or --preset "
        "checkpoint/run1) loads the latest model. Without KERAS_BACKEND, a machine "
        "with no GPU/TPU trains on TensorFlow (faster there), others on JAX.",
    )
    data = parser.add_argument_group("model and data")
    data.add_argument("--preset", default="gpt2_base_en",
                      help="preset name or folder (default: gpt2_base_en; offline: gpt2_tiny_random)")
    data.add_argument("--data", required=True, metavar="SPEC", action=GivenOnce,
                      help="tfds:NAME[/CONFIG], poetry:PATH, text:PATH, csv:PATH or jsonl:PATH#field; "
                      "given once (to train on several text files, join them into one file, or "
                      "put poems in one poetry: folder)")
    data.add_argument("--encoding", default=None,
                      help="the text encoding of a text:, csv: or jsonl: file, e.g. latin-1 "
                      "(default: utf-8, with or without a byte-order mark)")
    data.add_argument("--text-key", default=None,
                      help="the text feature of a tfds: or jsonl: spec (default: none)")
    data.add_argument("--validation-split", type=float, default=None,
                      help="fraction of the texts held out for validation after each epoch (default: none)")
    data.add_argument("--pack", action="store_true",
                      help="tokenize and pack texts into full sequence-length windows (default: off)")
    data.add_argument("--seed", type=int, default=0, help="data shuffling seed (default: 0)")
    data.add_argument("--batch-size", type=int, default=8, help="examples per batch (default: 8)")
    data.add_argument("--sequence-length", type=int, default=256,
                      help="tokens per example (default: 256)")
    add_option_flags(parser.add_argument_group("training recipe"), Recipe)
    add_option_flags(parser.add_argument_group("run folder, checkpoints and samples"), RunOptions)
    parser.set_defaults(handler=run)


def _load_data(args, lm):
    options = dict(
        text_key=args.text_key,
        batch_size=args.batch_size,
        seed=args.seed,
        validation_split=args.validation_split,
        pack=args.pack,
        sequence_length=args.sequence_length if args.pack else None,
        tokenizer=lm.preprocessor.tokenizer if args.pack else None,
    )
    if args.encoding is not None:  # an option of the text: adapters only
        options["encoding"] = args.encoding
    if args.validation_split is None:
        return kgpt2.data.from_spec(args.data, **options), None
    train_ds = kgpt2.data.from_spec(args.data, subset="training", **options)
    val_ds = kgpt2.data.from_spec(args.data, subset="validation", **options)
    return train_ds, val_ds


def run(args):
    # Options are checked before a (possibly large) model is loaded.
    recipe = kgpt2.Recipe.for_preset(args.preset, **given_options(args, kgpt2.Recipe))
    run_options = kgpt2.RunOptions(**given_options(args, kgpt2.RunOptions))
    kgpt2.data.check_spec(args.data, text_key=args.text_key, encoding=args.encoding)
    processes = process_options(run_options.num_processes, run_options.process_id, run_options.coordinator)
    backend, reason = use_training_backend(
        distributed=recipe.distribution is not None or processes != (1, 0, None),
        mixed_precision=recipe.mixed_precision == "mixed_bfloat16")
    if reason:  # kgpt2 chose: say why (the user's own choice needs no comment)
        log.info("Keras backend: %s (%s)", backend, reason)
    # JAX's distributed runtime must start before the model touches a device.
    kgpt2.connect_processes(run_options.num_processes, run_options.process_id, run_options.coordinator)
    # Created laid out: model_parallel never holds the whole model in one process.
    lm = kgpt2.load(args.preset, sequence_length=args.sequence_length, distribution=recipe.distribution)
    train_ds, val_ds = _load_data(args, lm)
    result = kgpt2.finetune(lm, train_ds, val_ds, recipe=recipe, run=run_options)
    if result.stop_reason == "interrupted":
        log.warning(
            "Interrupted at step %d, saved: run the same command again to resume.", result.step
        )
        return 130
    if result.stop_reason == "nan":
        log.error(result.message)
        return 1
    return 0

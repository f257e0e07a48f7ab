"""`kgpt2 finetune`: fine-tune a preset on a data spec in a named, resumable run."""

import sys

from kgpt2.training.distribution import DISTRIBUTIONS


def register(subparsers):
    parser = subparsers.add_parser(
        "finetune",
        help="fine-tune a preset on your data (named runs, resumable checkpoints)",
        description="Fine-tune --preset on --data with polynomial-decay Adam, "
        "saving checkpoints atomically to CHECKPOINT_DIR/RUN_NAME. Run the "
        "same command again to resume from the latest checkpoint; Ctrl-C "
        "saves before exiting. `kgpt2.load(\"checkpoint/run1\")` (or --preset "
        "checkpoint/run1) loads the latest model.",
    )
    parser.add_argument("--preset", default="gpt2_base_en",
                        help="preset name or folder (default gpt2_base_en; offline: gpt2_tiny_random)")
    parser.add_argument("--data", required=True, metavar="SPEC",
                        help="tfds:NAME[/CONFIG], poetry:PATH, text:PATH, csv:PATH or jsonl:PATH#field")
    parser.add_argument("--text-key", default=None, help="the text feature of a tfds: or jsonl: spec")
    parser.add_argument("--validation-split", type=float, default=None,
                        help="fraction of the texts held out for validation after each epoch")
    parser.add_argument("--pack", action="store_true",
                        help="tokenize and pack texts into full sequence-length windows")
    parser.add_argument("--seed", type=int, default=0, help="data shuffling seed")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, default=None, help="total training steps of the run")
    length.add_argument("--epochs", type=int, default=None, help="passes over the data (default 1)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--sequence-length", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--warmup-steps", type=int, default=0)
    parser.add_argument("--end-learning-rate", type=float, default=0.0)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--clipnorm", type=float, default=None, help="clip the global gradient norm")
    parser.add_argument("--lora-rank", type=int, default=None, help="train LoRA adapters of this rank only")
    parser.add_argument("--mixed-precision", nargs="?", const=True, default=False,
                        metavar="POLICY", help="bfloat16 compute (or POLICY: mixed_float16)")
    parser.add_argument("--gradient-accumulation-steps", type=int, default=1)
    parser.add_argument("--distribution", choices=DISTRIBUTIONS, default=None,
                        help="train over all local devices with keras.distribution (JAX backend); "
                        "`kgpt2 plan` says what fits")
    parser.add_argument("--run-name", default="run1")
    parser.add_argument("--checkpoint-dir", default="checkpoint")
    parser.add_argument("--restore-from", choices=["latest", "fresh"], default="latest")
    parser.add_argument("--save-every", type=int, default=1000)
    parser.add_argument("--keep-checkpoints", type=int, default=1)
    parser.add_argument("--sample-every", type=int, default=0, help="0: no samples")
    parser.add_argument("--sample-prompt", default="")
    parser.add_argument("--sample-length", type=int, default=100)
    parser.add_argument("--print-every", type=int, default=10)
    parser.set_defaults(handler=run)


def run(args):
    import kgpt2
    from kgpt2.training import validate_run_name

    validate_run_name(args.run_name)  # before loading a large model
    lm = kgpt2.load(args.preset, sequence_length=args.sequence_length)
    data = kgpt2.data.from_spec(
        args.data,
        text_key=args.text_key,
        batch_size=args.batch_size,
        seed=args.seed,
        validation_split=args.validation_split,
        pack=args.pack,
        sequence_length=args.sequence_length if args.pack else None,
        tokenizer=lm.preprocessor.tokenizer if args.pack else None,
    )
    train_ds, val_ds = data if args.validation_split is not None else (data, None)
    result = kgpt2.finetune(
        lm,
        train_ds,
        val_ds,
        epochs=args.epochs or 1,
        steps=args.steps,
        run_name=args.run_name,
        checkpoint_dir=args.checkpoint_dir,
        restore_from=args.restore_from,
        save_every=args.save_every,
        sample_every=args.sample_every,
        sample_prompt=args.sample_prompt,
        sample_length=args.sample_length,
        print_every=args.print_every,
        learning_rate=args.learning_rate,
        warmup_steps=args.warmup_steps,
        weight_decay=args.weight_decay,
        clipnorm=args.clipnorm,
        end_learning_rate=args.end_learning_rate,
        lora_rank=args.lora_rank,
        mixed_precision=args.mixed_precision,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        distribution=args.distribution,
        keep_checkpoints=args.keep_checkpoints,
    )
    if result.stop_reason == "interrupted":
        print(f"kgpt2 finetune: {result.message}", file=sys.stderr)
        return 130
    if result.stop_reason == "nan":
        print(f"kgpt2 finetune: error: {result.message}", file=sys.stderr)
        return 1
    return 0

"""`kgpt2 generate`: samples from a preset or a fine-tuned checkpoint."""

import argparse
import logging

import kgpt2
from kgpt2.checks import check_seed
from kgpt2.errors import InputError
from kgpt2.errors import WriteError

# Flag -> kgpt2.samplers option name; flags left unset keep the default.
SAMPLER_FLAGS = {
    "temperature": "temperature",
    "top_k": "k",
    "top_p": "p",
    "repetition_penalty": "repetition_penalty",
    "no_repeat_ngram": "no_repeat_ngram_size",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "num_beams": "num_beams",
    "valid_utf8": "valid_utf8",
}


def register(subparsers):
    parser = subparsers.add_parser(
        "generate",
        help="generate text from a preset or a fine-tuned checkpoint",
        description="Generate samples with a sampler and gpt-2-simple's options, "
        "print them (each followed by a line of '='), then the tokens per "
        "second. Works offline with gpt2_tiny_random / gpt2_base_random or a "
        "folder written by `kgpt2 finetune` or `kgpt2.save`.",
    )
    parser.add_argument("--preset", required=True,
                        help="preset name, preset folder, or finetune run folder")
    parser.add_argument("--prompt", default=None,
                        help="text to continue (default: unconditional, from <|endoftext|>)")
    parser.add_argument("--sampler", default="top_k",
                        help="greedy, random, top_k, top_p, beam or contrastive "
                        "(default: top_k)")
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--top-k", type=int, help="k of top_k (and top_p, contrastive)")
    parser.add_argument("--top-p", type=float, help="p of top_p")
    parser.add_argument("--repetition-penalty", type=float,
                        help="CTRL/HF penalty on tokens already present, e.g. 1.2")
    parser.add_argument("--no-repeat-ngram", type=int,
                        help="never repeat an n-gram of this size")
    parser.add_argument("--presence-penalty", type=float,
                        help="OpenAI's: subtracted from every token already generated "
                        "(-2 to 2)")
    parser.add_argument("--frequency-penalty", type=float,
                        help="OpenAI's: subtracted per occurrence in the generated "
                        "text (-2 to 2)")
    parser.add_argument("--prepend-bos", action=argparse.BooleanOptionalAction,
                        default=None,
                        help="start the prompt with <|endoftext|> (default: the "
                        "preprocessor's add_start_token, true for kgpt2 models); "
                        "--no-prepend-bos continues it as Hugging Face does")
    parser.add_argument("--valid-utf8", action="store_true", default=None,
                        help="only pick tokens that keep the text valid UTF-8 (no "
                        "U+FFFD from byte tokens that cannot form a character)")
    parser.add_argument("--num-beams", type=int, help="beams of the beam sampler")
    parser.add_argument("--seed", type=int, help="seed of the sampler's random stream")
    parser.add_argument("--max-length", type=int, default=128,
                        help="tokens per sample, prompt included (default: 128)")
    parser.add_argument("--nsamples", type=int, default=1, help="samples to generate")
    parser.add_argument("--batch-size", type=int, default=1, help="samples per batch")
    parser.add_argument("--truncate", default=None,
                        help="cut each sample at the first occurrence of this text")
    parser.add_argument("--no-include-prefix", dest="include_prefix",
                        action="store_false", help="leave the prompt out of the samples")
    parser.add_argument("--output", default=None,
                        help="also write the samples to this file (checked before "
                        "generating; if writing still fails, the samples are printed)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --output file (refused otherwise)")
    parser.add_argument("--stream", action="store_true",
                        help="print one sample's text as it is generated (greedy, "
                        "random, top_k or top_p)")
    parser.set_defaults(handler=run, flag_names={"sequence_length": "--max-length"})


def _flag(name):
    return "--" + name.replace("_", "-")


def _check_sampler_flags(args):
    """Refuse a sampler flag the chosen sampler does not take, naming the flag."""
    try:
        allowed = kgpt2.samplers.options(args.sampler)
    except ValueError:
        return  # an unknown sampler: kgpt2.samplers.get says which exist
    given = [flag for flag in SAMPLER_FLAGS if getattr(args, flag) is not None]
    unused = [flag for flag in given if SAMPLER_FLAGS[flag] not in allowed]
    if unused:
        takes = [_flag(flag) for flag, option in SAMPLER_FLAGS.items() if option in allowed]
        raise InputError(
            f"{', '.join(_flag(flag) for flag in unused)} does not apply to "
            f"--sampler {args.sampler}; it takes {', '.join(takes) or 'none of the sampler flags'}."
        )
def _stream(args, options):
    import sys

    if args.nsamples != 1 or args.output or args.truncate:
        raise InputError("--stream prints one sample: leave out --nsamples, "
                         "--output and --truncate.")
    lm = kgpt2.load(args.preset, sequence_length=args.max_length)
    stream = kgpt2.generation.stream_text(
        lm, args.prompt, sampler=args.sampler, max_length=args.max_length,
        seed=args.seed, prepend_bos=args.prepend_bos, **options,
    )
    if args.include_prefix and args.prompt:
        sys.stdout.write(args.prompt)
    for piece in stream:
        sys.stdout.write(piece)
        sys.stdout.flush()
    print()
    # The text alone on stdout, as without --stream; the speed line on stderr.
    logging.getLogger("kgpt2").info(
        "%d new tokens in %.2f s: %.1f tokens/s",
        stream.new_tokens, stream.seconds, stream.tokens_per_second,
    )


def run(args):
    # Local: kgpt2.generation loads Keras, which `kgpt2 --help` must not.
    from kgpt2.generation.samples_file import SamplesNotWrittenError
    from kgpt2.generation.samples_file import check_destination
    from kgpt2.generation.samples_file import format_samples

    options = {
        option: getattr(args, flag)
        for flag, option in SAMPLER_FLAGS.items()
        if getattr(args, flag) is not None
    }
    _check_sampler_flags(args)
    # Fail before loading the model, not after generating.
    check_seed(None, args.seed)
    if args.stream:
        return _stream(args, options)
    sampler = kgpt2.samplers.get(args.sampler, **options)
    if args.output is not None:
        check_destination(args.output, args.overwrite)
    # Load with room for --max-length: a checkpoint's preprocessor keeps the
    # (often short) training length.
    lm = kgpt2.load(args.preset, sequence_length=args.max_length)
    try:
        texts = kgpt2.generate(
            lm,
            args.prompt,
            sampler=sampler,
            max_length=args.max_length,
            nsamples=args.nsamples,
            batch_size=args.batch_size,
            truncate=args.truncate,
            include_prefix=args.include_prefix,
            seed=args.seed,
            destination_path=args.output,
            overwrite=args.overwrite,
            prepend_bos=args.prepend_bos,
        )
    except SamplesNotWrittenError as error:
        # The work is done: show it rather than lose it.
        print(format_samples(error.texts), end="")
        raise WriteError(
            f"{error.reason} The samples are printed above; they were not saved."
        ) from error
    # The samples alone on stdout (pipe them anywhere); the speed line goes
    # to the "kgpt2" logger, which the CLI shows on stderr.
    print(format_samples(texts), end="")
    if args.output:
        logging.getLogger("kgpt2").info("Samples also written to %s", args.output)

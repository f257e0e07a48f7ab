"""`kgpt2 serve`: an OpenAI-compatible API and a playground page for a model."""

import argparse


def register(subparsers):
    parser = subparsers.add_parser(
        "serve",
        help="serve a model over an OpenAI-compatible HTTP API",
        description="Serve a preset, a fine-tuned run folder or a Hugging Face "
        "folder: POST /v1/completions and /v1/chat/completions (streaming with "
        "stream=true), GET /v1/models, GET /health, and a playground page at /. "
        "Concurrent requests share one decode loop (continuous batching). Every "
        "request field is honoured or refused with a 400 naming it. Token "
        "convention: by default each completion prompt starts with "
        "<|endoftext|> (as kgpt2 fine-tunes and GPT-2 saw documents), counted in "
        "usage.prompt_tokens once per prompt; --no-prepend-bos sends the prompt "
        "alone, as transformers serve and OpenAI do. Chat prompts are the chat "
        "template's text as is. Stop with Ctrl+C or SIGTERM.",
    )
    parser.add_argument("--preset", required=True,
                        help="preset name, preset folder, or finetune run folder")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=8000,
                        help="port (default: 8000; 0 picks a free one)")
    parser.add_argument("--max-batch-size", type=int, default=16,
                        help="the most rows decoded together; each step runs only as "
                        "many as the busy requests need (default: 16)")
    parser.add_argument("--max-queue", type=int, default=64,
                        help="requests that may wait; more get HTTP 429 (default: 64)")
    parser.add_argument("--api-key", default=None,
                        help="require 'Authorization: Bearer KEY' (default: "
                        "$KGPT2_API_KEY, if set)")
    parser.add_argument("--context-length", type=int, default=None,
                        help="tokens per request, prompt included (default: 1024)")
    parser.add_argument("--prepend-bos", action=argparse.BooleanOptionalAction,
                        default=None,
                        help="start each completion prompt with <|endoftext|> "
                        "(default: the model preprocessor's add_start_token, true for "
                        "kgpt2 presets and fine-tunes); --no-prepend-bos continues "
                        "prompts as Hugging Face does")
    parser.add_argument("--chat-template", default=None, metavar="FILE",
                        help="Jinja chat template for /v1/chat/completions, in "
                        "transformers' format (default: the chat_template of a Hugging "
                        "Face folder given as --preset, if any)")
    parser.set_defaults(handler=run, flag_names={"sequence_length": "--context-length"})


def run(args):
    from kgpt2.keras_backend import keep_tensorflow_out

    # The server never runs TensorFlow: loading it would only cost memory.
    keep_tensorflow_out()
    # Local: kgpt2.serving loads Keras and FastAPI, which `kgpt2 --help` must not.
    from kgpt2.serving import serve

    def ready(port):
        print(f"kgpt2 serve: serving on http://{args.host}:{port}/ "
              "(Ctrl+C to stop)", flush=True)

    serve(
        args.preset, host=args.host, port=args.port,
        max_batch_size=args.max_batch_size, max_queue=args.max_queue,
        api_key=args.api_key, context_length=args.context_length, ready=ready,
        prepend_bos=args.prepend_bos, chat_template=args.chat_template,
    )

"""`kgpt2 serve` against `transformers serve` under the same load, side by side.

Usage (from the repository root, after `kgpt2 export gpt2_base_random DIR
--format transformers`, with the peer installed as the developers' guide
says: `python3 -m venv /tmp/hfpeer && /tmp/hfpeer/bin/pip install
torch==2.13.0 "transformers[serving]==5.24.0"`):

    .venv/bin/python benchmarks/serve_load.py --model DIR \
        [--servers kgpt2,hf,hf-cb] [--clients 1,8,16] [--requests-per-client 2] \
        [--max-tokens 64] [--hf-bin /tmp/hfpeer/bin/transformers] \
        [--hf-threads 1] [--bench] [--json FILE]

Each server runs in turn, alone, from the same exported weights:
- `kgpt2`: `kgpt2 serve --preset DIR --no-prepend-bos` (the prompt's own
  tokens, as transformers conditions on them), every other flag default;
- `hf`: `transformers serve DIR`; `hf-cb`: with `--continuous-batching`;
  both with `OMP_NUM_THREADS=--hf-threads` (1 is PyTorch's best here).

For each it measures the seconds from launch until `/health` answers, the
first request's latency right after that, then for each client count that
many threads, each sending `--requests-per-client` streamed greedy
completions of `--max-tokens` tokens one after the other with the official
`openai` client ("The quick brown fox"). It reports the total completion
tokens/s, the time to first token and the request latency (p50 / p95), and
the server's peak resident memory over the whole run (sampled every 0.1 s,
its child processes included). `--bench` also runs `kgpt2 bench`'s batch-1
greedy measurement of the same model, the bar a single client is held to.
"""

import argparse
import collections
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

PROMPT = "The quick brown fox"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def command_for(server, args, port):
    """The command line and environment that start `server` on `port`."""
    if server == "kgpt2":
        command = [sys.executable, "-m", "kgpt2", "serve", "--preset", args.model,
                   "--port", str(port), "--no-prepend-bos"]
        return command, dict(os.environ)
    command = [args.hf_bin, "serve", args.model, "--host", "127.0.0.1", "--port", str(port),
               "--device", "cpu", "--dtype", "float32"]
    if server == "hf-cb":
        command.append("--continuous-batching")
    environment = {**os.environ, "OMP_NUM_THREADS": str(args.hf_threads),
                   "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return command, environment


class PeakMemory:
    """Sample a process tree's resident memory until stopped; keep the peak."""

    def __init__(self, pid):
        import psutil

        self._process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                tree = [self._process, *self._process.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in tree))
            except Exception:  # The process ended.
                return
            time.sleep(0.1)

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self.peak


def wait_until_healthy(port, process, seconds=600):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the server did not become healthy")


def one_request(client, model, max_tokens):
    """Stream one greedy completion; return its timings and token count, or its error."""
    started = time.perf_counter()
    first = None
    pieces = 0
    usage = None
    try:
        stream = client.completions.create(
            model=model, prompt=PROMPT, max_tokens=max_tokens, temperature=0.0,
            stream=True, stream_options={"include_usage": True},
        )
        for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage.completion_tokens
            if chunk.choices and chunk.choices[0].text:
                pieces += 1
                if first is None:
                    first = time.perf_counter() - started
    except Exception as error:  # Counted by kind, not fatal to the run.
        return {"error": type(error).__name__}
    return {"ttft": first, "latency": time.perf_counter() - started,
            "tokens": usage if usage is not None else pieces}


def percentile(values, q):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def run_level(client, model, clients, args):
    results = []
    lock = threading.Lock()

    def one_client():
        for _ in range(args.requests_per_client):
            result = one_request(client, model, args.max_tokens)
            with lock:
                results.append(result)

    started = time.perf_counter()
    threads = [threading.Thread(target=one_client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    good = [r for r in results if "error" not in r]
    ttfts = [r["ttft"] for r in good if r["ttft"] is not None]
    return {
        "clients": clients,
        "requests": len(results),
        "tokens": sum(r["tokens"] for r in good),
        "seconds": wall,
        "tokens_per_second": sum(r["tokens"] for r in good) / wall,
        "ttft_p50": percentile(ttfts, 50),
        "ttft_p95": percentile(ttfts, 95),
        "latency_p50": percentile([r["latency"] for r in good], 50),
        "latency_p95": percentile([r["latency"] for r in good], 95),
        "errors": dict(collections.Counter(r["error"] for r in results if "error" in r)),
    }


def measure_server(server, args):
    import openai

    port = free_port()
    command, environment = command_for(server, args, port)
    launched = time.perf_counter()
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    memory = PeakMemory(process.pid)
    try:
        wait_until_healthy(port, process)
        ready = time.perf_counter() - launched
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none",
                               max_retries=0, timeout=600)
        model = client.models.list().data[0].id
        first = one_request(client, model, args.max_tokens)
        levels = [run_level(client, model, int(c), args) for c in args.clients.split(",")]
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        peak = memory.stop()
    return {"server": server, "ready_seconds": ready, "first_request": first,
            "levels": levels, "peak_rss_bytes": peak, "command": command}


def bench_batch_one(args):
    """`kgpt2 bench`'s steady greedy tokens/s at batch size 1 on the same model."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        report = os.path.join(folder, "bench.json")
        subprocess.run([sys.executable, "-m", "kgpt2", "bench", "--preset", args.model,
                        "--batch-sizes", "1", "--samplers", "greedy", "--new-tokens",
                        str(args.max_tokens), "--train", "none", "--quiet", "--json", report],
                       check=True, stdout=subprocess.DEVNULL)
        with open(report, encoding="utf-8") as file:
            data = json.load(file)
    return data["summary"][0]["steady_tok_per_s"]


def print_table(results, bench, max_tokens):
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Streamed greedy completions of up to {max_tokens} tokens, "
                  "openai client, loopback")
    table.add_column("server")
    table.add_column("clients", justify="right")
    for column in ("tokens/s", "TTFT p50 / p95 (s)", "latency p50 / p95 (s)", "errors"):
        table.add_column(column, justify="right")
    for result in results:
        for level in result["levels"]:
            table.add_row(
                result["server"], str(level["clients"]), f"{level['tokens_per_second']:.1f}",
                f"{level['ttft_p50']:.2f} / {level['ttft_p95']:.2f}",
                f"{level['latency_p50']:.2f} / {level['latency_p95']:.2f}",
                ", ".join(f"{k}: {v}" for k, v in level["errors"].items()) or "none",
            )
    console = Console()
    console.print(table)
    start = Table(title="Start-up and memory")
    for column in ("server", "launch until /health (s)", "first request: TTFT / latency (s)",
                   "peak RSS (GiB)"):
        start.add_column(column, justify="right")
    for result in results:
        first = result["first_request"]
        start.add_row(result["server"], f"{result['ready_seconds']:.1f}",
                      f"{first.get('ttft') or float('nan'):.2f} / "
                      f"{first.get('latency', float('nan')):.2f}",
                      f"{result['peak_rss_bytes'] / 2**30:.2f}")
    console.print(start)
    if bench:
        console.print(f"kgpt2 bench, batch 1, greedy, steady: {bench:.1f} tokens/s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="a transformers GPT-2 folder")
    parser.add_argument("--servers", default="kgpt2,hf,hf-cb")
    parser.add_argument("--clients", default="1,8,16")
    parser.add_argument("--requests-per-client", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--hf-bin", default="/tmp/hfpeer/bin/transformers")
    parser.add_argument("--hf-threads", type=int, default=1)
    parser.add_argument("--bench", action="store_true",
                        help="also measure kgpt2 bench's batch-1 greedy tokens/s")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    # The bar's own measurement first, beside kgpt2's (machines drift).
    bench = bench_batch_one(args) if args.bench else None
    results = [measure_server(server, args) for server in args.servers.split(",")]
    print_table(results, bench, args.max_tokens)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump({"results": results, "bench_batch_1_tokens_per_second": bench,
                       "settings": vars(args)}, file, indent=2)


if __name__ == "__main__":
    main()

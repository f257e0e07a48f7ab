"""Load test of `kgpt2 serve`: concurrent streaming clients on loopback.

Usage (from the repository root):

    PYTHONPATH=$PWD python benchmarks/serve_load.py [--preset gpt2_base_random] \
        [--clients 1,8,32] [--requests-per-client 2] [--max-tokens 64] \
        [--max-batch-size 8] [--max-queue 64] [--temperature 0] [--json FILE]

Starts one `kgpt2 serve` process on a free 127.0.0.1 port, warms it up (the
first requests compile), then for each client count runs that many threads,
each sending `--requests-per-client` streamed completions of `--max-tokens`
tokens one after the other (prompt "The quick brown fox"). Per level it
reports: aggregate tokens/s (completion tokens of all requests / wall time of
the level), p50/p95 time to first token and request latency, errors by kind
(HTTP status or exception), the mean rows per decode step the engine reports
(`/health`), and the server's peak resident memory (sampled every 0.1 s with
psutil). Compare the aggregate with `kgpt2 bench --batch-sizes 1,8
--samplers greedy --new-tokens 64 --train none` run in the same session.
"""

import argparse
import collections
import http.client
import json
import os
import subprocess
import sys
import threading
import time

PROMPT = "The quick brown fox"


def start_server(args):
    command = [
        sys.executable, "-m", "kgpt2", "serve", "--preset", args.preset, "--port", "0",
        "--max-batch-size", str(args.max_batch_size), "--max-queue", str(args.max_queue),
        "--context-length", str(args.context_length),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 600
    for line in process.stdout:
        if "serving on http://" in line:
            port = int(line.split("http://")[1].split("/")[0].rsplit(":", 1)[1])
            return process, port
        if time.monotonic() > deadline:
            break
    process.kill()
    raise RuntimeError("kgpt2 serve did not start")


def get_json(port, path):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("GET", path)
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


def one_request(port, args):
    """Stream one completion; return a dict of timings, tokens and error kind."""
    body = {"model": args.model, "prompt": PROMPT, "max_tokens": args.max_tokens,
            "temperature": args.temperature, "stream": True,
            "stream_options": {"include_usage": True}}
    started = time.perf_counter()
    first = None
    tokens = 0
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        connection.request("POST", "/v1/completions", body=json.dumps(body),
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        if response.status != 200:
            response.read()
            return {"error": f"HTTP {response.status}"}
        for raw in response:
            line = raw.decode("utf-8").strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                return {"error": chunk["error"].get("type", "stream error")}
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            elif first is None and chunk["choices"]:
                first = time.perf_counter() - started
        return {"ttft": first, "latency": time.perf_counter() - started, "tokens": tokens}
    except Exception as error:  # Counted by kind, not fatal to the run.
        return {"error": type(error).__name__}
    finally:
        connection.close()


def percentile(values, q):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


class PeakMemory:
    """Sample a process's resident memory until stopped; keep the peak."""

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
                self.peak = max(self.peak, self._process.memory_info().rss)
            except Exception:
                return
            time.sleep(0.1)

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self.peak


def run_level(port, clients, args):
    before = get_json(port, "/health")["engine"]
    results = []
    lock = threading.Lock()

    def client():
        for _ in range(args.requests_per_client):
            result = one_request(port, args)
            with lock:
                results.append(result)

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    after = get_json(port, "/health")["engine"]
    good = [r for r in results if "error" not in r]
    steps = after["steps"] - before["steps"]
    return {
        "clients": clients,
        "requests": len(results),
        "tokens": sum(r["tokens"] for r in good),
        "seconds": wall,
        "tokens_per_second": sum(r["tokens"] for r in good) / wall,
        "ttft_p50": percentile([r["ttft"] for r in good if r["ttft"] is not None], 50),
        "ttft_p95": percentile([r["ttft"] for r in good if r["ttft"] is not None], 95),
        "latency_p50": percentile([r["latency"] for r in good], 50),
        "latency_p95": percentile([r["latency"] for r in good], 95),
        "errors": dict(collections.Counter(r["error"] for r in results if "error" in r)),
        "rows_per_step": (after["tokens"] - before["tokens"]) / steps if steps else 0.0,
    }


def print_table(levels, peak_bytes):
    from rich.console import Console
    from rich.table import Table

    table = Table(title="kgpt2 serve load test (streamed completions, loopback)")
    for column in ("clients", "requests", "tokens/s", "TTFT p50 / p95 (s)",
                   "latency p50 / p95 (s)", "rows/step", "errors"):
        table.add_column(column, justify="right")
    for level in levels:
        table.add_row(
            str(level["clients"]), str(level["requests"]), f"{level['tokens_per_second']:.1f}",
            f"{level['ttft_p50']:.2f} / {level['ttft_p95']:.2f}",
            f"{level['latency_p50']:.2f} / {level['latency_p95']:.2f}",
            f"{level['rows_per_step']:.2f}",
            ", ".join(f"{kind}: {count}" for kind, count in level["errors"].items()) or "none",
        )
    console = Console()
    console.print(table)
    console.print(f"server peak RSS: {peak_bytes / 2**20:.0f} MiB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="gpt2_base_random")
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--requests-per-client", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--max-queue", type=int, default=64)
    parser.add_argument("--context-length", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=0.0,
                        help="0 (greedy, default) or a sampling temperature")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    from kgpt2.serving.server import model_name

    args.model = model_name(args.preset)
    process, port = start_server(args)
    memory = PeakMemory(process.pid)
    try:
        # The decode step always has max_batch_size rows, so one request
        # compiles every program the levels use.
        run_level(port, 1, argparse.Namespace(**{**vars(args), "requests_per_client": 1}))
        levels = [run_level(port, int(c), args) for c in args.clients.split(",")]
    finally:
        peak = memory.stop()
        process.terminate()
        process.wait(timeout=120)
    print_table(levels, peak)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump({"levels": levels, "server_peak_rss_bytes": peak,
                       "settings": vars(args)}, file, indent=2)
    if len(levels) > 1 and levels[0]["tokens_per_second"]:
        for level in levels[1:]:
            ratio = level["tokens_per_second"] / levels[0]["tokens_per_second"]
            print(f"{level['clients']} clients: {ratio:.2f}x the single-client tokens/s")


if __name__ == "__main__":
    main()

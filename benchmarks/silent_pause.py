#!/usr/bin/env python3
"""How long a command sits silent after its last output line, over N runs.

Runs the command N times, timestamps every line it writes (stdout and
stderr together) as it arrives, and reports per run the wall time, the
longest gap between two lines (and the line it follows), and the pause
between the last line and the process's exit: what a user sees as "did it
hang?".

Run (from the repository root):
  python benchmarks/silent_pause.py --runs 5 -- .venv/bin/kgpt2 demo
  python benchmarks/silent_pause.py --runs 5 -- .venv/bin/kgpt2 finetune \
      --preset gpt2_tiny_random --data poetry:kgpt2/assets/tang_sample \
      --steps 40 --run-dir /tmp/pause-run --restore-from fresh
"""

import argparse
import json
import subprocess
import sys
import time


def timed_run(command):
    """Run `command`; return (lines, exit time), times in seconds from start."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines = [(time.perf_counter() - start, line.rstrip("\n")) for line in process.stdout]
    process.wait()
    return lines, time.perf_counter() - start, process.returncode


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--output", help="write the last run's lines here, each with its time")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    results = []
    for run in range(args.runs):
        lines, ended, returncode = timed_run(command)
        last = lines[-1][0] if lines else 0.0
        gaps = [(b[0] - a[0], a[1]) for a, b in zip(lines, lines[1:])]
        longest, before_gap = max(gaps, default=(0.0, ""))
        results.append({"run": run + 1, "wall_s": round(ended, 2), "returncode": returncode,
                        "longest_gap_s": round(longest, 2),
                        # An intermittent stall is found by the line it follows.
                        "longest_gap_after": before_gap,
                        "pause_after_last_line_s": round(ended - last, 2),
                        "last_line": lines[-1][1] if lines else ""})
        print(json.dumps(results[-1], ensure_ascii=False), flush=True)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as file:
            file.writelines(f"{seconds:7.2f} s  {line}\n" for seconds, line in lines)
    worst = max(r["pause_after_last_line_s"] for r in results)
    print(f"worst pause after the last line over {len(results)} runs: {worst:.2f} s")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=1, ensure_ascii=False)
    return 0 if all(r["returncode"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

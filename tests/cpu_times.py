"""Opt-in pytest plugin: CPU seconds per test, for measuring on a busy machine.

Wall-clock durations mean little on a shared machine; CPU seconds (this
process plus the child processes it waited for) mostly don't change with load.
Usage, from the repository root:

    PYTHONPATH=tests python -m pytest -p cpu_times [-m "not slow"]

prints the total and the 25 most expensive tests; CPU_TIMES_OUT=FILE writes
every test's figures to FILE (FILE.gw0, FILE.gw1, ... from the workers of
`-n`): CPU seconds, wall seconds, and the seconds this process spent in
XLA compiling JAX programs (tracing and lowering, which nest, are left
out; a program read back from the persistent cache costs none; child
processes' are not counted).
"""

import os
import resource
import sys
import time

import pytest

_rows = []
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_compiling = {"seconds": 0.0, "listening": False}


def _count_compile_time(event, duration, **kwargs):
    if event == COMPILE_EVENT:
        _compiling["seconds"] += duration


def _listen_once_jax_is_imported():
    if not _compiling["listening"] and "jax.monitoring" in sys.modules:
        sys.modules["jax.monitoring"].register_event_duration_secs_listener(_count_compile_time)
        _compiling["listening"] = True


def _cpu_seconds():
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _listen_once_jax_is_imported()
    cpu, wall, compiling = _cpu_seconds(), time.monotonic(), _compiling["seconds"]
    yield
    _listen_once_jax_is_imported()
    _rows.append((_cpu_seconds() - cpu, time.monotonic() - wall,
                  _compiling["seconds"] - compiling, item.nodeid))


def pytest_terminal_summary(terminalreporter):
    if not _rows:
        return  # the controller of `-n`: its workers write their own files
    rows = sorted(_rows, reverse=True)
    terminalreporter.write_line(
        f"CPU seconds in tests (setup and teardown included): {sum(r[0] for r in rows):.1f} "
        f"over {len(rows)} tests; their wall-clock seconds: {sum(r[1] for r in rows):.1f}; "
        f"XLA compiling in this process: {sum(r[2] for r in rows):.1f}"
    )
    for cpu, wall, compiling, nodeid in rows[:25]:
        terminalreporter.write_line(
            f"{cpu:8.2f} s CPU {wall:8.2f} s wall {compiling:7.2f} s compiling  {nodeid}")


def pytest_sessionfinish(session):
    if not os.environ.get("CPU_TIMES_OUT") or not _rows:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    path = os.environ["CPU_TIMES_OUT"] + (f".{worker}" if worker else "")
    with open(path, "w", encoding="utf-8") as file:
        file.writelines(f"{cpu:.2f}\t{wall:.2f}\t{compiling:.2f}\t{nodeid}\n"
                        for cpu, wall, compiling, nodeid in sorted(_rows, reverse=True))

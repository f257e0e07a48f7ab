"""Opt-in pytest plugin: CPU seconds per test, for measuring on a busy machine.

Wall-clock durations mean little on a shared machine; CPU seconds (this
process plus the child processes it waited for) mostly don't change with load.
Usage, from the repository root:

    PYTHONPATH=tests python -m pytest -p cpu_times [-m "not slow"]

prints the total and the 25 most expensive tests; CPU_TIMES_OUT=FILE writes
every test's figures to FILE.
"""

import os
import resource
import time

import pytest

_rows = []


def _cpu_seconds():
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    cpu, wall = _cpu_seconds(), time.monotonic()
    yield
    _rows.append((_cpu_seconds() - cpu, time.monotonic() - wall, item.nodeid))


def pytest_terminal_summary(terminalreporter):
    rows = sorted(_rows, reverse=True)
    terminalreporter.write_line(
        f"CPU seconds in tests (setup and teardown included): {sum(r[0] for r in rows):.1f} "
        f"over {len(rows)} tests; their wall-clock seconds: {sum(r[1] for r in rows):.1f}"
    )
    for cpu, wall, nodeid in rows[:25]:
        terminalreporter.write_line(f"{cpu:8.2f} s CPU {wall:8.2f} s wall  {nodeid}")
    if os.environ.get("CPU_TIMES_OUT"):
        with open(os.environ["CPU_TIMES_OUT"], "w", encoding="utf-8") as file:
            file.writelines(f"{cpu:.2f}\t{wall:.2f}\t{nodeid}\n" for cpu, wall, nodeid in rows)

"""Start `kgpt2 serve` as a real process for a test module (not a test module)."""

import contextlib
import http.client
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time


class ServerProcess:
    """A `kgpt2 serve` child on a free loopback port (`--port 0`)."""

    def __init__(self, *arguments, start_seconds=240):
        command = [sys.executable, "-m", "kgpt2", "serve", "--port", "0", *arguments]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.stderr_lines = []
        lines = queue.Queue()
        threading.Thread(target=self._read, args=(self.process.stdout, lines), daemon=True).start()
        threading.Thread(target=self._read, args=(self.process.stderr, None), daemon=True).start()
        deadline = time.monotonic() + start_seconds
        self.port = None
        while self.port is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.process.poll() is not None:
                self.stop()
                raise RuntimeError("kgpt2 serve did not start:\n" + "".join(self.stderr_lines[-40:]))
            with contextlib.suppress(queue.Empty):
                line = lines.get(timeout=min(remaining, 1.0))
                if "serving on http://" in line:
                    self.port = int(line.split("http://")[1].split("/")[0].rsplit(":", 1)[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def _read(self, stream, lines):
        for line in stream:
            if lines is None:
                self.stderr_lines.append(line)
            else:
                lines.put(line)

    def request(self, method, path, body=None, headers=None, timeout=60):
        """`(status, parsed JSON)` of one request."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            data = body if isinstance(body, (bytes, type(None))) else json.dumps(body)
            connection.request(method, path, body=data,
                               headers={"Content-Type": "application/json", **(headers or {})})
            answer = connection.getresponse()
            return answer.status, json.loads(answer.read() or b"null")
        finally:
            connection.close()

    def wait_for(self, condition, seconds=60):
        """Poll `/health` until `condition(engine_stats)` holds; return the stats."""
        deadline = time.monotonic() + seconds
        while True:
            stats = self.request("GET", "/health")[1]["engine"]
            if condition(stats):
                return stats
            assert time.monotonic() < deadline, f"timed out; last stats: {stats}"
            time.sleep(0.05)

    def terminate(self, seconds=60):
        """SIGTERM; return the exit status (None if it did not exit in time)."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

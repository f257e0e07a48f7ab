"""Fail fast without a network: a short reachability probe before a download.

Download libraries retry with back-off when the network is down (TFDS for
minutes, huggingface_hub for tens of seconds) before they give up. Opening
one TCP connection to the server (or to the proxy the environment names for
it) answers the same question in at most `PROBE_SECONDS`. Setting
`KGPT2_OFFLINE=1` skips the probe and counts as offline.

Example:
```python
from kgpt2.network import OfflineError, require_network

try:
    require_network("https://huggingface.co")
except OfflineError as error:
    print(error)
```
"""

import os
import socket
import threading
import urllib.parse
import urllib.request

from kgpt2.errors import Error

OFFLINE_VARIABLE = "KGPT2_OFFLINE"
PROBE_SECONDS = 3.0
_TRUE = ("1", "true", "yes", "on")


class OfflineError(Error, ConnectionError):
    """The server a download needs cannot be reached; the message says which.

    Example:
    ```python
    from kgpt2.network import OfflineError

    assert issubclass(OfflineError, ConnectionError)
    ```
    """


def offline_by_setting(*variables):
    """The first of `KGPT2_OFFLINE` and `variables` set to a true value, or None.

    Example:
    ```python
    from kgpt2.network import offline_by_setting

    # None unless one of them is set:
    print(offline_by_setting("HF_HUB_OFFLINE"))
    ```
    """
    for variable in (OFFLINE_VARIABLE, *variables):
        if os.environ.get(variable, "").strip().lower() in _TRUE:
            return variable
    return None


def _connection_target(url):
    """(host, port, via): where a request for `url` would first connect."""
    parsed = urllib.parse.urlsplit(url)
    proxy = None
    if not urllib.request.proxy_bypass(parsed.hostname or ""):
        proxy = urllib.request.getproxies().get(parsed.scheme)
    target = parsed
    if proxy:
        target = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    default_port = 443 if target.scheme == "https" else 80
    return target.hostname, target.port or default_port, proxy


def _connects(host, port, seconds):
    """Whether a TCP connection opens within `seconds`, name lookup included.

    The connection runs in a daemon thread so that a hanging DNS lookup,
    which `socket` cannot time out, cannot hold the caller either.
    """
    outcome = {}

    def attempt():
        try:
            socket.create_connection((host, port), timeout=seconds).close()
            outcome["ok"] = True
        except OSError as error:
            outcome["error"] = error

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(seconds)
    if outcome.get("ok"):
        return True, None
    error = outcome.get("error")
    return False, (error.strerror or str(error)) if error else f"no answer in {seconds:g} s"


def require_network(url, *offline_variables, seconds=PROBE_SECONDS):
    """Raise `OfflineError` within about `seconds` if `url`'s server is unreachable.

    Args:
        url: the download's URL (only its scheme, host and port are used).
        *offline_variables: environment variables besides `KGPT2_OFFLINE`
            that mean "offline" when true (e.g. `"HF_HUB_OFFLINE"`).
        seconds: how long the connection may take.

    Example:
    ```python
    from kgpt2.network import require_network

    try:
        require_network("https://storage.googleapis.com", seconds=2)
    except ConnectionError as error:
        print(error)
    ```
    """
    variable = offline_by_setting(*offline_variables)
    if variable:
        raise OfflineError(f"{variable}={os.environ[variable]} says to work offline.")
    host, port, proxy = _connection_target(url)
    reachable, reason = _connects(host, port, seconds)
    if not reachable:
        server = urllib.parse.urlsplit(url)
        via = f" (the proxy for {server.scheme}://{server.hostname})" if proxy else ""
        raise OfflineError(f"the network is unreachable: cannot connect to {host}:{port}{via}: {reason}.")

"""Cut streamed text at stop sequences without ever showing part of one.

Text arrives in pieces; a stop sequence can straddle two of them. `StopText`
holds back the end of the text that could still become a stop sequence and
releases it once it cannot.

Example:
```python
from kgpt2.generation.stop_text import StopText

stops = StopText(["\\n\\n"])
print(stops.feed("Hello\\n"), stops.feed("\\nworld"))  # ('Hello', False) ('', True)
```
"""


class StopText:
    """Scan a stream of text pieces for the first of some stop sequences.

    Args:
        stops: strings; empty ones are ignored.
    """

    def __init__(self, stops=()):
        self.stops = [stop for stop in stops if stop]
        self._pending = ""

    def _held(self, text):
        """Length of the longest end of `text` that begins some stop sequence."""
        longest = 0
        for stop in self.stops:
            for size in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:size]):
                    longest = size
                    break
        return longest

    def feed(self, text):
        """Add `text`; return `(text safe to show, whether a stop was found)`."""
        text = self._pending + text
        found = [text.find(stop) for stop in self.stops]
        found = [position for position in found if position >= 0]
        if found:
            self._pending = ""
            return text[: min(found)], True
        held = self._held(text)
        self._pending = text[len(text) - held :] if held else ""
        return text[: len(text) - held], False

    def flush(self):
        """Return the held-back text (the stream ended without a stop)."""
        text, self._pending = self._pending, ""
        return text

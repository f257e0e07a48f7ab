"""Token log-probabilities in OpenAI's two shapes.

The engine reports, per token, its log-probability and the most likely
alternatives (`StreamEvent.logprobs`); `TokenLog` collects them for one
choice with each token's text offset, and gives them as `/v1/completions`'
legacy `logprobs` (`tokens`, `token_logprobs`, `top_logprobs`,
`text_offset`) or as chat's `logprobs.content`. A token whose bytes are not
valid UTF-8 on their own (part of a character) is shown as OpenAI shows it:
`bytes:\\xe4\\xbd`.

Example:
```python
import kgpt2
from kgpt2.serving.logprobs import TokenLog

tokenizer = kgpt2.presets.gpt2_tokenizer()
log = TokenLog(tokenizer)
log.add(15496, -1.5, ((15496, -1.5), (40, -2.0)), offset=0)
print(log.completion())
# {'tokens': ['Hello'], 'token_logprobs': [-1.5], 'top_logprobs': [{'Hello': -1.5, 'I': -2.0}], 'text_offset': [0]}
```
"""

from kgpt2.generation.detokenize import token_ids_to_bytes


def token_string(tokenizer, token):
    """A token's text, or `bytes:\\xNN...` when it is part of a character."""
    data = token_ids_to_bytes(tokenizer, [int(token)])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "bytes:" + "".join(f"\\x{byte:02x}" for byte in data)


class TokenLog:
    """The log-probabilities of one choice's tokens, in order."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.entries = []  # (token id, logprob or None, alternatives or None, offset)

    def copy(self):
        """A new `TokenLog` with the same entries."""
        log = TokenLog(self.tokenizer)
        log.entries = list(self.entries)
        return log

    def add(self, token, logprob, alternatives, offset):
        """Record a token; `logprob` None for a first prompt token (no context)."""
        self.entries.append((int(token), logprob, alternatives, int(offset)))

    def add_event(self, event, offset):
        """Record an engine `StreamEvent`'s tokens, all at text `offset`."""
        for token, (logprob, alternatives) in zip(event.token_ids, event.logprobs):
            self.add(token, logprob, alternatives, offset)

    def completion(self, start=0):
        """The legacy completions shape of the entries from `start` on (a dict)."""
        entries = self.entries[start:]
        return {
            "tokens": [token_string(self.tokenizer, e[0]) for e in entries],
            "token_logprobs": [e[1] for e in entries],
            "top_logprobs": [
                None if e[2] is None
                else {token_string(self.tokenizer, t): v for t, v in e[2]}
                for e in entries
            ],
            "text_offset": [e[3] for e in entries],
        }

    def _top(self, token, logprob):
        text = token_string(self.tokenizer, token)
        data = list(token_ids_to_bytes(self.tokenizer, [token]))
        return {"token": text, "logprob": logprob, "bytes": data}

    def chat(self, start=0):
        """Chat's `logprobs` shape (`{"content": [...]}`) from `start` on."""
        return {"content": [
            {**self._top(token, logprob),
             "top_logprobs": [self._top(t, v) for t, v in alternatives or ()]}
            for token, logprob, alternatives, _ in self.entries[start:]
        ]}

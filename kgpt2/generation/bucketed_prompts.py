"""Right-align prompts in a bucketed array, so the compiled shapes stay few.

A sampler's loop runs from `index` to the end of the prompt array, so the
array's length decides where generation stops. To stop at `max_length`
without compiling a program per `max_length`, the array is `bucket_length(
max_length)` long and the prompts start at `offset = bucket - max_length`:
the loop then ends exactly at position `max_length`. The unused slots before
`offset` hold a copy of each row's first token and are marked as prompt in the
mask: stop-token checks ignore them, no query attends to them, and the set of
tokens already present (what `repetition_penalty` looks at) gains nothing
new. A `no_repeat_ngram_size` rule does see n-grams made of that repeated
first token (for GPT-2 prompts, `<|endoftext|>`), so it can additionally ban
continuing a run of it, which generated text practically never contains.

Example:
```python
import numpy as np
from kgpt2.generation.bucketed_prompts import bucket_prompts

bucketed = bucket_prompts(np.array([[5, 6, 7]]), np.array([3]), max_length=6)
print(bucketed.prompt.shape, bucketed.offset, bucketed.index)  # (1, 8) 2 5
print(bucketed.prompt[0].tolist())  # [5, 5, 5, 6, 7, 0, 0, 0]
```
"""

import dataclasses

import numpy as np

from kgpt2.generation.buckets import bucket_length


@dataclasses.dataclass(frozen=True)
class BucketedPrompts:
    """Host-side arrays and scalars for one compiled generation call."""

    prompt: np.ndarray  # (batch, bucket) int32
    mask: np.ndarray  # (batch, bucket) bool: True where the token is given
    offset: int  # slot of position 0
    index: int  # first slot the sampler fills: offset + shortest prompt
    prefill_length: int  # static: slots computed in one pass before the loop
    max_length: int

    @property
    def bucket(self):
        return self.prompt.shape[1]

    def generated(self, output):
        """Cut a sampler's `(batch, bucket)` output back to `(batch, max_length)`."""
        return np.asarray(output)[:, self.offset : self.offset + self.max_length]


def bucket_prompts(token_ids, lengths, max_length, pad_id=0):
    """Right-align ragged prompts (`token_ids[i, :lengths[i]]`) in a bucket."""
    token_ids = np.asarray(token_ids, dtype="int32")
    lengths = np.asarray(lengths, dtype="int32")
    batch_size = token_ids.shape[0]
    bucket = bucket_length(max_length)
    offset = bucket - max_length
    prompt = np.full((batch_size, bucket), pad_id, dtype="int32")
    mask = np.zeros((batch_size, bucket), dtype=bool)
    for row, length in enumerate(lengths):
        prompt[row, :offset] = token_ids[row, 0]
        prompt[row, offset : offset + length] = token_ids[row, :length]
        mask[row, : offset + length] = True
    shortest = int(lengths.min())
    return BucketedPrompts(
        prompt=prompt,
        mask=mask,
        offset=offset,
        index=offset + shortest,
        # The pass before the loop must cover the shortest prompt: the loop
        # starts there, and contrastive search compares against its states.
        prefill_length=min(bucket_length(shortest), bucket),
        max_length=max_length,
    )

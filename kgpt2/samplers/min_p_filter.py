"""`MinPFilter`: min-p truncation for the sampling samplers.

Min-p (Nguyen et al., 2024, "Turning Up the Heat: Min-p Sampling") keeps the
tokens whose probability is at least `min_p` times the most likely token's,
so the cut adapts to how confident the model is. It only changes samplers
that draw at random (random, top-k, top-p): greedy, beam and contrastive
search never pick the tail anyway.
"""

from kgpt2.checks import check_number
from kgpt2.samplers.logits_processing import apply_min_p


class MinPFilter:
    """Mixin adding `min_p` to a sampler that samples from probabilities.

    It filters in `compute_probabilities`, after the temperature and before
    the sampler's own top-k / top-p cut; because the kept probabilities are
    not rescaled, the result equals Hugging Face's temperature -> top-k ->
    top-p -> min-p chain.

    Args:
        min_p: float in [0, 1]. `0.0` (default) disables it; 0.05-0.1 is
            the usual range.

    Example:
    ```python
    import kgpt2

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=64)
    lm.compile(sampler=kgpt2.samplers.RandomSampler(min_p=0.1, seed=0))
    print(lm.generate("The quick brown fox", max_length=24))
    ```
    """

    def __init__(self, min_p=0.0, **kwargs):
        check_number(type(self).__name__, "min_p", min_p, minimum=0, maximum=1)
        super().__init__(**kwargs)
        self.min_p = float(min_p)

    def compute_probabilities(self, logits):
        probabilities = super().compute_probabilities(logits)
        if self.min_p > 0:
            probabilities = apply_min_p(probabilities, self.min_p)
        return probabilities

    def get_config(self):
        config = super().get_config()
        config.update({"min_p": self.min_p})
        return config

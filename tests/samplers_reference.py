"""Plain-numpy references for the sampler tests, written independently of
kgpt2's keras.ops code (Hugging Face's loop-over-tokens formulation)."""

import numpy as np


def repetition_penalty(logits, previous_tokens, penalty):
    """HF RepetitionPenaltyLogitsProcessor on one row."""
    out = np.array(logits, dtype="float64")
    for token in set(int(t) for t in previous_tokens):
        out[token] = out[token] * penalty if out[token] < 0 else out[token] / penalty
    return out


def banned_ngram_tokens(previous_tokens, ngram_size):
    """HF _get_ngrams/_get_generated_ngrams on one row: a set of token ids."""
    tokens = [int(t) for t in previous_tokens]
    if len(tokens) + 1 < ngram_size:
        return set()
    seen = {}
    for start in range(len(tokens) - ngram_size + 1):
        ngram = tuple(tokens[start : start + ngram_size])
        seen.setdefault(ngram[:-1], set()).add(ngram[-1])
    prefix = tuple(tokens[len(tokens) - ngram_size + 1 :]) if ngram_size > 1 else ()
    return seen.get(prefix, set())


def process(logits, previous_tokens, penalty=1.0, ngram_size=0):
    out = repetition_penalty(logits, previous_tokens, penalty)
    if ngram_size:
        for token in banned_ngram_tokens(previous_tokens, ngram_size):
            out[token] = -np.inf
    return out


def repeated_ngrams(tokens, start, ngram_size):
    """N-grams ending at a position >= `start` that occurred earlier."""
    tokens = [int(t) for t in tokens]
    repeats = []
    for end in range(max(start, ngram_size - 1), len(tokens)):
        ngram = tokens[end - ngram_size + 1 : end + 1]
        earlier = [
            tokens[e - ngram_size + 1 : e + 1] for e in range(ngram_size - 1, end)
        ]
        if ngram in earlier:
            repeats.append(tuple(ngram))
    return repeats


def generate_ids(lm, prompts, max_length):
    """Run `lm.generate_step` compiled (jit on JAX, XLA on TensorFlow) and
    return token ids and prompt lengths as numpy, generating to max_length."""
    import keras

    inputs = lm.preprocessor.generate_preprocess(prompts, sequence_length=max_length)
    if keras.config.backend() == "tensorflow":
        import tensorflow as tf

        # `lm.generate` on TensorFlow runs a tf.function without XLA (the
        # tokenizer layers make Keras resolve GPT2CausalLM's jit_compile to
        # False); compile the same step with XLA to check the samplers there.
        generate = tf.function(lm.generate_step, jit_compile=True)
    else:
        generate = lm.make_generate_function()  # what lm.generate calls: jax.jit
    outputs = generate(inputs, stop_token_ids=None)
    ids = np.asarray(outputs["token_ids"])
    prompt_lengths = np.asarray(inputs["padding_mask"]).sum(axis=1)
    return ids, prompt_lengths


def next_token_logits(lm, ids):
    """Full (uncached) forward pass: logits[b, t] predicts ids[b, t + 1]."""
    from keras import ops

    logits = lm({"token_ids": ids, "padding_mask": np.ones_like(ids, dtype=bool)})
    return np.asarray(ops.convert_to_numpy(logits), dtype="float64")


def assert_each_token_is_argmax(lm, ids, prompt_lengths, penalty=1.0,
                                ngram_size=0, tolerance=1e-3):
    """Every generated token maximizes the reference-processed logits (up to
    float noise between cached and uncached forward passes)."""
    logits = next_token_logits(lm, ids)
    for row, start in enumerate(prompt_lengths):
        for t in range(start, ids.shape[1]):
            processed = process(logits[row, t - 1], ids[row, :t], penalty, ngram_size)
            chosen = ids[row, t]
            assert processed[chosen] >= processed.max() - tolerance, (
                f"row {row} position {t}: chose {chosen} "
                f"({processed[chosen]:.4f}) but {processed.argmax()} "
                f"scores {processed.max():.4f}"
            )

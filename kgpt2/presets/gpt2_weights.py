"""The variables of a KerasHub `GPT2Backbone`, listed from its config alone.

Memory planning and the model-parallel layout map both need every weight's
path and shape; listing them from the config means neither has to build
(or download) a 1.5B-parameter model to answer.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Weight:
    """One backbone variable: its Keras path, shape and whether it trains."""

    path: str
    shape: tuple
    trainable: bool

    @property
    def size(self):
        size = 1
        for dim in self.shape:
            size *= dim
        return size


def gpt2_weights(config, lora_rank=None):
    """List a `GPT2Backbone`'s variables (paths as `variable.path` gives them).

    With `lora_rank`, the list is what `backbone.enable_lora(lora_rank)`
    leaves: every original weight frozen, and LoRA factors added to the
    query and value projections, which train together with those
    projections' biases.

    Example:
    ```python
    from kgpt2.presets.catalog import backbone_config
    from kgpt2.presets.gpt2_weights import gpt2_weights

    weights = gpt2_weights(backbone_config("gpt2_base_en"))
    print(sum(w.size for w in weights))  # 124439808
    ```
    """
    hidden = config["hidden_dim"]
    heads = config["num_heads"]
    head_dim = hidden // heads
    inner = config["intermediate_dim"]
    lora = lora_rank is not None

    def weight(path, shape, lora_trains=False):
        return Weight(path, tuple(shape), trainable=lora_trains if lora else True)

    weights = [
        weight("token_embedding/embeddings", (config["vocabulary_size"], hidden)),
        weight("position_embedding/embeddings", (config["max_sequence_length"], hidden)),
    ]
    for i in range(config["num_layers"]):
        attention = f"transformer_layer_{i}/self_attention"
        for name in ("query", "key", "value"):
            adapted = lora and name in ("query", "value")
            weights.append(weight(f"{attention}/{name}/kernel", (hidden, heads, head_dim)))
            weights.append(weight(f"{attention}/{name}/bias", (heads, head_dim), adapted))
            if adapted:
                # Keras' EinsumDense.enable_lora: A keeps all but the last
                # kernel axis, B maps the rank onto the last one.
                weights.append(Weight(f"{attention}/{name}/lora_kernel_a",
                                      (hidden, heads, lora_rank), True))
                weights.append(Weight(f"{attention}/{name}/lora_kernel_b",
                                      (lora_rank, head_dim), True))
        layer = f"transformer_layer_{i}"
        weights += [
            weight(f"{attention}/attention_output/kernel", (heads, head_dim, hidden)),
            weight(f"{attention}/attention_output/bias", (hidden,)),
            weight(f"{layer}/self_attention_layer_norm/gamma", (hidden,)),
            weight(f"{layer}/self_attention_layer_norm/beta", (hidden,)),
            weight(f"{layer}/feedforward_intermediate_dense/kernel", (hidden, inner)),
            weight(f"{layer}/feedforward_intermediate_dense/bias", (inner,)),
            weight(f"{layer}/feedforward_output_dense/kernel", (inner, hidden)),
            weight(f"{layer}/feedforward_output_dense/bias", (hidden,)),
            weight(f"{layer}/feedforward_layer_norm/gamma", (hidden,)),
            weight(f"{layer}/feedforward_layer_norm/beta", (hidden,)),
        ]
    weights += [
        weight("layer_norm/gamma", (hidden,)),
        weight("layer_norm/beta", (hidden,)),
    ]
    return weights


def count_parameters(config, lora_rank=None):
    """Count a GPT-2 backbone's parameters from its config, without building it.

    With `lora_rank`, the LoRA factors `enable_lora(lora_rank)` adds count too.

    Example:
    ```python
    from kgpt2.presets.catalog import backbone_config
    from kgpt2.presets.gpt2_weights import count_parameters

    print(count_parameters(backbone_config("gpt2_base_en")))  # 124439808
    ```
    """
    # Every layer has the same weights: list one, not `num_layers` (which a
    # hostile config sets to millions).
    outside = sum(weight.size for weight in gpt2_weights(dict(config, num_layers=0), lora_rank))
    one_layer = sum(weight.size for weight in gpt2_weights(dict(config, num_layers=1), lora_rank))
    return outside + config["num_layers"] * (one_layer - outside)

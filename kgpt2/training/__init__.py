"""Training helpers: memory planning and multi-device layouts for GPT-2.

Example:
```python
from kgpt2.training.memory_plan import plan

print(plan("gpt2_base_en", batch_size=8, sequence_length=512).table())
```
"""

"""Model compression: attention-head and magnitude pruning, knowledge distillation (docs/COMPRESSION.md).

The recipes are ``tuneforge prune`` (recipes/prune.py) and ``tuneforge distill`` (recipes/distill.py).
"""

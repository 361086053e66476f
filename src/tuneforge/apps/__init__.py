"""Applications built on tuneforge's training, prediction and service code (one folder each)."""

"""Few-shot learning: the k-shot protocol (protocol.py) and SetFit-style contrastive training (contrastive.py)."""

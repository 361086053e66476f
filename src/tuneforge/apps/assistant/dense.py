"""Dense retrieval: unit-length mean-pooled vectors from a sentence encoder, searched with FAISS.

The encoder is the recommender's :class:`~tuneforge.apps.recommend.encoder.TextEncoder` (mean pooling over the
real tokens, then unit length: what all-MiniLM-L6-v2 was trained for), so the inner product is the cosine.
An exact ``IndexFlatIP`` suits knowledge bases up to a few hundred thousand entries; ``IndexHNSWFlat`` is
the approximate graph index for larger ones. The vectors are also kept as safetensors for other tools.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tuneforge.errors import TuneforgeError


def resolve_encoder(name: str) -> str:
    """A Hugging Face folder for ``retrieval.encoder``: an alias, a folder, or a tuneforge run whose model/ is a
    full Hugging Face model (an assistant folder's fine-tuned encoder/ too)."""
    from tuneforge.models.backbones import resolve_model

    path = Path(name).expanduser()
    if path.is_dir() and not (path / "config.json").exists():
        for inner in ("encoder", "model"):
            if (path / inner / "config.json").exists():
                return str((path / inner).resolve())
        if (path / "model").is_dir():
            raise TuneforgeError(f"retrieval.encoder: the run {path} holds an adapter (its model/ has no "
                                 f"config.json), not a whole encoder. Merge it first: tuneforge export {path} OUT "
                                 "--merge, then retrieval.encoder=OUT.")
    return resolve_model(name)


def load_encoder(name: str):
    from tuneforge.apps.recommend.encoder import TextEncoder

    return TextEncoder.load(resolve_encoder(name))


def build_faiss(vectors: np.ndarray, kind: str = "flat", hnsw_m: int = 32):
    import faiss

    dim = vectors.shape[1]
    index = faiss.IndexFlatIP(dim) if kind == "flat" else faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


class DenseIndex:
    def __init__(self, encoder, vectors: np.ndarray, index, max_length: int, precision: str) -> None:
        self.encoder, self.vectors, self.index = encoder, vectors, index  # vectors (N, H), unit rows
        self.max_length, self.precision = max_length, precision

    def embed(self, texts: list[str], batch_size: int = 64, on_batch=None) -> np.ndarray:
        return self.encoder.encode(texts, self.max_length, self.precision, batch_size, on_batch).numpy()

    def search(self, query_vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """(index, cosine) of the ``k`` nearest entries, best first."""
        k = min(k, len(self.vectors))
        scores, ids = self.index.search(query_vector.reshape(1, -1).astype(np.float32), k)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def save(self, folder: Path) -> None:
        import faiss
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        vectors = torch.from_numpy(np.ascontiguousarray(self.vectors))
        save_file({"vectors": vectors}, str(folder / "vectors.safetensors"))
        faiss.write_index(self.index, str(folder / "index.faiss"))

    @classmethod
    def load(cls, folder: Path, encoder, max_length: int, precision: str) -> DenseIndex:
        import faiss
        from safetensors.torch import load_file

        vectors = load_file(str(folder / "vectors.safetensors"))["vectors"].numpy()
        return cls(encoder, vectors, faiss.read_index(str(folder / "index.faiss")), max_length, precision)

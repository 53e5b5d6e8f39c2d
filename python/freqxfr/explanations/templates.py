"""One-sided explanations of a probe against a stored template (an enrolled embedding).

Deployed 1:1 systems keep the enrolled person's template, not the photo. The probe is explained
against it as one side of a pair is: s_ref = score(f(probe), t), and per band (or cell) the score
of the masked probe against t. Cost: K + 1 embeddings (K·R + 1 with regions). With the reference
image's own embedding as the template this is exactly that side of the pair explanation.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from freqxfr.common.errors import InputError
from freqxfr.explanations.kernel import ExplainerParts, fill_batch, image_explanation, new_batch
from freqxfr.explanations.results import TemplateExplanation
from freqxfr.imaging.images import ImageLike, checked_file, source_label

#: A template whose norm is within this of 1 counts as L2-normalised (for Euclidean models).
UNIT_NORM_TOLERANCE = 1e-3


def load_template(template: Any) -> tuple[np.ndarray, str]:
    """The template as a float64 vector and its label: an array, or a ``.npy`` file."""
    if isinstance(template, (str, Path)):
        path = Path(template)
        arr = _read_npy(path)
        return _as_vector(arr, str(path)), str(path)
    return _as_vector(template, "template"), "<array>"


#: The largest template file read (an embedding is a few KB; this leaves room for any model).
MAX_TEMPLATE_BYTES = 64 << 20


def _read_npy(path: Path) -> np.ndarray:
    """A ``.npy`` template, checked before reading: a regular file, whose header's shape and
    dtype claim no more bytes than the file holds (an empty file, or a header claiming 10^12
    values, is one line, not ``EOFError``/``MemoryError``)."""
    label = f"template {path}"
    checked_file(path, label=label)
    try:
        size = path.stat().st_size
        if size > MAX_TEMPLATE_BYTES:
            raise InputError(
                f"{label}: {size:,} bytes is too large for an embedding (at most "
                f"{MAX_TEMPLATE_BYTES:,}); is it the right file?"
            )
        with path.open("rb") as handle:
            try:
                version = np.lib.format.read_magic(handle)
                read_header = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape, _, dtype = read_header(handle)
            except (ValueError, EOFError, OSError, SyntaxError, TypeError) as exc:
                raise InputError(
                    f"{label}: not a .npy array file ({'empty file' if size == 0 else exc})"
                ) from None
            if dtype.hasobject:
                raise InputError(f"{label}: holds Python objects, not numbers; save an embedding")
            claimed = int(np.prod(shape, dtype=object)) * dtype.itemsize
            available = size - handle.tell()
            if claimed > available:
                raise InputError(
                    f"{label}: its header claims shape {shape} of {dtype} ({claimed:,} bytes) "
                    f"but the file holds {available:,} bytes after the header; the file is "
                    "truncated or damaged"
                )
            handle.seek(0)
            return np.load(handle, allow_pickle=False)
    except InputError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"{label}: cannot read it as a .npy array ({exc})") from None


def _as_vector(value: Any, label: str) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        raise InputError(
            f"{label}: the template must be an embedding array, got {type(value).__name__}"
        ) from None
    if arr.dtype.kind not in "fiu":
        raise InputError(f"{label}: the template must hold numbers, got dtype {arr.dtype}")
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1:
        raise InputError(
            f"{label}: the template must be one embedding (D,) or (1, D), got shape {arr.shape}"
        )
    return arr.astype(np.float64)


def check_template(
    template: np.ndarray, label: str, card: Any, probe_embedding: np.ndarray | None = None
) -> None:
    """The template must fit the model: its dimension, finite values, and the normalisation the
    metric needs (a cosine needs a non-zero vector; a Euclidean distance compares raw
    embeddings, so a unit-norm template for a model whose embeddings are not unit-norm is
    refused)."""
    d = card.embedding_size
    if template.shape != (d,):
        raise InputError(
            f"{label}: the template has {template.size} values, but model {card.name!r} "
            f"makes {d}-d embeddings"
        )
    if not np.isfinite(template).all():
        first = int(np.flatnonzero(~np.isfinite(template))[0])
        raise InputError(f"{label}: the template holds NaN or Inf (first at index {first})")
    norm = float(np.linalg.norm(template))
    if probe_embedding is None:
        return
    if card.metric == "cosine":
        if norm == 0.0:
            raise InputError(
                f"{label}: the template is all zeros; a cosine needs a non-zero vector"
            )
        return
    probe_norm = float(np.linalg.norm(probe_embedding))
    if abs(norm - 1.0) < UNIT_NORM_TOLERANCE and abs(probe_norm - 1.0) > 0.05:
        raise InputError(
            f"{label}: the template is L2-normalised (norm {norm:.4f}), but model {card.name!r} "
            f"compares raw embeddings by {card.metric} distance (this probe's norm: {probe_norm:.3f}); "
            "store the embedding as Verifier.embed returns it"
        )


def explain_template(
    explainer: ExplainerParts, probe: ImageLike, template: Any, *, aligned: bool | None = None
) -> TemplateExplanation:
    """:meth:`Explainer.explain_template`: K + 1 embeddings (K·R + 1 with regions)."""
    vector, label = load_template(template)
    card = explainer.model.card
    check_template(vector, label, card)  # dimension and values, before any model call
    t0 = time.perf_counter()
    face = explainer.aligned_crop(probe, aligned)[None]
    t1 = time.perf_counter()
    batch = new_batch(explainer, 1)
    fill_batch(explainer, batch, face)
    t2 = time.perf_counter()
    emb = explainer.model.embed_model_input(batch, batch_size=explainer.max_batch)
    t3 = time.perf_counter()
    check_template(vector, label, card, emb[0])  # the normalisation, against the probe's scale
    score = explainer.model.score
    s_ref = float(score(emb[0], vector))
    return TemplateExplanation(
        score_ref=s_ref,
        threshold=card.threshold,
        decision=bool(s_ref >= card.threshold),
        probe=image_explanation(
            explainer, source_label(probe), score(emb[1:], vector[None]), s_ref
        ),
        template=label,
        bands=explainer.bands,
        schedule=explainer.schedule,
        settings=explainer.settings(),
        timings_ms={
            "align": round((t1 - t0) * 1e3, 3),
            "mask": round((t2 - t1) * 1e3, 3),
            "model": round((t3 - t2) * 1e3, 3),
        },
        regions=explainer.regions,
    )

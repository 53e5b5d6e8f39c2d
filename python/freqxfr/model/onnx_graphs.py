"""Checking and rewriting ONNX graphs: does a graph's input and output match its card, and a
cached copy of a fixed-batch graph with a dynamic batch dimension.

Used by :func:`freqxfr.model.verifier.load_model`; files and sessions are found and opened by
:mod:`freqxfr.model.loading`.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from freqxfr.common.atomic import write_bytes
from freqxfr.common.cache import cache_dir, warn_once
from freqxfr.common.errors import ModelError, OutputError
from freqxfr.model.cards import ModelCard

_FLOAT_TYPES = {"tensor(float)"}


def check_graph(session: Any, card: ModelCard, path: Path) -> tuple[str, str, int | None]:
    """Check the graph's input and output against the card.

    Returns the input name, the output name, and the fixed batch size (``None`` if dynamic).
    """
    where = f"model {path.name} with card {card.name!r}"
    inputs = session.get_inputs()
    inp = _named(inputs, card.input_name, "input", where)
    if inp is None and len(inputs) == 1:
        inp = inputs[0]
    elif inp is None:
        raise ModelError(
            f"{where}: the graph has {len(inputs)} inputs "
            f"({', '.join(repr(i.name) for i in inputs)}); set input_name in the card"
        )
    if inp.type not in _FLOAT_TYPES:
        raise ModelError(f"{where}: input {inp.name!r} is {inp.type}; freqxfr feeds float32")
    shape = list(inp.shape)
    expected = card.input_shape
    if len(shape) != 4:
        raise ModelError(
            f"{where}: input {inp.name!r} has shape {shape}; expected 4 dimensions "
            f"(N, {', '.join(map(str, expected))}) for layout {card.layout}"
        )
    h, w = card.input_size
    labels = (
        ("channels", "height", "width")
        if card.layout == "NCHW"
        else ("height", "width", "channels")
    )
    for dim, want, label in zip(shape[1:], expected, labels, strict=True):
        if isinstance(dim, int) and dim != want:
            hint = ""
            if card.layout == "NCHW" and shape[1:] == [h, w, 3]:
                hint = "; the graph looks NHWC, so set layout = 'NHWC' in the card"
            elif card.layout == "NHWC" and shape[1:] == [3, h, w]:
                hint = "; the graph looks NCHW, so set layout = 'NCHW' in the card"
            raise ModelError(
                f"{where}: input {inp.name!r} has shape {shape}, so {label} = {dim}, but the card "
                f"says {label} = {want} (input_size {h}x{w}, layout {card.layout}){hint}"
            )
    outputs = session.get_outputs()
    out = _named(outputs, card.output_name, "output", where)
    if out is None:
        out = outputs[0]
    if out.type not in _FLOAT_TYPES:
        raise ModelError(f"{where}: output {out.name!r} is {out.type}; expected float32")
    fixed = [d for d in out.shape[1:] if isinstance(d, int)]
    if len(fixed) == len(out.shape[1:]) and int(np.prod(fixed)) != card.embedding_size:
        raise ModelError(
            f"{where}: output {out.name!r} has shape {list(out.shape)}, so embeddings have "
            f"{int(np.prod(fixed))} values, but the card says embedding_size = {card.embedding_size}"
        )
    batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
    return inp.name, out.name, batch


def _named(values: list[Any], name: str | None, kind: str, where: str) -> Any:
    """The graph's input or output (``kind``) that the card names, or ``None`` where the card
    names none; a name the graph lacks is refused with the names it has."""
    if name is None:
        return None
    for value in values:
        if value.name == name:
            return value
    raise ModelError(
        f"{where}: the card names {kind} {name!r}, but the graph's {kind}s are "
        f"{', '.join(repr(v.name) for v in values)}"
    )


def dynamic_batch_copy(
    path: Path, input_name: str, options: Any, providers: list[Any], ort: Any
) -> Path | None:
    """A cached copy of a fixed-batch graph with a dynamic batch dimension, if it works.

    The copy is kept only if a batch of two gives the same embeddings as two single calls;
    otherwise (a Reshape with a hard-coded batch, say) ``None`` tells the caller to loop.
    """
    import onnx  # lazy: onnx is slow to import and needed only when a graph has a fixed batch

    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:16]
    try:
        folder = cache_dir("models")
    except OutputError as exc:  # the copy only saves time: without a cache, loop over the batch
        warn_once(
            "dynbatch", f"{path}: no dynamic-batch copy, so batches run one image at a time: {exc}"
        )
        return None
    target = folder / f"{path.stem}-{digest}-dynbatch.onnx"
    refused = folder / f"{path.stem}-{digest}-dynbatch.refused"
    if refused.is_file():
        return None
    if not target.is_file():
        model = onnx.load_model_from_string(data)
        graph = model.graph
        for value in list(graph.input) + list(graph.output):
            dims = value.type.tensor_type.shape.dim
            if dims and value.name in {input_name, *(o.name for o in graph.output)}:
                dims[0].dim_param = "N"  # setting dim_param clears dim_value
        del graph.value_info[:]  # stale intermediate shapes would pin the batch to 1
        try:
            write_bytes(target, model.SerializeToString())
        except OSError as exc:
            warn_once(
                "dynbatch",
                f"{path}: no dynamic-batch copy, so batches run one image at "
                f"a time: cannot write {target} ({exc.strerror or exc})",
            )
            return None
    try:
        session = ort.InferenceSession(str(target), sess_options=options, providers=providers)
        shape = [d if isinstance(d, int) else 1 for d in session.get_inputs()[0].shape]
        rng = np.random.default_rng(0)
        x = rng.standard_normal((2, *shape[1:])).astype(np.float32)
        both = session.run(None, {input_name: x})[0]
        single = np.concatenate([session.run(None, {input_name: x[i : i + 1]})[0] for i in (0, 1)])
        ok = both.shape == single.shape and np.allclose(both, single, rtol=1e-4, atol=1e-5)
    except Exception:  # any failure means the graph cannot batch; fall back to looping
        ok = False
    if not ok:
        with contextlib.suppress(OSError):  # the marker only saves the next process a test
            target.unlink(missing_ok=True)
            write_bytes(refused, b"")
        return None
    return target

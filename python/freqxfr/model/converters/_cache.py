"""Converted models in the user cache: one ``.onnx`` file plus a JSON record beside it.

A converter names its entry after the model, the sha256 of its source file and a variant
(``fp32``, ``fp16``), so a different source converts anew. The record says what the file was
made from and by which converter version; an entry counts only while the record matches and the
file still has the recorded hash. Both files are written atomically, the model first: a crash in
between leaves a model without a record, which the next call simply converts again.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from freqxfr.common import atomic
from freqxfr.common.cache import ENV_VAR, cache_dir, cache_root
from freqxfr.common.errors import ModelError, OutputError

#: Largest model source file read (the known ones are 3–25 MB). Anything bigger, or anything
#: that is not a regular file (``/dev/zero``, a FIFO, a folder), is refused before reading.
MAX_SOURCE_BYTES = 1 << 30
_NEEDS_CACHE = f"converting a model needs a writable cache folder: set {ENV_VAR} to one"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entry_paths(model: str, source_sha256: str, variant: str) -> tuple[Path, Path]:
    """The ``.onnx`` file and its ``.json`` record for one conversion."""
    stem = f"{model}-{source_sha256[:16]}-{variant}"
    try:
        folder = cache_dir("models")
    except OutputError as exc:
        # exc names the folder, the reason and FREQXFR_CACHE_DIR.
        raise ModelError(
            f"{model}: converting a model needs a writable cache folder; {exc}"
        ) from None
    return folder / f"{stem}.onnx", folder / f"{stem}.json"


def read_source(source: Path, what: str) -> bytes:
    """The bytes of a model source file, refusing non-regular and oversized files unread.

    Raises
    ------
    ModelError
        One line naming ``source`` and the problem.
    """
    try:
        # stat before open: opening a FIFO would block, and /dev/zero never ends.
        info = os.stat(source)
        _check_regular(source, info, what)
        with open(source, "rb") as handle:
            _check_regular(source, os.fstat(handle.fileno()), what)  # the file actually opened
            data = handle.read(MAX_SOURCE_BYTES + 1)
    except OSError as exc:
        raise ModelError(f"{source}: cannot read the {what} file: {exc.strerror or exc}") from None
    if len(data) > MAX_SOURCE_BYTES:  # it grew while we read it
        raise ModelError(f"{source}: the {what} file is larger than {MAX_SOURCE_BYTES} bytes")
    return data


def _check_regular(source: Path, info: os.stat_result, what: str) -> None:
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a device, FIFO or socket"
        raise ModelError(f"{source}: the {what} file must be a regular file, not {kind}")
    if info.st_size > MAX_SOURCE_BYTES:
        raise ModelError(
            f"{source}: the {what} file has {info.st_size} bytes, more than any model this "
            f"converter reads ({MAX_SOURCE_BYTES})"
        )


def read_record(record_path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def is_valid(onnx_path: Path, record_path: Path, expected: Mapping[str, Any]) -> bool:
    """True if the record has every ``expected`` value and the file has the recorded sha256."""
    record = read_record(record_path)
    if record is None or any(record.get(key) != value for key, value in expected.items()):
        return False
    try:
        return sha256(onnx_path.read_bytes()) == record.get("onnx_sha256")
    except OSError:
        return False


def write_entry(onnx_path: Path, record_path: Path, payload: bytes, record: dict[str, Any]) -> None:
    """Write the serialised model, then its record (with the model's size and sha256 added).

    Raises
    ------
    ModelError
        If either file cannot be written; no partial file is left behind.
    """
    record = {**record, "onnx_sha256": sha256(payload), "size": len(payload)}
    try:
        atomic.write_bytes(onnx_path, payload)
        atomic.write_json(record_path, record)
    except OSError as exc:
        raise ModelError(
            f"{onnx_path}: cannot write the converted model ({exc.strerror or exc}); {_NEEDS_CACHE}"
        ) from None


def cached_models(model: str | None = None) -> list[dict[str, Any]]:
    """List the converted models in the cache (for ``freqxfr models list``).

    Parameters
    ----------
    model
        Only this model's entries (e.g. ``"dlib_resnet_v1"``); default: all.

    Returns
    -------
    list of dict
        One per record, sorted by path: ``model``, ``path`` (Path of the ``.onnx`` file),
        ``source_sha256``, ``size`` (bytes on disk, 0 if the file is gone), ``variant``,
        ``converter_version`` and ``valid`` (the file exists with the recorded size; its hash is
        checked when the model is loaded).
    """
    pattern = f"{model}-*.json" if model else "*.json"
    entries: list[dict[str, Any]] = []
    folder = cache_root() / "models"  # listing creates nothing: no folder, no entries
    if not folder.is_dir():
        return entries
    for record_path in sorted(folder.glob(pattern)):
        record = read_record(record_path)
        if record is None or "source_sha256" not in record:
            continue
        onnx_path = record_path.with_suffix(".onnx")
        size = onnx_path.stat().st_size if onnx_path.is_file() else 0
        entries.append(
            {
                "model": record.get("model"),
                "path": onnx_path,
                "source_sha256": record["source_sha256"],
                "size": size,
                "variant": record.get("variant"),
                "converter_version": record.get("converter_version"),
                "valid": size > 0 and size == record.get("size"),
            }
        )
    return entries


def convert_once(
    model: str,
    source: Path,
    variant: str,
    converter_version: int,
    build: Callable[[bytes, Path, str], bytes],
    *,
    force: bool = False,
) -> Path:
    """The cached conversion of ``source``; runs ``build(data, source, sha256)`` only when the
    cache has no valid entry for this source, variant and converter version (or ``force``).

    Raises
    ------
    ModelError
        The source can't be read, ``build`` refuses it, or the result can't be written.
    """
    data = read_source(source, f"{model} model")
    digest = sha256(data)
    onnx_path, record_path = entry_paths(model, digest, variant)
    expected = {"source_sha256": digest, "variant": variant, "converter_version": converter_version}
    if not force and is_valid(onnx_path, record_path, expected):
        return onnx_path
    start = time.perf_counter()
    payload = build(data, source, digest)
    record = {
        "model": model,
        "source": str(source),
        **expected,
        "seconds": round(time.perf_counter() - start, 3),
    }
    write_entry(onnx_path, record_path, payload, record)
    return onnx_path

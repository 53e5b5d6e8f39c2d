"""Property-based tests of ``mask_bands``: over random shapes, dtypes, strides, offsets,
NaN/Inf, schedules, modes, layouts, ``out=`` buffers and thread counts, the ``cpp`` core either
matches the float64 ``numpy`` reference or both refuse the call with the same ``InputError``.

The example budget is fixed and the search derandomised, so the run time is bounded and every
run checks the same cases (400 examples; ``nox -s tests-fast`` sets FREQXFR_PROPERTY_EXAMPLES
to check the first 60 of them).
"""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from freqxfr import BandSchedule, InputError, mask_bands

pytestmark = pytest.mark.unit

BUDGET = settings(
    max_examples=int(os.environ.get("FREQXFR_PROPERTY_EXAMPLES", "400")),
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def rarely(draw: st.DrawFn) -> bool:
    """True for about one draw in ten: most cases are valid and compared, some are refused."""
    # Not integers(...) == 0: hypothesis favours boundary values, which would make it common.
    return draw(st.sampled_from([False] * 5 + [True] + [False] * 4))


@st.composite
def schedules(draw: st.DrawFn) -> BandSchedule:
    kind = draw(st.sampled_from(["rings", "nyquist", "log", "polar", "edges"]))
    k = draw(st.integers(1, 16 if rarely(draw) else 5))
    if kind == "rings":
        return BandSchedule.rings(k)
    if kind == "nyquist":
        return BandSchedule.rings(k, extent="nyquist")
    if kind == "log":
        return BandSchedule.log_rings(max(k, 2), draw(st.floats(0.01, 0.3)))
    if kind == "polar":
        return BandSchedule.polar(draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    gaps = draw(st.lists(st.floats(0.05 if rarely(draw) else 0.15, 0.5), max_size=5))
    inner = np.cumsum(gaps)
    return BandSchedule.from_edges([0.0, *inner[inner < 0.95].tolist(), 1.0])


@st.composite
def image_batches(draw: st.DrawFn) -> np.ndarray:
    """Batches with odd strides, offsets and alignment, sometimes with bad values or shapes."""
    n = draw(st.integers(1, 3))
    smallest = 1 if rarely(draw) else 6
    h, w = draw(st.integers(smallest, 24)), draw(st.integers(smallest, 24))
    c = draw(st.sampled_from([2, 4])) if rarely(draw) else draw(st.sampled_from([1, 3]))
    dtype = np.float64 if rarely(draw) else draw(st.sampled_from([np.uint8, np.float32]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if dtype == np.uint8:
        x = rng.integers(0, 256, (n, h, w, c), dtype=np.uint8)
    else:
        scale = draw(st.sampled_from([1.0, 255.0, 1e6, 1e15]))
        x = (rng.standard_normal((n, h, w, c)) * scale).astype(dtype)
        special = draw(st.sampled_from([np.nan, np.inf, -np.inf, 3e38])) if rarely(draw) else None
        if special is not None:
            x[tuple(draw(st.integers(0, d - 1)) for d in x.shape)] = special
    layout = draw(st.sampled_from(["contiguous", "strided", "reversed", "transposed", "unaligned"]))
    if layout == "strided":  # every other pixel of a bigger array
        big = np.zeros((n, 2 * h, 2 * w, c), x.dtype)
        big[:, ::2, ::2] = x
        x = big[:, ::2, ::2]
    elif layout == "reversed":
        x = x[:, ::-1, ::-1].copy()[:, ::-1, ::-1]
    elif layout == "transposed":  # (N, W, H, C) memory seen as (N, H, W, C)
        x = np.ascontiguousarray(x.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)
    elif layout == "unaligned" and x.dtype.itemsize > 1:  # one byte past an aligned address
        raw = np.zeros(x.nbytes + 64, np.uint8)
        start = (-raw.ctypes.data) % 64 + 1
        view = raw[start : start + x.nbytes].view(x.dtype).reshape(x.shape)
        view[...] = x
        x = view
    return x


@st.composite
def options(draw: st.DrawFn, c: int) -> dict[str, Any]:
    mode = draw(st.sampled_from(["delete", "keep", "cumulative_delete", "cumulative_keep"]))
    opts: dict[str, Any] = {
        "mode": mode,
        "domain": draw(st.sampled_from(["pixel", "normalised"])),
        "clip": (5.0, 1.0) if rarely(draw) else draw(st.sampled_from([None, True, (-50.0, 300.0)])),
        "channel_order": draw(st.sampled_from(["RGB", "BGR"])),
        "layout": draw(st.sampled_from(["NCHW", "NHWC"])),
        "threads": draw(st.sampled_from([1, 2, 3, 8])),
        "planner": draw(st.sampled_from(["estimate", "estimate", "measure"])),
    }
    values = st.floats(-1e3, 1e3, allow_nan=False)
    opts["mean"] = (
        draw(st.sampled_from([np.nan, 1e19, [1.0] * (c + 1)]))
        if rarely(draw)
        else draw(st.one_of(values, st.lists(values, min_size=c, max_size=c)))
    )
    stds = st.one_of(st.floats(0.5, 300.0), st.sampled_from([-2.0, 1e-6, 1e6]))
    opts["std"] = (
        draw(st.sampled_from([1e-50, 0.0, 1e-7, 1e19]))
        if rarely(draw)
        else draw(st.one_of(stds, st.lists(stds, min_size=c, max_size=c)))
    )
    opts["order_seed"] = draw(st.integers(0, 2**32 - 1))  # the same order for both backends
    return opts


def call(
    x: np.ndarray, schedule: BandSchedule, backend: str, opts: dict[str, Any], out: str
) -> np.ndarray | InputError:
    """Run one backend; an InputError is returned as the result, any other error propagates."""
    opts = dict(opts)
    seed = opts.pop("order_seed")
    try:
        k = len(schedule.resolve(x.shape[1], x.shape[2]).bands)
    except InputError as exc:
        return exc
    if opts["mode"].startswith("cumulative"):
        order = list(range(k))
        random.Random(seed).shuffle(order)
        opts["order"] = order
    buffer = None
    if out != "none" and x.ndim == 4:
        n, h, w, c = x.shape
        shape = (n, k, c, h, w) if opts["layout"] == "NCHW" else (n, k, h, w, c)
        size = int(np.prod(shape))
        if out == "slice":  # a slice of a bigger model batch
            buffer = np.full(size + 7, -1.0, np.float32)[3 : 3 + size].reshape(shape)
        elif out == "unaligned":
            raw = np.zeros(4 * size + 64, np.uint8)
            start = (-raw.ctypes.data) % 64 + 1
            buffer = raw[start : start + 4 * size].view(np.float32).reshape(shape)
        elif out == "wrong-shape":
            buffer = np.zeros((*shape[:-1], shape[-1] + 1), np.float32)
    try:
        result = mask_bands(x, schedule, backend=backend, out=buffer, **opts)
    except InputError as exc:
        return exc
    if buffer is not None:
        assert result is buffer
    return result


@BUDGET
@given(
    x=image_batches(),
    schedule=schedules(),
    data=st.data(),
    out=st.sampled_from(["none"] * 4 + ["slice"] * 4 + ["unaligned", "wrong-shape"]),
)
def test_cpp_matches_numpy_or_both_raise_input_error(x, schedule, data, out):
    """Guards against any input on which the core crashes, raises something other than
    InputError, or differs from the reference (misread strides or offsets, a bad out= buffer,
    a std that underflows, NaN/Inf slipping through)."""
    opts = data.draw(options(x.shape[-1]))
    expected = call(x, schedule, "numpy", opts, out)
    actual = call(x, schedule, "cpp", opts, out)
    if isinstance(expected, InputError) or isinstance(actual, InputError):
        event(f"refused: {str(expected).split(' ')[0]}")
        assert type(actual) is type(expected), (actual, expected)
        assert str(actual) == str(expected)
        return
    event("compared")
    assert actual.shape == expected.shape and actual.dtype == np.float32
    assert np.isfinite(actual).all() and np.isfinite(expected).all()
    # float32 rounding is relative to the terms' size, (|x| + |mean|) / |std|, which can far
    # exceed the result (deleting the only band of an image leaves ~0).
    terms = (np.abs(x.astype(np.float64)).max() + np.abs(opts["mean"]).max()) / np.abs(
        opts["std"]
    ).min()
    scale = max(float(np.abs(expected).max()), float(terms), 1e-3)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-4 * scale)


@settings(max_examples=40, derandomize=True, deadline=None, database=None)
@given(
    x=image_batches(),
    schedule=schedules(),
    threads=st.integers(2, 9),
    mode=st.sampled_from(["delete", "keep", "cumulative_delete", "cumulative_keep"]),
)
def test_thread_count_never_changes_a_bit(x, schedule, threads, mode):
    """The core's result is bit-identical whatever its thread count."""
    try:
        one = mask_bands(x, schedule, mode, threads=1, planner="estimate")
    except InputError:
        return
    np.testing.assert_array_equal(
        mask_bands(x, schedule, mode, threads=threads, planner="estimate"), one
    )

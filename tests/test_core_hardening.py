"""The masking core under hostile use: concurrent schedules, bad channel counts, unaligned
buffers, a std that underflows, and a cache folder that cannot be used.

These run in the normal suite and, with the core built with sanitizers, in ``nox -s sanitize``
(ASan+UBSan and TSan), which turns a silent overflow or race into a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import freqxfr
from freqxfr import BandSchedule, InputError, mask_bands

pytestmark = pytest.mark.unit

CORE_ARGS = dict(
    order=[],
    normalised_domain=False,
    clip=False,
    clip_lo=0.0,
    clip_hi=0.0,
    reverse_channels=False,
    layout="NCHW",
    threads=1,
    planner_flags=0,
)


def core_mask(core, images, labels, bands, mode, *, out, regions=None, **settings):
    """Call the compiled core directly, its settings in one bound ``MaskOptions``."""
    options = core.MaskOptions()
    options.bands, options.mode = bands, mode
    for name, value in settings.items():
        setattr(options, name, value)
    core.mask_bands(images, labels, out, options, regions)


def assert_close(actual: np.ndarray, expected: np.ndarray) -> None:
    scale = max(float(np.abs(expected).max()), 1e-6)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-4 * scale)


def random_faces(rng: np.random.Generator, n: int, h: int, w: int, c: int) -> np.ndarray:
    return rng.integers(0, 256, (n, h, w, c), dtype=np.uint8)


# ---- defect 1: the plan cache under concurrent calls with different schedules ------------------


def test_concurrent_calls_with_different_schedules_and_sizes_match_the_reference():
    """Guards against workers reading the shared plan cache (a std::map) without the lock while
    another call inserts the column plans of a new schedule into it: a data race that TSan
    reports and that surfaced as ``IndexError: map::at``. Every call here brings schedules and
    sizes that no other test uses, so plans are created while other calls run."""
    rng = np.random.default_rng(8)
    sizes = [(37, 41), (37, 41), (53, 29), (53, 29), (31, 31), (44, 38)]
    jobs = []
    for i in range(24):
        h, w = sizes[i % len(sizes)]
        # Random edges: column ranges (and so column plans) that no earlier call has made.
        # Gaps of at least 0.1 keep every band non-empty at these sizes.
        edges = np.cumsum(rng.uniform(0.1, 0.3, size=8))
        edges = edges[edges < 0.9]
        schedules = [
            BandSchedule.from_edges([0.0, *edges.tolist(), 1.0]),
            BandSchedule.rings(int(rng.integers(2, 12))),
            BandSchedule.polar(2, 3),
        ]
        x = random_faces(rng, int(rng.integers(1, 4)), h, w, (1, 3)[i % 2])
        mode = ("delete", "keep", "cumulative_delete")[i % 3]
        jobs.append((x, schedules[i % 3], mode, 1 + i % 3))
    expected = [mask_bands(x, s, m, "numpy") for x, s, m, _ in jobs]
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(len(jobs))

    def work(i: int) -> None:
        x, schedule, mode, threads = jobs[i]
        start.wait()  # all at once, so that planning and running overlap
        try:
            results[i] = mask_bands(x, schedule, mode, "cpp", threads=threads, planner="estimate")
        except BaseException as exc:  # reported below with the job's index
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors, errors
    for i, exp in enumerate(expected):
        assert_close(results[i], exp)


def test_two_explainers_with_different_band_counts_share_the_core_safely(face_like_images):
    """The reported trigger of the race: two explanations with different K on one image size,
    in two threads. Here without the model: the same masking calls the Explainers make."""
    x = face_like_images[:2]
    schedules = [BandSchedule.log_rings(n) for n in (5, 7, 9, 11, 13, 15)]
    expected = [mask_bands(x, s, "delete", "numpy") for s in schedules]
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        for _ in range(3):
            results[i] = mask_bands(x, schedules[i], "delete", "cpp", threads=2, planner="estimate")

    pool = [threading.Thread(target=work, args=(i,)) for i in range(len(schedules))]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    for i, exp in enumerate(expected):
        assert_close(results[i], exp)


# ---- defect 2: bounds of the per-channel values -----------------------------------------------


@pytest.mark.parametrize("channels", [2, 4, 100])
def test_core_refuses_other_channel_counts_before_writing(channels):
    """Guards against the bindings copying C means/stds into the request's 3-element arrays
    before anyone checked C (a stack overflow for C = 4 or 100 under AddressSanitizer)."""
    core = freqxfr.core.fftw.compiled_core()
    x = np.zeros((1, 8, 8, channels), np.uint8)
    out = np.zeros((1, 2, channels, 8, 8), np.float32)
    labels = np.zeros((8, 5), np.int32)
    with pytest.raises(ValueError, match="C in"):
        core_mask(
            core,
            x,
            labels,
            2,
            "delete",
            mean=[0.0] * channels,
            std=[1.0] * channels,
            out=out,
            **CORE_ARGS,
        )


@pytest.mark.parametrize(
    ("mean", "std"),
    [([0.0] * 4, [1.0] * 4), ([0.0] * 2, [1.0] * 3), ([0.0] * 3, [1.0] * 50), ([], [])],
)
def test_core_refuses_per_channel_values_of_the_wrong_length(mean, std):
    """The core, not only its callers, checks one mean and one std per channel."""
    core = freqxfr.core.fftw.compiled_core()
    x = np.zeros((1, 8, 8, 3), np.uint8)
    out = np.zeros((1, 2, 3, 8, 8), np.float32)
    with pytest.raises(ValueError, match="one value per channel"):
        core_mask(
            core,
            x,
            np.zeros((8, 5), np.int32),
            2,
            "delete",
            mean=mean,
            std=std,
            out=out,
            **CORE_ARGS,
        )


# ---- defect 3: unaligned arrays ----------------------------------------------------------------


def unaligned(shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
    """A C-contiguous array one byte past an aligned address (a view into a byte buffer)."""
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.zeros(size + 64, np.uint8)
    start = (-raw.ctypes.data) % 64 + 1
    arr = raw[start : start + size].view(dtype).reshape(shape)
    assert not arr.flags.aligned and arr.flags.c_contiguous
    return arr


def test_unaligned_input_is_copied_and_gives_the_aligned_result(face_like_images):
    """Guards against an odd-offset float32 input reaching the core, whose float loads must be
    aligned (UBSan reports misaligned loads)."""
    x = unaligned((2, 112, 112, 3))
    x[...] = face_like_images[:2]
    schedule = BandSchedule.rings(4)
    for mode in ("delete", "cumulative_keep"):
        np.testing.assert_array_equal(
            mask_bands(x, schedule, mode), mask_bands(np.array(x), schedule, mode)
        )


def test_unaligned_out_is_refused_with_a_clear_error(face_like_images):
    """Guards against writing through a misaligned ``out=`` (UBSan: misaligned stores); copying
    instead would break the promise that the result lands in the caller's buffer."""
    out = unaligned((2, 4, 3, 112, 112))
    with pytest.raises(InputError, match="out must be aligned"):
        mask_bands(face_like_images[:2], BandSchedule.rings(4), out=out)


def test_core_itself_refuses_unaligned_buffers():
    """The core checks alignment whoever calls it, not only through mask_bands."""
    core = freqxfr.core.fftw.compiled_core()
    labels = np.zeros((8, 5), np.int32)
    good_x, good_out = np.zeros((1, 8, 8, 1), np.float32), np.zeros((1, 2, 1, 8, 8), np.float32)
    args = dict(mean=[0.0], std=[1.0], **CORE_ARGS)
    for x, out in ((unaligned((1, 8, 8, 1)), good_out), (good_x, unaligned((1, 2, 1, 8, 8)))):
        with pytest.raises(ValueError, match="aligned"):
            core_mask(core, x, labels, 2, "delete", out=out, **args)


# ---- defect 4: a std that underflows -----------------------------------------------------------


@pytest.mark.parametrize("backend", ["cpp", "numpy", "scipy", "pyfftw"])
@pytest.mark.parametrize("std", [1e-50, (1.0, 1e-50, 1.0), 1e-300, 1e-7, 1e30, -1e-45])
def test_every_backend_refuses_an_unusable_std_alike(face_like_images, backend, std):
    """Guards against a std of 1e-50 (0 in float32) giving a plain ValueError from the cpp
    backend and Inf/NaN or silent values from the others."""
    with pytest.raises(InputError, match=r"std must be finite with 1e-06 <= \|std\| <= 1e\+18"):
        mask_bands(face_like_images[:1], BandSchedule.rings(4), backend=backend, std=std)


@pytest.mark.parametrize("backend", ["cpp", "numpy"])
def test_smallest_allowed_std_gives_finite_equal_results(face_like_images, backend):
    """At the limits that are accepted, every backend stays finite and agrees."""
    x = face_like_images[:1].astype(np.float32) * np.float32(1e15)
    result = mask_bands(x, BandSchedule.rings(4), backend=backend, std=1e-6, mean=-1e18)
    assert np.isfinite(result).all()
    assert_close(
        result, mask_bands(x, BandSchedule.rings(4), backend="numpy", std=1e-6, mean=-1e18)
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mean": 1e19}, "mean must be finite, within"),
        ({"mean": float("nan")}, "mean must be finite"),
        ({"clip": (0.0, 1e300)}, "clip range must be finite"),
    ],
)
def test_values_beyond_float32_range_are_refused(face_like_images, kwargs, message):
    with pytest.raises(InputError, match=message):
        mask_bands(face_like_images[:1], BandSchedule.rings(4), **kwargs)


def test_float_images_beyond_the_limit_are_refused():
    x = np.zeros((1, 16, 16, 3), np.float32)
    x[0, 3, 4, 1] = 3e38
    with pytest.raises(InputError, match=r"beyond ±1e\+18 \(first at index \(0, 3, 4, 1\)"):
        mask_bands(x, BandSchedule.rings(4))


# ---- defect 8: the cache is optional for masking -----------------------------------------------

MASK_TWICE = """
import numpy as np, freqxfr
x = np.random.default_rng(0).integers(0, 256, (2, 24, 20, 3), dtype=np.uint8)
ref = freqxfr.mask_bands(x, freqxfr.BandSchedule.rings(4), backend="numpy")
for size in (24, 30):  # two shapes: the wisdom is saved twice, the warning comes once
    y = x[:, :size] if size == 24 else np.pad(x, ((0, 0), (0, 6), (0, 0), (0, 0)))
    freqxfr.mask_bands(y, freqxfr.BandSchedule.rings(4), backend="cpp")
out = freqxfr.mask_bands(x, freqxfr.BandSchedule.rings(4), backend="cpp")
assert np.allclose(out, ref, atol=1e-3), "cpp differs from numpy"
print("masked")
"""


def broken_caches(tmp_path: Path) -> dict[str, Path]:
    """Cache folders that cannot be used, also for root (who ignores permission bits)."""
    regular = tmp_path / "a-file"
    regular.write_text("not a folder")
    fftw_is_file = tmp_path / "fftw-is-a-file"
    fftw_is_file.mkdir()
    (fftw_is_file / "fftw").write_text("not a folder")
    return {"under a regular file": regular / "cache", "fftw is a file": fftw_is_file}


@pytest.mark.parametrize("case", ["under a regular file", "fftw is a file", "read-only"])
def test_masking_works_without_a_usable_cache_and_warns_once(tmp_path, case):
    """Guards against mask_bands(backend="cpp") raising NotADirectoryError/PermissionError when
    the cache folder is unusable: FFTW wisdom only saves planning time."""
    if case == "read-only":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders; the other cases cover this")
        folder = tmp_path / "ro"
        (folder / "fftw").mkdir(parents=True)
        (folder / "fftw").chmod(0o500)
    else:
        folder = broken_caches(tmp_path)[case]
    env = {**os.environ, "FREQXFR_CACHE_DIR": str(folder)}
    run = subprocess.run(
        [sys.executable, "-c", MASK_TWICE], env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "masked"
    assert run.stderr.count("CacheWarning") == 1, run.stderr
    assert "FFTW wisdom is not kept" in run.stderr
    assert "Traceback" not in run.stderr


def test_wisdom_that_cannot_be_written_warns_once(tmp_path):
    """A wisdom file that cannot be replaced (here: a folder in its place) costs one warning."""
    cache = tmp_path / "cache"
    env = {**os.environ, "FREQXFR_CACHE_DIR": str(cache)}
    code = (
        "import freqxfr.core.fftw as f; f.compiled_core(); import pathlib; "
        "p = f._wisdom_path(); p.unlink(missing_ok=True); p.mkdir(); print(p)"
    )
    subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, timeout=600
    )
    run = subprocess.run(
        [sys.executable, "-c", MASK_TWICE], env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr
    assert run.stderr.count("CacheWarning") == 1, run.stderr

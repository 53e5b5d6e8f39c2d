"""Region cells in ``mask_bands(..., regions=W)``: the C++ core against the numpy reference on real
faces, the algebra that makes cells meaningful, and the refusals of bad weights."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

import freqxfr
from freqxfr import BandSchedule, InputError, mask_bands

pytestmark = pytest.mark.unit

MODES = ["delete", "keep", "cumulative_delete", "cumulative_keep"]
NORM = {"mean": (122.782, 117.001, 104.298), "std": 64.0}


def faces_at(face_like_images: np.ndarray, h: int, w: int, c: int, n: int = 2) -> np.ndarray:
    out = []
    for img in face_like_images[:n]:
        pil = Image.fromarray(img).resize((w, h), Image.BICUBIC)
        out.append(np.asarray(pil.convert("L"))[..., None] if c == 1 else np.asarray(pil))
    return np.stack(out)


def smooth_partition(h: int, w: int, r: int, seed: int = 0) -> np.ndarray:
    """R smooth, positive weight planes that sum to 1 at every pixel (softmax of blurred noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    logits = np.stack(
        [
            np.sin(2 * np.pi * (rng.uniform(0.5, 2) * yy + rng.uniform())) * 3
            + np.cos(2 * np.pi * (rng.uniform(0.5, 2) * xx + rng.uniform())) * 3
            for _ in range(r)
        ]
    )
    e = np.exp(logits - logits.max(axis=0))
    return (e / e.sum(axis=0)).astype(np.float32)


def assert_close(actual: np.ndarray, expected: np.ndarray, rtol: float = 1e-4) -> None:
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale)


def cell_order(k: int, r: int, seed: int = 1) -> list[int]:
    return np.random.default_rng(seed).permutation(k * r).tolist()


@pytest.mark.parametrize("size", [(112, 112), (150, 150), (111, 97), (112, 96)], ids=str)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("mode", MODES)
def test_cpp_matches_numpy_for_region_cells(face_like_images, size, channels, mode):
    """The core's fused weighted write (and its DC offset per pixel in the normalised domain)
    computes what the float64 reference computes, for every mode, size and channel count."""
    x = faces_at(face_like_images, *size, channels)
    schedule, regions = BandSchedule.rings(4), smooth_partition(*size, 3)
    order = cell_order(4, 3) if mode.startswith("cumulative") else None
    norm = {"mean": NORM["mean"][:channels], "std": NORM["std"]}
    for options in ({"domain": "pixel"}, {"domain": "normalised", "clip": True}):
        expected = mask_bands(
            x, schedule, mode, "numpy", order=order, regions=regions, **norm, **options
        )
        actual = mask_bands(
            x, schedule, mode, "cpp", order=order, regions=regions, **norm, **options
        )
        assert actual.shape == (2, 12, channels, *size)
        assert_close(actual, expected)


@pytest.mark.parametrize("backend", ["cpp", "scipy", "pyfftw"])
def test_other_layouts_and_backends_match_numpy(face_like_images, backend):
    x = face_like_images[:2]
    regions = smooth_partition(112, 112, 4, seed=3)
    for mode in ("delete", "cumulative_keep"):
        options = {
            "mean": NORM["mean"],
            "std": (50.0, 60.0, 70.0),
            "channel_order": "BGR",
            "layout": "NHWC",
            "domain": "normalised",
            "regions": regions,
            "order": cell_order(3, 4) if mode.startswith("cumulative") else None,
        }
        expected = mask_bands(x, BandSchedule.polar(3, 1), mode, "numpy", **options)
        actual = mask_bands(x, BandSchedule.polar(3, 1), mode, backend, **options)
        assert actual.shape == (2, 12, 112, 112, 3)
        assert_close(actual, expected)


@pytest.mark.parametrize("backend", ["cpp", "numpy"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("domain", ["pixel", "normalised"])
def test_one_all_ones_region_is_band_only_masking_bit_for_bit(
    face_like_images, backend, mode, domain
):
    """Guards against the weighted path rounding differently from the band path (e.g. adding
    the normalised-domain offset in another order), which would make a one-region explanation
    drift from the band explanation."""
    x = face_like_images[:3]
    schedule = BandSchedule.rings(6)
    order = [4, 0, 5, 2, 1, 3] if mode.startswith("cumulative") else None
    options = {"mode": mode, "backend": backend, "order": order, "domain": domain, **NORM}
    band_only = mask_bands(x, schedule, **options)
    one_region = mask_bands(x, schedule, regions=np.ones((1, 112, 112), np.float32), **options)
    if backend == "cpp":
        np.testing.assert_array_equal(one_region, band_only)
    else:  # float64 reference: w·b with w = 1 is exact there too, up to the final cast
        np.testing.assert_allclose(one_region, band_only, rtol=0, atol=1e-6)


@pytest.mark.parametrize("domain", ["pixel", "normalised"])
def test_cells_of_a_band_add_up_to_its_deletion(face_like_images, domain):
    """With weights summing to 1, Σ_r (cell_{k,r} − x) = delete_k − x: the region cells split the
    band's perturbation exactly (to float32 precision), in both domains."""
    x = face_like_images[:2]
    schedule, regions = BandSchedule.rings(8), smooth_partition(112, 112, 6, seed=5)
    options = {"domain": domain, "mean": NORM["mean"], "std": 1.0}
    band = mask_bands(x, schedule, "delete", **options)  # (N, K, C, H, W): x - b_k, normalised
    cells = mask_bands(x, schedule, "delete", regions=regions, **options).reshape(
        2, 8, 6, 3, 112, 112
    )
    reference = mask_bands(x, BandSchedule.rings(1), "keep", **options)[
        :, :1
    ]  # x itself, normalised
    summed = (cells - reference[:, :, None]).sum(axis=2)
    np.testing.assert_allclose(summed, band - reference, rtol=0, atol=2e-3)
    assert float(np.abs(band - reference).max()) > 50  # the band perturbation is far from 0


def test_keep_cells_add_up_to_the_image_and_cumulative_ends_empty(face_like_images):
    """Keep cells of all bands and regions sum to the image (the bands and the weights are both
    partitions); deleting every cell cumulatively leaves nothing."""
    x = face_like_images[:2]
    schedule, regions = BandSchedule.rings(5), smooth_partition(112, 112, 4, seed=7)
    keep = mask_bands(x, schedule, "keep", regions=regions)
    np.testing.assert_allclose(
        keep.sum(axis=1), np.moveaxis(x, -1, 1).astype(np.float32), atol=2e-3
    )
    order = cell_order(5, 4, seed=2)
    deleted = mask_bands(x, schedule, "cumulative_delete", order=order, regions=regions)
    kept = mask_bands(x, schedule, "cumulative_keep", order=order, regions=regions)
    assert np.abs(deleted[:, -1]).max() < 2e-3
    np.testing.assert_allclose(
        deleted + kept, np.broadcast_to(np.moveaxis(x, -1, 1)[:, None], kept.shape), atol=2e-3
    )
    # Step j of the cumulative keep is the sum of the first j+1 keep cells of the order.
    np.testing.assert_allclose(kept[:, 6], keep[:, order[:7]].sum(axis=1), atol=2e-3)


def test_a_cell_changes_the_image_only_where_its_weight_is(face_like_images):
    """A cell of a window that is 0 outside a box leaves the image untouched outside the box."""
    x = face_like_images[:1]
    box = np.zeros((2, 112, 112), np.float32)
    box[0, 30:60, 20:90] = 1.0
    box[1] = 1.0 - box[0]
    out = mask_bands(x, BandSchedule.rings(4), "delete", regions=box)  # (1, 8, 3, H, W)
    original = np.moveaxis(x, -1, 1).astype(np.float32)[0]
    outside = box[0] == 0
    np.testing.assert_array_equal(out[0, 0][:, outside], original[:, outside])  # cell (0, box)
    assert np.abs(out[0, 0][:, ~outside] - original[:, ~outside]).max() > 10


def test_results_with_regions_do_not_depend_on_threads(face_like_images):
    x = face_like_images[:3]
    regions = smooth_partition(112, 112, 3)
    for mode in ("delete", "cumulative_delete"):
        order = cell_order(4, 3) if mode.startswith("cumulative") else None
        one = mask_bands(x, BandSchedule.rings(4), mode, regions=regions, order=order, threads=1)
        for threads in (2, 3, 8):
            np.testing.assert_array_equal(
                mask_bands(
                    x, BandSchedule.rings(4), mode, regions=regions, order=order, threads=threads
                ),
                one,
            )


def test_region_masking_is_safe_from_several_python_threads(face_like_images):
    """Concurrent calls with regions of different counts and sizes (under TSan in CI)."""
    x = face_like_images[:2]
    jobs = [
        (x, smooth_partition(112, 112, r, seed=r), mode)
        for r in (1, 2, 5)
        for mode in ("keep", "cumulative_keep")
    ]
    jobs.append((faces_at(face_like_images, 60, 50, 1), smooth_partition(60, 50, 3), "delete"))
    expected = []
    for images, regions, mode in jobs:
        k = 3 * len(regions)
        order = list(range(k))[::-1] if mode.startswith("cumulative") else None
        expected.append(
            mask_bands(images, BandSchedule.rings(3), mode, regions=regions, order=order)
        )
    results: dict[int, np.ndarray] = {}

    def run(i: int) -> None:
        images, regions, mode = jobs[i]
        order = list(range(3 * len(regions)))[::-1] if mode.startswith("cumulative") else None
        results[i] = mask_bands(
            images, BandSchedule.rings(3), mode, regions=regions, order=order, threads=2
        )

    pool = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    for i, exp in enumerate(expected):
        np.testing.assert_array_equal(results[i], exp)


def with_value(value: float) -> np.ndarray:
    w = np.full((2, 112, 112), 0.5, np.float32)
    w[1, 7, 9] = value
    return w


@pytest.mark.parametrize(
    ("regions", "message"),
    [
        ([[0.5]], "must be a numpy array"),
        (np.ones((1, 112, 112), np.int32), "dtype int32"),
        (np.ones((112, 112), np.float32), r"3-D \(R, H, W\).*weights\[None\]"),
        (np.ones((2, 112, 100), np.float32), r"must be \(R, 112, 112\)"),
        (np.ones((0, 112, 112), np.float32), "1..4096 regions"),
        (with_value(np.nan), r"NaN or Inf \(first at index \(1, 7, 9\)"),
        (with_value(np.inf), "NaN or Inf"),
        (with_value(-0.25), r"a negative weight \(first at index \(1, 7, 9\): -0.25\)"),
        (with_value(1.5), "a weight above 1"),
    ],
)
@pytest.mark.parametrize("backend", ["cpp", "numpy"])
def test_bad_weights_are_refused_with_the_problem_named(
    face_like_images, regions, message, backend
):
    with pytest.raises(InputError, match=message) as info:
        mask_bands(face_like_images[:1], BandSchedule.rings(4), backend=backend, regions=regions)
    assert str(info.value).startswith("regions")


def test_an_order_over_bands_is_refused_when_cells_are_masked(face_like_images):
    with pytest.raises(InputError, match=r"permutation of 0..7 \(the K·R cells"):
        mask_bands(
            face_like_images[:1],
            BandSchedule.rings(4),
            "cumulative_delete",
            order=[0, 1, 2, 3],
            regions=smooth_partition(112, 112, 2),
        )


def test_float64_weights_are_converted_and_give_the_float32_result(face_like_images):
    w32 = smooth_partition(112, 112, 2)
    np.testing.assert_array_equal(
        mask_bands(face_like_images[:1], BandSchedule.rings(3), regions=w32.astype(np.float64)),
        mask_bands(face_like_images[:1], BandSchedule.rings(3), regions=w32),
    )


def test_core_checks_region_planes_itself():
    """The core refuses weights of the wrong shape whoever calls it, before it writes."""
    core = freqxfr.core.fftw.compiled_core()
    options = core.MaskOptions()
    options.bands, options.mean, options.std = 2, [0.0], [1.0]
    x = np.zeros((1, 8, 8, 1), np.float32)
    labels = np.zeros((8, 5), np.int32)
    with pytest.raises(ValueError, match="regions must have shape"):
        core.mask_bands(
            x,
            labels,
            np.zeros((1, 4, 1, 8, 8), np.float32),
            options,
            np.ones((2, 8, 7), np.float32),
        )
    with pytest.raises(ValueError, match="dtype"):
        core.mask_bands(
            x,
            labels,
            np.zeros((1, 4, 1, 8, 8), np.float32),
            options,
            np.ones((2, 8, 8), np.float64),
        )

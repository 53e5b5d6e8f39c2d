"""Region sets: partitions of unity, placed on the models' templates, and their spectral spread."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from freqxfr import BandSchedule, InputError
from freqxfr.imaging.align import ARCFACE_TEMPLATE_112, dlib_chip_landmarks
from freqxfr.imaging.regions import FACE_REGIONS, Regions, as_regions, spectral_spread


def assert_partition(weights: np.ndarray) -> None:
    assert weights.dtype == np.float32 and weights.flags.c_contiguous
    assert weights.min() >= 0 and weights.max() <= 1
    np.testing.assert_allclose(weights.sum(axis=0), 1.0, atol=1e-6)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("rows", "cols", "size"), [(3, 3, (112, 112)), (2, 3, (150, 150)), (1, 4, (97, 111))]
)
def test_grid_is_a_smooth_partition_of_unity(rows, cols, size):
    regions = Regions.grid(rows, cols).resolve(*size)
    assert len(regions) == rows * cols and regions.names[0] == "r0c0"
    assert_partition(regions.weights)
    # Smooth: no jump larger than a raised-cosine crossfade half a cell wide allows.
    cell = min(size[0] / rows, size[1] / cols)
    steepest = max(np.abs(np.diff(regions.weights, axis=a)).max() for a in (1, 2))
    assert steepest <= np.pi / (2 * 0.5 * cell) + 1e-3
    # Each cell is 1 at its own centre.
    h, w = size
    for i in range(rows):
        for j in range(cols):
            y, x = int((i + 0.5) * h / rows), int((j + 0.5) * w / cols)
            assert regions.weights[i * cols + j, y, x] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.unit
def test_grid_with_hard_edges_is_blocks():
    weights = Regions.grid(2, 2, edge=0).resolve(8, 8).weights
    assert set(np.unique(weights)) == {0.0, 1.0}
    assert weights[0, :4, :4].all() and not weights[0, 4:, :].any()


@pytest.mark.unit
@pytest.mark.parametrize(("alignment", "size"), [("arcface112", 112), ("dlib_chip", 150)])
def test_face_regions_sit_on_the_template_landmarks(alignment, size):
    """The eye regions are on the template's eyes, the mouth below the nose, the background at
    the corners: guards against swapped x/y or a template of the other model."""
    regions = Regions.face().resolve(size, size, alignment)
    assert regions.names == FACE_REGIONS
    assert_partition(regions.weights)
    w = dict(zip(regions.names, regions.weights, strict=True))
    if alignment == "arcface112":
        left, right = ARCFACE_TEMPLATE_112[0], ARCFACE_TEMPLATE_112[1]
        nose = ARCFACE_TEMPLATE_112[2]
    else:
        p = dlib_chip_landmarks(size)
        left, right, nose = (p[2] + p[3]) / 2, (p[0] + p[1]) / 2, p[4]
    for name, (x, y) in (("left_eye", left), ("right_eye", right), ("nose", nose)):
        assert w[name][int(y), int(x)] > 0.9, name
    mouth_y = np.argmax(w["mouth"].sum(axis=1))
    assert mouth_y > nose[1]
    assert w["brows"].sum(axis=1).argmax() < left[1]
    for corner in ((0, 0), (0, -1), (-1, 0)):
        assert w["background"][corner] > 0.99
    assert regions.provenance["kind"] == "face" and alignment in regions.provenance["template"]


@pytest.mark.unit
def test_custom_maps_must_sum_to_one_or_be_completed(tmp_path):
    a = np.zeros((112, 112), np.float32)
    a[20:60, 20:90] = 1.0
    with pytest.raises(
        InputError, match=r"must sum to 1 at every pixel .* sum to 0.0000 at pixel \(0, 0\)"
    ):
        Regions.from_arrays(a[None])
    regions = Regions.from_arrays(a[None], ["box"], complete=True).resolve(112, 112)
    assert regions.names == ("box", "rest")
    assert_partition(regions.weights)
    with pytest.raises(InputError, match=r"sum to 2\.0000 > 1"):
        Regions.from_arrays(np.stack([a, a]), complete=True)
    with pytest.raises(InputError, match="a negative weight"):
        Regions.from_arrays(np.stack([a - 0.5, 1.5 - a]))
    with pytest.raises(InputError, match="2 distinct names"):
        Regions.from_arrays(np.stack([a, 1 - a]), ["x", "x"])
    # From image files, at another size: resized to the model's input and still a partition.
    Image.fromarray((a * 255).astype(np.uint8)).resize((56, 56)).save(tmp_path / "box.png")
    from_files = Regions.from_images([tmp_path / "box.png"], complete=True)
    resolved = from_files.resolve(112, 112)
    assert resolved.names == ("box", "rest") and resolved.weights.shape == (2, 112, 112)
    assert_partition(resolved.weights)
    assert resolved.weights[0, 40, 50] > 0.99 and resolved.weights[0, 100, 100] < 0.01
    assert resolved.provenance["source"].endswith("box.png")
    (tmp_path / "bad.png").write_text("not an image")
    with pytest.raises(InputError, match=r"bad.png: cannot read it as an image"):
        Regions.from_images([tmp_path / "bad.png"])


@pytest.mark.unit
@pytest.mark.parametrize(("text", "count"), [("face", 7), ("grid:3x3", 9), ("grid:2x4", 8)])
def test_parse(text, count):
    assert len(as_regions(text).resolve(112, 112)) == count


@pytest.mark.unit
@pytest.mark.parametrize("text", ["grid", "grid:3", "grid:0x3", "eyes", "grid:3x3x3"])
def test_parse_refuses_other_text(text):
    with pytest.raises(InputError, match="regions"):
        as_regions(text)


@pytest.mark.model
@pytest.mark.parametrize("regions", ["face", "grid:3x3"])
def test_cells_stay_near_their_band_on_real_faces(lfw_images, regions):
    """The windows' soft edges keep a cell's energy in its band or the next one: on real LFW
    faces at 8 rings, every cell keeps at least 90% of its energy within one band of its own
    (measured: at most 4.8% beyond for face, 7.2% for grid:3x3), and over all cells at most 3%
    of the energy leaves the own band (measured 0.8% and 2.0%)."""
    resolved = as_regions(regions).resolve(112, 112)
    beyond, _ = spectral_spread(lfw_images, BandSchedule.rings(8), resolved, neighbours=1)
    _, pooled_outside = spectral_spread(lfw_images, BandSchedule.rings(8), resolved)
    assert beyond.shape == (8, len(resolved))
    assert beyond.max() < 0.10
    assert pooled_outside < 0.03
    # A hard-edged grid spreads more: the check can tell smooth windows from hard ones.
    hard = Regions.grid(3, 3, edge=0).resolve(112, 112)
    hard_beyond, _ = spectral_spread(lfw_images, BandSchedule.rings(8), hard, neighbours=1)
    assert hard_beyond.max() > beyond.max()


@pytest.mark.unit
def test_grid_crossfade_is_edge_cells_wide_and_centred_on_the_boundary():
    """A 1 × 2 grid over 16 columns, edge 0.5: cell units x = (col + 0.5) / 8, the boundary at
    x = 1, the crossfade over x in [0.75, 1.25] with the right cell's weight 0.5 − 0.5·cos(πt),
    t = (x − 0.75) / 0.5. So columns 0..5 belong to the left cell only, 6..9 fade
    (t = 1/8, 3/8, 5/8, 7/8), 10..15 belong to the right cell; the two cells mirror each other."""
    weights = Regions.grid(1, 2, edge=0.5).resolve(4, 16).weights
    right = weights[1, 0]
    t = np.array([1, 3, 5, 7]) / 8
    expected = np.concatenate([np.zeros(6), 0.5 - 0.5 * np.cos(np.pi * t), np.ones(6)])
    np.testing.assert_allclose(right, expected, atol=1e-6)
    np.testing.assert_allclose(weights[0, 0], 1.0 - expected, atol=1e-6)
    np.testing.assert_allclose(weights[0, 0], right[::-1], atol=1e-6)
    assert (weights == weights[:, :1]).all()  # one row of a 1-row grid: the same on every row


@pytest.mark.unit
def test_as_regions_takes_maps_and_refuses_other_types():
    """An array of maps is a custom region set (names region0, region1, ...); a Regions is taken
    as it is; a number, a list or None is refused with one line naming what it got."""
    maps = np.zeros((2, 8, 8), np.float32)
    maps[0, :, :3] = 1.0
    maps[1, :, 3:] = 1.0
    regions = as_regions(maps)
    assert regions.kind == "custom"
    resolved = regions.resolve(8, 8)
    assert resolved.names == ("region0", "region1")
    np.testing.assert_array_equal(resolved.weights, maps)
    grid = Regions.grid(2, 2)
    assert as_regions(grid) is grid
    for other in (3, [[0.5]], None):
        with pytest.raises(InputError, match=f"regions must be .* got {type(other).__name__}"):
            as_regions(other)


@pytest.mark.unit
def test_hard_edged_grid_gives_a_pixel_centred_on_a_boundary_to_the_later_cell():
    """Two hard-edged cells over 5 pixels: centres at x = 0.2, 0.6, 1.0, 1.4, 1.8 cell units.
    The middle pixel lies on the boundary x = 1; it belongs to the second cell (x ≥ b), so the
    cells hold 2 and 3 pixels. Which cell gets it is a convention, but it is the one every run
    recorded so far used: another would change the cells of such grids."""
    weights = Regions.grid(1, 2, edge=0).resolve(1, 5).weights
    np.testing.assert_array_equal(weights[:, 0], [[1, 1, 0, 0, 0], [0, 0, 1, 1, 1]])

"""Band schedules: partitions, exact edges, conjugate symmetry, serialisation, validation."""

from __future__ import annotations

import numpy as np
import pytest

from freqxfr import BandSchedule, InputError
from freqxfr.core.bands import signed_frequencies

pytestmark = pytest.mark.unit

SIZES = [(112, 112), (150, 150), (111, 97), (64, 100), (15, 17)]
SCHEDULES = {
    "rings16": BandSchedule.rings(16),
    "rings8_nyquist": BandSchedule.rings(8, extent="nyquist"),
    "log8": BandSchedule.log_rings(8, first=0.1),
    "edges_cycles": BandSchedule.from_edges([0, 1, 2.5, 3], unit="cycles"),
    "polar3x4": BandSchedule.polar(3, sectors=4),
}


def conjugate(labels: np.ndarray) -> np.ndarray:
    h, w = labels.shape
    return labels[(-np.arange(h)) % h][:, (-np.arange(w)) % w]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", SCHEDULES)
def test_conjugate_coefficients_share_a_band(name, size):
    labels = SCHEDULES[name].resolve(*size).labels_full
    np.testing.assert_array_equal(labels, conjugate(labels))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_rings_to_the_corner_partition_every_coefficient(size):
    resolved = BandSchedule.rings(4).resolve(*size)
    assert resolved.is_partition
    assert sum(b.count for b in resolved.bands) == size[0] * size[1]
    assert resolved.dc_band == 0


def test_rings_to_nyquist_leave_the_corners_out():
    resolved = BandSchedule.rings(8, extent="nyquist").resolve(112, 112)
    fu, fv = np.meshgrid(signed_frequencies(112), signed_frequencies(112), indexing="ij")
    r2 = fu**2 + fv**2
    assert (resolved.labels_full[r2 < 56**2] >= 0).all()
    assert (resolved.labels_full[r2 >= 56**2] == -1).all()


def test_a_coefficient_on_a_ring_edge_goes_to_the_ring_above():
    # At 112×112 the corner radius² is 2·56² = 6272; rings(16) puts edge 2 at r² = 4·6272/256 = 98,
    # which the coefficient (7, 7) hits exactly. Rule: lo <= r < hi.
    labels = BandSchedule.rings(16).resolve(112, 112).labels_full
    assert labels[7, 7] == 2
    assert labels[7, 6] == 1  # r² = 85 < 98
    # The corner itself belongs to the last ring.
    assert labels[56, 56] == 15


def test_edges_in_cycles_per_image():
    resolved = BandSchedule.from_edges([0, 4, 8, 80], unit="cycles").resolve(112, 112)
    labels = resolved.labels_full
    assert labels[0, 3] == 0 and labels[0, 4] == 1 and labels[4, 0] == 1 and labels[0, 8] == 2
    assert resolved.bands[1].cycles_lo == pytest.approx(4.0)
    assert resolved.bands[1].radius_hi == pytest.approx(8 / np.sqrt(2 * 56**2))


def test_polar_sectors_follow_orientation():
    labels = BandSchedule.polar(2, sectors=4).resolve(64, 64).labels_full
    ring1 = 1 * 4
    assert labels[0, 30] == ring1 + 0  # horizontal frequency axis
    assert labels[25, 25] == ring1 + 1  # on the 45° edge: the sector starting there
    assert labels[30, 0] == ring1 + 2  # vertical axis
    assert labels[64 - 25, 25] == ring1 + 3  # 135°


def test_band_info_reports_ranges_and_counts():
    resolved = BandSchedule.rings(4).resolve(112, 112)
    corner = np.sqrt(2 * 56**2)
    b = resolved.bands[1]
    assert (b.radius_lo, b.radius_hi) == pytest.approx((0.25, 0.5))
    assert (b.cycles_lo, b.cycles_hi) == pytest.approx((0.25 * corner, 0.5 * corner))
    assert b.count == int((resolved.labels_full == 1).sum()) > 0
    assert b.to_dict()["radius"] == pytest.approx([0.25, 0.5])


@pytest.mark.parametrize("name", SCHEDULES)
def test_json_roundtrip_is_exact(name):
    schedule = SCHEDULES[name]
    again = BandSchedule.from_json(schedule.to_json())
    assert again == schedule
    np.testing.assert_array_equal(
        again.resolve(112, 112).labels_full, schedule.resolve(112, 112).labels_full
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: BandSchedule.from_edges([0, 0.5, 0.4, 1]), "increase"),
        (lambda: BandSchedule.from_edges([0, 0.5, 1.2]), r"\[0, 1\]"),
        (lambda: BandSchedule.from_edges([0]), "at least two edges"),
        (lambda: BandSchedule.rings(0), "positive integer"),
        (lambda: BandSchedule.polar(4, sectors=0), "positive integer"),
        (lambda: BandSchedule.rings(100).resolve(8, 8), "distinct radii"),
        (
            lambda: BandSchedule.from_edges([0, 0.3, 0.3001, 1]).resolve(16, 16),
            "band 1 .* holds no",
        ),
        (lambda: BandSchedule.from_json("[1, 2]"), "object"),
        (lambda: BandSchedule.from_json("{"), "malformed"),
        (lambda: BandSchedule.from_dict({"kind": "rings"}), "not a valid band schedule"),
    ],
)
def test_invalid_schedules_raise_value_error(make, message):
    with pytest.raises(ValueError, match=message) as info:
        make()
    assert isinstance(info.value, InputError)

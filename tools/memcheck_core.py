"""Drive the C++ core through every mode, layout and odd size, for valgrind (``nox -s memcheck``)."""

import numpy as np

from freqxfr import BandSchedule, mask_bands

rng = np.random.default_rng(0)
for h, w in [(15, 17), (16, 16), (33, 20)]:
    x = rng.integers(0, 255, (2, h, w, 3), dtype=np.uint8)
    for mode in ["delete", "keep", "cumulative_delete", "cumulative_keep"]:
        for layout in ["NCHW", "NHWC"]:
            mask_bands(
                x,
                BandSchedule.rings(4),
                mode,
                threads=2,
                layout=layout,
                clip=True,
                planner="estimate",
            )
    mask_bands(
        x.astype(np.float32)[..., :1], BandSchedule.polar(2, 2), threads=3, planner="estimate"
    )
    # Region cells: weighted writes and cumulative modes over the K*R cells (issue 13).
    weights = rng.dirichlet(np.ones(3), (h, w)).transpose(2, 0, 1).astype(np.float32)
    for mode in ["delete", "keep", "cumulative_delete", "cumulative_keep"]:
        for layout in ["NCHW", "NHWC"]:
            order = rng.permutation(12).tolist() if mode.startswith("cumulative") else None
            mask_bands(
                x,
                BandSchedule.rings(4),
                mode,
                threads=2,
                layout=layout,
                domain="normalised",
                mean=100.0,
                clip=True,
                planner="estimate",
                regions=weights,
                order=order,
            )
print("done")

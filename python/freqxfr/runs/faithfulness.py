"""Faithfulness over a dataset run (``freqxfr dataset ... --faithfulness``), resumably.

As each pair is explained, it gets its deletion and insertion curves from its result record's
directed influences and the faces the pair stream aligned for it (nothing is aligned or
explained twice; :class:`CurvesLog`); pairs explained before (a resume, a Dask run) get theirs
afterwards (:func:`run_faithfulness`). ``OUT/faithfulness.jsonl``
holds one line per pair, appended and flushed as it finishes: the pair index, the seeds, one
record per explained image (:func:`freqxfr.explanations.faithfulness.image_records`) and the curves. A restart
skips the pairs already there (a partial last line is dropped and redone); a restart with other
seeds is refused. The per-class summary goes into ``summary.json["faithfulness"]``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from freqxfr.common.errors import OutputError
from freqxfr.common.progress import progress_bar
from freqxfr.explanations import stream
from freqxfr.explanations.explainer import Explainer
from freqxfr.explanations.faithfulness import (
    NULL_INFO,
    VARIANT_INFO,
    Faithfulness,
    SideCurves,
    faithfulness_of,
    image_records,
    seed_list,
    summarise_faithfulness,
)
from freqxfr.explanations.pairs import Pair
from freqxfr.imaging.images import AlignedFace
from freqxfr.runs.folder import ResultsLog, read_results

FILE = "faithfulness.jsonl"


class CurvesLog:
    """``OUT/faithfulness.jsonl`` of a dataset run, open for appending: :meth:`add` computes one
    explained pair's curves from the faces the pair stream aligned for its explanation, and from
    its results record (nothing is aligned or explained twice). A restart with other seeds is
    refused when it is opened."""

    def __init__(self, out: Path, explainer: Explainer, seeds: int | Sequence[int]) -> None:
        self.path = out / FILE
        self.seeds = list(seed_list(seeds))
        self.explainer = explainer
        _check_seeds(self.path, self.seeds)
        self._log = ResultsLog(self.path, key=lambda line: int(line["index"]))
        self.done = self._log.open()  # drops a partial last line from a crash; it is redone

    def add(self, pair: Pair, faces: Sequence[AlignedFace], record: Mapping[str, Any]) -> None:
        """The curves of the explained pair of ``record`` (unless they are there already)."""
        index = int(record["index"])
        if index in self.done:
            return
        result = faithfulness_of(
            self.explainer,
            np.stack([face.pixels for face in faces]),
            (record["a"]["directed"], record["b"]["directed"]),
            float(record["score_ref"]),
            seeds=self.seeds,
            same=record.get("same"),
        )
        paths = (str(pair.path_a), str(pair.path_b))
        self._log.append(_line(index, self.seeds, result, paths, pair.identities))
        self.done.add(index)

    def close(self) -> None:
        self._log.close()

    def __enter__(self) -> CurvesLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_faithfulness(
    pairs: Sequence[Pair],
    out_dir: str | os.PathLike[str],
    explainer: Explainer,
    *,
    seeds: int | Sequence[int] = 5,
    progress: bool = True,
    aligned: bool | None = None,
) -> dict[str, Any]:
    """Curves for every explained pair of the run in ``out_dir`` that has none yet (pairs
    explained by an earlier run or on a Dask cluster: a dataset run adds the others as it
    explains them, :class:`CurvesLog`); returns the summary part. Each pair's images are
    aligned once, through the pair stream's alignment."""
    with CurvesLog(Path(out_dir), explainer, seeds) as curves:
        todo = [
            r
            for r in read_results(Path(out_dir) / "results.jsonl")
            if "error" not in r and int(r["index"]) not in curves.done
        ]
        bar = None
        if todo:
            total = len(todo) + len(curves.done)
            bar = progress_bar(progress, total, done=len(curves.done), desc="faithfulness")
        try:
            for record in todo:
                pair = pairs[int(record["index"])]
                curves.add(pair, stream.align_pair(explainer, pair, aligned), record)
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
    return summarise_run(curves.path)


def summarise_run(path: Path) -> dict[str, Any]:
    """``summary.json["faithfulness"]`` from a run's ``faithfulness.jsonl``."""
    # In pair order, whatever order the lines were appended in (a resume, a cluster run).
    lines = sorted(read_results(path), key=lambda line: int(line["index"]))
    images = [image for line in lines for image in line["images"]]
    return {
        "pairs": len(lines),
        "n_images": len(images),
        "seeds": lines[0]["seeds"] if lines else [],
        "variants": VARIANT_INFO,
        "null": NULL_INFO,
        "by_class": summarise_faithfulness(images),
    }


def _line(
    index: int,
    seeds: list[int],
    result: Faithfulness,
    paths: tuple[str, str],
    identities: tuple[str | None, str | None],
) -> dict:
    return {
        "index": index,
        "seeds": seeds,
        # the pair list's identities where it names them (else image_records reads the paths)
        "images": image_records(result, index, paths, identities),
        "curves": {"a": _curves(result.a), "b": _curves(result.b)},
    }


def _curves(side: SideCurves) -> dict[str, Any]:
    """The curves worth keeping per image: each variant's and the random means."""
    return {
        "order": {name: v.order.tolist() for name, v in side.variants.items()},
        "deletion": {name: v.deletion.tolist() for name, v in side.variants.items()},
        "insertion": {name: v.insertion.tolist() for name, v in side.variants.items()},
        "random_deletion_mean": side.random_deletion.mean(axis=0).tolist(),
        "random_insertion_mean": side.random_insertion.mean(axis=0).tolist(),
    }


def _check_seeds(path: Path, seeds: list[int]) -> None:
    if not path.exists():
        return
    for line in read_results(path):
        if line.get("seeds") != seeds:
            raise OutputError(
                f"{path} holds faithfulness curves for seeds {line.get('seeds')}, not {seeds}; "
                "use the same --seeds or delete that file"
            )
        return

"""Faithfulness over a dataset run (``freqxfr dataset ... --faithfulness``), resumably.

After the explanations, each explained pair gets its deletion and insertion curves from its
result record's directed influences (nothing is explained twice). ``OUT/faithfulness.jsonl``
holds one line per pair, appended and flushed as it finishes: the pair index, the seeds, one
record per explained image (:func:`freqxfr.explanations.faithfulness.image_records`) and the curves. A restart
skips the pairs already there (a partial last line is dropped and redone); a restart with other
seeds is refused. The per-class summary goes into ``summary.json["faithfulness"]``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from freqxfr.common.errors import OutputError
from freqxfr.common.progress import progress_bar
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
from freqxfr.runs.folder import ResultsLog, read_results

FILE = "faithfulness.jsonl"


def run_faithfulness(
    pairs: Sequence[Pair],
    out_dir: str | os.PathLike[str],
    explainer: Explainer,
    *,
    seeds: int | Sequence[int] = 5,
    progress: bool = True,
) -> dict[str, Any]:
    """Curves for every explained pair of the run in ``out_dir``; returns the summary part."""
    out = Path(out_dir)
    seeds_ = list(seed_list(seeds))
    path = out / FILE
    _check_seeds(path, seeds_)
    bar = None
    with ResultsLog(path, key=lambda line: int(line["index"])) as log:
        done = log.open()  # drops a partial last line from a crash; it is redone
        todo = [
            r
            for r in read_results(out / "results.jsonl")
            if "error" not in r and int(r["index"]) not in done
        ]
        if todo:
            bar = progress_bar(progress, len(todo) + len(done), done=len(done), desc="faithfulness")
        try:
            for record in todo:
                index = int(record["index"])
                pair = pairs[index]
                faces = np.stack(
                    [explainer.aligned_crop(pair.path_a), explainer.aligned_crop(pair.path_b)]
                )
                result = faithfulness_of(
                    explainer,
                    faces,
                    (record["a"]["directed"], record["b"]["directed"]),
                    float(record["score_ref"]),
                    seeds=seeds_,
                    same=record.get("same"),
                )
                log.append(_line(index, seeds_, result, (str(pair.path_a), str(pair.path_b))))
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
    return summarise_run(path)


def summarise_run(path: Path) -> dict[str, Any]:
    """``summary.json["faithfulness"]`` from a run's ``faithfulness.jsonl``."""
    lines = list(read_results(path))
    images = [image for line in lines for image in line["images"]]
    return {
        "pairs": len(lines),
        "n_images": len(images),
        "seeds": lines[0]["seeds"] if lines else [],
        "variants": VARIANT_INFO,
        "null": NULL_INFO,
        "by_class": summarise_faithfulness(images),
    }


def _line(index: int, seeds: list[int], result: Faithfulness, paths: tuple[str, str]) -> dict:
    return {
        "index": index,
        "seeds": seeds,
        "images": image_records(result, index, paths),
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

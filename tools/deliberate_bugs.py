"""The deliberate one-line bugs of issues 16 and 23, each applied on its own to the *installed*
freqxfr of the running interpreter (e.g. .nox/tests after ``nox -s tests``; never the sources), with
the tests that must catch it (only the test files of its module, mostly the unit tier); the file is
restored after each. Prints CAUGHT, MISSED or TIMEOUT per bug, then the catch rate.

    .nox/tests/bin/python tools/deliberate_bugs.py [--timeout S] [NAME-FRAGMENT ...]

A bug whose tests run past ``--timeout`` seconds (default 600) counts as caught (a hang is a
failure a user would see) and is reported as TIMEOUT. The snippets are checked against the sources
by tests/test_mutants_config.py; docs/design/mutants.md lists the bugs and what catches each.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import freqxfr

SP = Path(freqxfr.__file__).parent
PY = sys.executable
ROOT = Path(__file__).resolve().parents[1]
if SP.resolve().is_relative_to(ROOT / "python"):
    raise SystemExit(
        "freqxfr is imported from the sources (editable install); use an installed copy"
    )
BUGS = [
    (
        "trapezoid drops x=0",
        "explanations/faithfulness.py",
        "np.trapezoid(curve, dx=",
        "np.trapezoid(curve[..., 1:], dx=",
        ["tests/test_faithfulness_curves.py"],
    ),
    (
        "crossres unpaired bootstrap",
        "runs/crossres.py",
        "boot = weighted_means(weights, cents.T).T",
        "boot = np.stack([weighted_means(cluster_weights(n, n_boot, clusters=clusters, seed=seed + i), c) for i, c in enumerate(cents)])",
        ["tests/test_crossres.py", "-k", "zero_based"],
    ),
    (
        "morph combined wrong way",
        "runs/morph.py",
        "average_ranks(negated)",
        "average_ranks(-negated)",
        ["tests/test_morph.py", "-k", "combined"],
    ),
    (
        "morph feature from probe",
        "runs/morph.py",
        "np.stack([e.a.directed_relative for e in explanations])",
        "np.stack([e.b.directed_relative for e in explanations])",
        ["tests/test_morph.py", "-k", "toy"],
    ),
    (
        "explainer ignores mode",
        "explanations/explainer.py",
        "self.schedule,\n            mode or self.mode,",
        "self.schedule,\n            mode or 'delete',",
        ["tests/test_explain.py", "-k", "toy"],
    ),
    (
        "explainer ignores domain",
        "explanations/explainer.py",
        "order=order,\n            domain=self.domain,",
        "order=order,\n            domain='pixel',",
        ["tests/test_explain.py", "-k", "toy"],
    ),
    (
        "explainer ignores clip",
        "explanations/explainer.py",
        "clip=self.clip,\n            threads=threads or self.threads,",
        "clip=False,\n            threads=threads or self.threads,",
        ["tests/test_explain.py", "-k", "toy"],
    ),
    (
        "restart accepts any recorded explainer setting",
        "explanations/config.py",
        'out[f.metadata["restart"]] = settings[f.name]',
        "pass",
        ["tests/test_dataset.py", "-k", "toy_restart"],
    ),
    (
        "restart ignores threshold",
        "runs/folder.py",
        '"threshold": model.card.threshold,\n        **explainer.config',
        "**explainer.config",
        ["tests/test_dataset.py", "-k", "toy_restart"],
    ),
    (
        "restart ignores model",
        "runs/folder.py",
        '"--model": f"{model.card.name} ({Path(model.path).name}, sha256 {_digest(model.path)})",',
        '"--model": model.card.name,',
        ["tests/test_dataset.py", "tests/test_known_answers.py", "-m", "unit", "-k", "restart"],
    ),
    (
        "swap sides a and b",
        "explanations/kernel.py",
        "a=image_explanation(explainer, sources[0], score(masked[2 * i], ref_b[None]), s_ref),\n        b=image_explanation(explainer, sources[1], score(ref_a[None], masked[2 * i + 1]), s_ref),",
        "a=image_explanation(explainer, sources[0], score(ref_a[None], masked[2 * i + 1]), s_ref),\n        b=image_explanation(explainer, sources[1], score(masked[2 * i], ref_b[None]), s_ref),",
        ["tests/test_explain.py", "-k", "toy"],
    ),
    (
        "masked images in BGR",
        "explanations/explainer.py",
        '"channel_order": card.channel_order, "layout"',
        '"channel_order": "BGR", "layout"',
        ["tests/test_explain.py", "-k", "toy"],
    ),
    (
        "value range not mapped for masks",
        "explanations/explainer.py",
        "s = (hi - lo) / 255.0",
        "s = 1.0; lo = 0.0",
        ["tests/test_explain.py", "-k", "toy"],
    ),
    (
        "reversed faithfulness order",
        "explanations/faithfulness.py",
        'support = np.argsort(-directed, kind="stable")',
        'support = np.argsort(directed, kind="stable")',
        ["tests/test_faithfulness_curves.py", "tests/test_known_answers.py", "-m", "unit"],
    ),
    (
        "1-based centroid",
        "stats/profiles.py",
        "index = np.arange(absolute.shape[-1])",
        "index = np.arange(1, absolute.shape[-1] + 1)",
        ["tests/test_crossres.py", "-k", "zero_based"],
    ),
    (
        "re-detect crops of the model size",
        "imaging/align.py",
        "return align_crop(image, card.alignment, h, name=name, aligned=aligned, padding=padding)",
        "return align_crop(image, card.alignment, h, name=name, aligned=False if aligned is None else aligned, padding=padding)",
        ["tests/test_verifier.py", "-k", "aligned_crops"],
    ),
    # ---- issue 23: the six kinds the newer modules' own tests let pass (test_known_answers.py)
    (
        "region cells transposed",
        "explanations/kernel.py",
        "scores.reshape(k, r).T.copy()",
        "scores.reshape(r, k).copy()",
        ["tests/test_known_answers.py", "tests/test_explain.py", "-m", "unit"],
    ),
    (
        "region outcome classes (decision, same)",
        "explanations/region_explanations.py",
        'OUTCOMES[(bool(same), bool(record["decision"]))]',
        'OUTCOMES[(bool(record["decision"]), bool(same))]',
        ["tests/test_known_answers.py", "tests/test_region_findings.py", "-m", "unit"],
    ),
    (
        "compare class from either run",
        "runs/comparison.py",
        "sel = members[a][cls] & members[b][cls]",
        "sel = members[a][cls] | members[b][cls]",
        ["tests/test_known_answers.py", "-m", "unit"],
    ),
    (
        "cell faithfulness ignores the decision",
        "explanations/faithfulness.py",
        "np.argsort(-cells if decision else cells,",
        "np.argsort(-cells,",
        ["tests/test_known_answers.py", "tests/test_faithfulness_curves.py", "-m", "unit"],
    ),
    (
        "dask resume keeps failed pairs",
        "runs/skeleton.py",
        'if distributed.Parts(out).merge_into(log, run.key, keep=lambda r: "error" not in r):\n                log.close()\n                done = log.open()',
        "if merged := distributed.Parts(out).merge_into(log, run.key, keep=lambda r: True):\n                done |= merged",
        ["tests/test_known_answers.py", "-k", "resumed"],
    ),
    (
        "restart sees only the old run's settings",
        "runs/folder.py",
        "for name in dict.fromkeys([*old, *new]):",
        "for name in old:",
        ["tests/test_known_answers.py", "tests/test_dataset.py", "-m", "unit"],
    ),
    # ---- 0.2: explanations/config.py (one field list for provenance, restart, mask key, CLI)
    (
        "config: restart ignores padding",
        "explanations/config.py",
        'restart="--padding",',
        "restart=None,",
        [
            "tests/test_known_answers.py",
            "tests/test_explainer_config.py",
            "tests/test_dataset.py",
            "-m",
            "unit",
        ],
    ),
    (
        "config: restart ignores planner",
        "explanations/config.py",
        'restart="--planner",',
        "restart=None,",
        [
            "tests/test_known_answers.py",
            "tests/test_explainer_config.py",
            "tests/test_dataset.py",
            "-m",
            "unit",
        ],
    ),
    (
        "config: clip not in the mask key",
        "explanations/config.py",
        'restart="--clip",\n        label="clip",',
        'restart="--clip",\n        mask=False,\n        label="clip",',
        ["tests/test_known_answers.py", "tests/test_explainer_config.py", "-m", "unit"],
    ),
    (
        "config: with_ drops the base settings",
        "explanations/config.py",
        "dataclasses.replace(base, **given) if given else base",
        "cls(**given) if given else base",
        ["tests/test_known_answers.py", "tests/test_explainer_config.py", "-m", "unit"],
    ),
    (
        "config: restart ignores the band edges",
        "explanations/config.py",
        '"edges": schedule["edges"],',
        "",
        [
            "tests/test_known_answers.py",
            "tests/test_explainer_config.py",
            "tests/test_dataset.py",
            "-m",
            "unit",
        ],
    ),
    # ---- 0.2: explanations/stream.py (chunks and the double buffer)
    (
        "stream: last short chunk dropped",
        "explanations/stream.py",
        "    if chunk:\n        yield chunk",
        "    if chunk and False:\n        yield chunk",
        ["tests/test_known_answers.py", "tests/test_explain.py", "-m", "unit"],
    ),
    (
        "stream: prefetch yields the next item",
        "explanations/stream.py",
        "yield pending.result()\n            pending = future",
        "yield future.result()\n            pending = future",
        ["tests/test_known_answers.py", "tests/test_explain.py", "-m", "unit"],
    ),
    # ---- 0.2: runs/folder.py (resume and restart)
    (
        "results log keeps failed records (never retried)",
        "runs/folder.py",
        "or not self._done(record):",
        ":",
        [
            "tests/test_known_answers.py",
            "tests/test_dataset.py",
            "tests/test_run_folders.py",
            "-m",
            "unit",
        ],
    ),
    (
        "results log keeps repeated keys",
        "runs/folder.py",
        "if key is None or key in keys or",
        "if key is None or",
        [
            "tests/test_known_answers.py",
            "tests/test_dataset.py",
            "tests/test_run_folders.py",
            "-m",
            "unit",
        ],
    ),
    (
        "restart ignores --aligned",
        "runs/folder.py",
        '"--aligned": aligned,',
        "",
        ["tests/test_known_answers.py", "tests/test_dataset.py", "-m", "unit"],
    ),
    (
        "restart ignores the pairs' labels",
        "runs/folder.py",
        "str(pair.same),",
        "",
        ["tests/test_known_answers.py", "tests/test_dataset.py", "-m", "unit"],
    ),
    (
        "unrecorded setting compared as recorded",
        "runs/folder.py",
        "if name in new and name not in old:",
        "if name in new and name in old:",
        [
            "tests/test_known_answers.py",
            "tests/test_dataset.py",
            "tests/test_run_folders.py",
            "-m",
            "unit",
        ],
    ),
    # ---- 0.2: stats/bootstrap.py
    (
        "bootstrap interval twice as wide",
        "stats/bootstrap.py",
        "tail = 50.0 * (1.0 - level)",
        "tail = 100.0 * (1.0 - level)",
        ["tests/test_known_answers.py", "tests/test_mad_metrics.py", "-m", "unit"],
    ),
    (
        "bootstrap ignores strata",
        "stats/bootstrap.py",
        "if strata is not None else [0] * n",
        "if False else [0] * n",
        ["tests/test_known_answers.py", "tests/test_mad_metrics.py", "-m", "unit"],
    ),
    (
        "bootstrap ignores clusters",
        "stats/bootstrap.py",
        ".setdefault(c, []).append(i)",
        ".setdefault(i, []).append(i)",
        ["tests/test_known_answers.py", "tests/test_mad_metrics.py", "-m", "unit"],
    ),
    (
        "sign stability counts zero as agreeing",
        "stats/bootstrap.py",
        "np.mean(np.sign(values) == sign)",
        "np.mean(np.sign(values) != -sign)",
        ["tests/test_known_answers.py", "tests/test_mad_metrics.py", "-m", "unit"],
    ),
    # ---- 0.2: reports (number formatting)
    (
        "report numbers fixed-point",
        "reports/html.py",
        "precision=4, unique=False, fractional=False",
        "precision=2, unique=False, fractional=True",
        ["tests/test_known_answers.py", "tests/test_report.py", "-m", "unit"],
    ),
    (
        "report mean and sd swapped",
        "reports/dataset.py",
        'f"{fmt(mean)} ± {fmt(std)}"',
        'f"{fmt(std)} ± {fmt(mean)}"',
        ["tests/test_known_answers.py", "tests/test_report.py", "-m", "unit"],
    ),
    (
        "report agreement as a fraction with a % sign",
        "reports/comparison.py",
        "the runs agree on {d['agreement']:.1%}",
        "the runs agree on {d['agreement']:.1f}%",
        ["tests/test_known_answers.py", "tests/test_report.py", "-m", "unit"],
    ),
    (
        "report region area as a fraction",
        "reports/regions.py",
        "[names[r], _percent(area_share[r])]",
        '[names[r], f"{area_share[r]:.1f}"]',
        [
            "tests/test_known_answers.py",
            "tests/test_report.py",
            "tests/test_region_findings.py",
            "-m",
            "unit",
        ],
    ),
    # ---- 0.2: the other newer modules (regions, engine, run comparison)
    (
        "grid regions column-major",
        "imaging/regions.py",
        '"iy,jx->ijyx"',
        '"iy,jx->jiyx"',
        [
            "tests/test_known_answers.py",
            "tests/test_regions.py",
            "tests/test_masking_regions.py",
            "-m",
            "unit",
        ],
    ),
    (
        "engine pair rows at the wrong offset",
        "model/engine.py",
        "refs = embeddings[offset + 2 * j : offset + 2 * j + 2]",
        "refs = embeddings[offset + j : offset + j + 2]",
        ["tests/test_known_answers.py", "tests/test_engine.py"],
    ),
    (
        "compare accepts runs with other bands",
        "runs/comparison.py",
        "if not np.allclose(x, y, rtol=0, atol=1e-9):",
        "if False:",
        ["tests/test_known_answers.py", "-m", "unit"],
    ),
]


def _apply(name: str, rel: str, old: str, new: str, tests: list[str], timeout: float) -> str:
    """Apply one bug, run its tests, restore the file; returns CAUGHT, MISSED or TIMEOUT."""
    path = SP / rel
    text = path.read_text()
    assert text.count(old) == 1, (name, text.count(old))
    backup = Path(tempfile.mkdtemp()) / "backup.py"
    shutil.copy(path, backup)
    cached = path.parent / "__pycache__"
    try:
        path.write_text(text.replace(old, new))
        for pyc in cached.glob(f"{path.stem}.*.pyc"):
            pyc.unlink()  # never a bytecode cache of the other version
        try:
            r = subprocess.run(
                [PY, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=timeout,
                env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
            )
        except subprocess.TimeoutExpired:
            print(f"TIMEOUT {name}: tests ran past {timeout:.0f} s", flush=True)
            return "TIMEOUT"
        lines = [line for line in r.stdout.splitlines() if line.strip()] or [r.stderr[-200:]]
        fail = [line for line in r.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
        verdict = "CAUGHT" if r.returncode else "MISSED"
        print(f"{verdict} {name}: {lines[-1]} {fail[:1]}", flush=True)
        return verdict
    finally:
        shutil.copy(backup, path)
        for pyc in cached.glob(f"{path.stem}.*.pyc"):
            pyc.unlink()
        assert path.read_text() == text


def main(argv: list[str]) -> int:
    timeout = 600.0
    if argv[:1] == ["--timeout"]:
        timeout, argv = float(argv[1]), argv[2:]
    verdicts = {}
    for name, rel, old, new, tests in BUGS:
        if argv and not any(w in name for w in argv):
            continue
        verdicts[name] = _apply(name, rel, old, new, tests, timeout)
    caught = sum(v != "MISSED" for v in verdicts.values())
    missed = [n for n, v in verdicts.items() if v == "MISSED"]
    rate = caught / len(verdicts) if verdicts else float("nan")
    print(f"caught {caught} of {len(verdicts)} deliberate bugs ({rate:.0%}); missed: {missed}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

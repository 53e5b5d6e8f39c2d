"""The deliberate one-line bugs of issue 16, each applied on its own to the *installed* freqxfr of
the running interpreter (e.g. .nox/tests after ``nox -s tests``; never the sources), with the tests
that must catch it; the file is restored after each. Prints CAUGHT or MISSED per bug.

    .nox/tests/bin/python tools/deliberate_bugs.py [NAME-FRAGMENT ...]
"""

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
        "np.nanmean(c[resamples], axis=1)",
        "np.nanmean(c[rng.integers(0, n, size=(int(n_boot), n))], axis=1)",
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
        ["tests/test_dataset.py", "-k", "toy_restart"],
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
        ["tests/test_faithfulness_curves.py"],
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
]
wanted = sys.argv[1:]
for name, rel, old, new, tests in BUGS:
    if wanted and not any(w in name for w in wanted):
        continue
    path = SP / rel
    text = path.read_text()
    assert text.count(old) == 1, (name, text.count(old))
    backup = Path(tempfile.mkdtemp()) / "backup.py"
    shutil.copy(path, backup)
    try:
        path.write_text(text.replace(old, new))
        r = subprocess.run(
            [PY, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        last = [line for line in r.stdout.splitlines() if line.strip()][-1]
        fail = [line for line in r.stdout.splitlines() if line.startswith("FAILED")]
        print(f"{'CAUGHT' if r.returncode else 'MISSED'} {name}: {last} {fail[:1]}", flush=True)
    finally:
        shutil.copy(backup, path)
    assert path.read_text() == text

"""The FFTW planner effort as an explainer setting: added as one ``ExplainerConfig`` field (plus
the line that passes it to ``mask_bands``), it reaches the CLI (``--planner``), the provenance
(``explanation.json``, ``run.json``), the restart check of a run folder and the Dask spec with
no code of its own there.

Real parts only: dlib's model and two LFW crops.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from freqxfr.cli import main
from freqxfr.common.errors import InputError
from freqxfr.explanations.config import SETTINGS_KEYS, ExplainerConfig
from freqxfr.explanations.explainer import Explainer
from freqxfr.model.verifier import load_model

pytestmark = [pytest.mark.model, pytest.mark.dlib]

PAIR = (
    "lfw_aligned112/images/Abdullah_Gul/Abdullah_Gul_0001.jpg",
    "lfw_aligned112/images/Abdullah_Gul/Abdullah_Gul_0006.jpg",
)


@pytest.fixture(scope="module")
def dlib_model():
    return load_model("dlib_resnet")


@pytest.fixture(scope="module")
def pair(data_dir):
    return tuple(data_dir / p for p in PAIR)


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _dataset(data_dir, out, *extra):
    return [
        "dataset",
        str(data_dir / "lfw_aligned112" / "pairs_generated.csv"),
        "--root",
        str(data_dir),
        "--out",
        str(out),
        "--limit",
        "2",
        "--bands",
        "4",
        "--model",
        "dlib_resnet",
        "--no-report",
        "--no-progress",
        *extra,
    ]


# ---- the library ---------------------------------------------------------------------------------


def test_planner_is_a_recorded_setting(dlib_model, pair) -> None:
    """Guards against a planner that is accepted but not recorded (or recorded but not used to
    group masking): ``settings()``, the explanation's JSON and the engine's mask key carry it;
    the default is today's FFTW_MEASURE."""
    assert "planner" in SETTINGS_KEYS
    default = Explainer(dlib_model, 4)
    estimate = Explainer(dlib_model, 4, planner="estimate")
    assert default.planner == "measure" and default.settings()["planner"] == "measure"
    assert estimate.settings()["planner"] == "estimate"
    assert estimate.explain(*pair).to_dict()["planner"] == "estimate"
    assert default.mask_key != estimate.mask_key
    assert default.with_(planner="estimate").mask_key == estimate.mask_key


def test_planner_reaches_the_masking(dlib_model, pair, monkeypatch) -> None:
    """Guards against a setting that stops at the provenance: the explainer's masking calls
    ``mask_bands`` with its planner (a spy, not a mock: the real masking runs)."""
    import freqxfr.explanations.explainer as module

    seen = []
    real = module.mask_bands

    def spy(*args, **kwargs):
        seen.append(kwargs.get("planner"))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "mask_bands", spy)
    explainer = Explainer(dlib_model, 4, planner="estimate")
    want = Explainer(dlib_model, 4)
    got = explainer.explain(*pair)
    assert seen and set(seen) == {"estimate", "measure"}
    # FFTW's plans may round the last bit differently; the explanation is the same otherwise.
    np.testing.assert_allclose(got.a.scores, want.explain(*pair).a.scores, rtol=0, atol=1e-5)


def test_bad_planner_is_refused_before_the_model_loads() -> None:
    """Guards against a typo silently planning with the default."""
    with pytest.raises(InputError, match=r"planner must be one of estimate, measure"):
        ExplainerConfig(planner="fast")
    with pytest.raises(InputError, match=r"planner must be one of"):
        Explainer("no-such-model", 4, planner="fast")  # refused before loading


def test_dask_spec_carries_the_planner(dlib_model) -> None:
    """Guards against Dask workers planning with the default while the client used another."""
    pytest.importorskip("distributed")
    from freqxfr.runs.distributed import ExplainerSpec

    spec = ExplainerSpec.of(Explainer(dlib_model, 4, planner="estimate"), {})
    assert spec.config.planner == "estimate"
    assert spec.build().planner == "estimate"
    other = ExplainerSpec.of(Explainer(dlib_model, 4), {})
    assert other != spec and hash(other) != hash(spec)  # workers keep one explainer per spec


# ---- the CLI ---------------------------------------------------------------------------------------


def test_cli_explain_records_the_planner(pair, tmp_path) -> None:
    """Guards against ``explain --planner`` not reaching explanation.json."""
    out = tmp_path / "out"
    args = ["explain", *map(str, pair), "--bands", "4", "--out", str(out), "--planner", "estimate"]
    assert main([*args, "--json", "--quiet", "--no-report"]) == 0
    assert json.loads((out / "explanation.json").read_text())["planner"] == "estimate"


def test_cli_bad_planner_names_the_choices(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["explain", "a.jpg", "b.jpg", "--planner", "fast"])
    assert exc.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "argument --planner: invalid choice: 'fast'" in last and "exhaustive" in last


@pytest.fixture(scope="module")
def estimate_run(data_dir, tmp_path_factory):
    """A finished 2-pair dataset run with ``--planner estimate``."""
    folder = tmp_path_factory.mktemp("planner_estimate") / "run"
    assert main(_dataset(data_dir, folder, "--planner", "estimate")) == 0
    return folder


def test_dataset_records_the_planner(estimate_run) -> None:
    for name in ("run.json", "summary.json"):
        record = json.loads((estimate_run / name).read_text())
        assert record["planner"] == "estimate", name
        assert record["settings"]["--planner"] == "estimate", name


def test_dataset_restart_with_another_planner_is_refused(estimate_run, data_dir, capsys) -> None:
    """Guards against a resumed run mixing plans in one results file: a restart with the
    default planner exits 2, names the setting with both values and changes nothing."""
    before = _snapshot(estimate_run)
    capsys.readouterr()
    assert main(_dataset(data_dir, estimate_run)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--planner: was estimate, now measure" in err[0], err
    assert _snapshot(estimate_run) == before
    assert main(_dataset(data_dir, estimate_run, "--planner", "estimate")) == 0


def test_unrecorded_planner_resumes_with_measure(estimate_run, tmp_path, data_dir, capsys) -> None:
    """A run of an older freqxfr (always FFTW_MEASURE, not recorded) continues with the default
    planner, and is refused with another."""
    folder = tmp_path / "older"
    for name, data in _snapshot(estimate_run).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    run = json.loads((folder / "run.json").read_text())
    del run["planner"], run["settings"]["--planner"]  # as an older freqxfr wrote it
    (folder / "run.json").write_text(json.dumps(run, indent=2))
    capsys.readouterr()
    assert main(_dataset(data_dir, folder, "--planner", "estimate")) == 2
    assert "without a recorded FFTW planner" in capsys.readouterr().err
    assert main(_dataset(data_dir, folder)) == 0

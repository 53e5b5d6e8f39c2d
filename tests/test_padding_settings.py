"""Alignment padding as a setting of the explaining path: ``Explainer(padding=)``, the shared
``--padding`` option, and the settings check of a resumed run.

Real parts only: dlib's model and LFW's tight 112×112 crops, whose dlib 150 chip reaches beyond
the crop, so that the padding changes the pixels the model sees.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from freqxfr.cli import main
from freqxfr.common.errors import InputError
from freqxfr.explanations.explainer import SETTINGS_KEYS, Explainer
from freqxfr.imaging.align import PADDINGS, card_crop

pytestmark = pytest.mark.dlib

PAIR = (
    "lfw_aligned112/images/Abdullah_Gul/Abdullah_Gul_0001.jpg",
    "lfw_aligned112/images/Abdullah_Gul/Abdullah_Gul_0006.jpg",
)


@pytest.fixture(scope="module")
def pair(data_dir):
    return tuple(data_dir / p for p in PAIR)


# ---- the library --------------------------------------------------------------------------------


@pytest.mark.model
def test_padding_reaches_the_explanation(dlib_model, pair) -> None:
    """Guards against an explainer that ignores its padding (re-cutting with the default): with
    black padding the explanation is that of the black-padded chips, and differs from edge's;
    the default is edge."""
    a, b = pair
    # The pair is one where the padding matters: part of each chip lies beyond the 112 crop.
    assert all(card_crop(p, dlib_model.card).padded_fraction > 0.01 for p in pair)
    black = Explainer(dlib_model, 8, padding="black").explain(a, b)
    edge = Explainer(dlib_model, 8, padding="edge").explain(a, b)
    default = Explainer(dlib_model, 8).explain(a, b)
    np.testing.assert_array_equal(default.a.scores, edge.a.scores)
    np.testing.assert_array_equal(default.b.scores, edge.b.scores)
    assert default.padding == "edge" and black.padding == "black"
    assert np.abs(black.a.absolute_relative - edge.a.absolute_relative).max() > 0.01
    # ... and black's numbers are those of the chips cut with black padding.
    chips = [card_crop(p, dlib_model.card, padding="black").pixels for p in pair]
    recut = Explainer(dlib_model, 8).explain(*chips)
    np.testing.assert_allclose(black.a.scores, recut.a.scores, rtol=0, atol=1e-5)
    np.testing.assert_allclose(black.b.scores, recut.b.scores, rtol=0, atol=1e-5)


@pytest.mark.model
def test_settings_record_the_padding(dlib_model, pair) -> None:
    """Guards against explanations whose provenance does not say how their crops were cut:
    ``settings()`` and ``explanation.json``'s keys carry the padding."""
    explainer = Explainer(dlib_model, 4, padding="reflect")
    assert "padding" in SETTINGS_KEYS
    assert explainer.settings()["padding"] == "reflect"
    record = explainer.explain(*pair).to_dict()
    assert record["padding"] == "reflect"
    assert explainer.with_(padding="black").settings()["padding"] == "black"
    assert explainer.settings()["padding"] == "reflect"  # the copy left the original alone


@pytest.mark.model
def test_bad_padding_is_refused_naming_the_choices(dlib_model) -> None:
    """Guards against a typo silently falling back to the default padding."""
    with pytest.raises(InputError, match=r"^padding: unknown padding 'grey'; choose one of edge"):
        Explainer(dlib_model, 4, padding="grey")


@pytest.mark.integration
def test_dask_spec_carries_the_padding(dlib_model) -> None:
    """Guards against Dask workers rebuilding the explainer with the default padding (they
    would re-cut the crops differently from the client)."""
    pytest.importorskip("distributed")
    from freqxfr.runs.distributed import ExplainerSpec

    spec = ExplainerSpec.of(Explainer(dlib_model, 4, padding="black"), {})
    assert spec.build().padding == "black"


# ---- the CLI -------------------------------------------------------------------------------------


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


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.integration
def test_cli_explain_records_the_padding(data_dir, pair, tmp_path) -> None:
    """Guards against ``explain --padding`` not reaching explanation.json."""
    out = tmp_path / "out"
    args = ["explain", *map(str, pair), "--bands", "4", "--out", str(out), "--padding", "black"]
    assert main([*args, "--json", "--quiet"]) == 0
    assert json.loads((out / "explanation.json").read_text())["padding"] == "black"


@pytest.mark.integration
def test_cli_verify_padding_reaches_the_score(pair, capsys) -> None:
    """Guards against ``verify --padding`` being accepted but not used for the alignment."""
    scores = {}
    for padding in ("black", "edge"):
        assert main(["verify", *map(str, pair), "--json", "--padding", padding]) == 0
        record = json.loads(capsys.readouterr().out)
        assert record["padding"] == padding
        scores[padding] = record["score"]
    assert scores["black"] != scores["edge"]


@pytest.fixture(scope="module")
def black_run(data_dir, tmp_path_factory):
    """A finished 2-pair dataset run with ``--padding black``."""
    folder = tmp_path_factory.mktemp("padding_black") / "run"
    assert main(_dataset(data_dir, folder, "--padding", "black")) == 0
    return folder


@pytest.mark.model
def test_dataset_records_the_padding(black_run) -> None:
    """Guards against run.json / summary.json without the padding (a later reader could not
    tell black- from edge-padded results)."""
    for name in ("run.json", "summary.json"):
        record = json.loads((black_run / name).read_text())
        assert record["padding"] == "black", name
        assert record["settings"]["--padding"] == "black", name


@pytest.mark.model
def test_dataset_restart_with_another_padding_is_refused(
    black_run, data_dir, tmp_path, capsys
) -> None:
    """Guards against a resumed run mixing black- and edge-padded chips in one results file:
    a restart with the default (edge) padding exits 2, names the setting with both values, and
    changes nothing in the folder."""
    before = _snapshot(black_run)
    capsys.readouterr()
    assert main(_dataset(data_dir, black_run)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--padding: was black, now edge" in err[0], err
    assert _snapshot(black_run) == before


@pytest.mark.model
def test_unrecorded_padding_resumes_only_with_black(black_run, data_dir, tmp_path, capsys) -> None:
    """Guards against a run of an older freqxfr (black padding, not recorded) silently resuming
    with today's edge default: refused with a message saying so and what to do; it continues
    with an explicit ``--padding black``."""
    folder = tmp_path / "older"
    folder.mkdir()
    for name, data in _snapshot(black_run).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    run = json.loads((folder / "run.json").read_text())
    del run["padding"], run["settings"]["--padding"]  # as an older freqxfr wrote it
    (folder / "run.json").write_text(json.dumps(run, indent=2))
    before = _snapshot(folder)
    capsys.readouterr()
    assert main(_dataset(data_dir, folder)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "without a recorded alignment padding" in err[0] and "older freqxfr" in err[0]
    assert "--padding black" in err[0] and "another --out" in err[0]
    assert _snapshot(folder) == before
    assert main(_dataset(data_dir, folder, "--padding", "black")) == 0


@pytest.mark.integration
@pytest.mark.parametrize(
    "command", ["explain", "verify", "dataset", "crossres", "morph", "faithfulness"]
)
def test_bad_padding_option_names_the_choices(command, tmp_path, capsys) -> None:
    """Guards against a command that aligns but lacks ``--padding``, or takes any value."""
    args = {
        "explain": ["a.jpg", "b.jpg"],
        "verify": ["a.jpg", "b.jpg"],
        "dataset": ["pairs.csv", "--out", str(tmp_path)],
        "crossres": ["pairs.csv", "--out", str(tmp_path)],
        "morph": ["index.csv", "--out", str(tmp_path)],
        "faithfulness": ["a.jpg", "b.jpg"],
    }[command]
    with pytest.raises(SystemExit) as exc:
        main([command, *args, "--padding", "grey"])
    assert exc.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "argument --padding: invalid choice: 'grey'" in last
    assert all(p in last for p in PADDINGS)


@pytest.mark.integration
def test_compare_names_each_runs_padding(black_run, data_dir, tmp_path) -> None:
    """Guards against ``freqxfr compare`` of a black- and an edge-padded run hiding that the
    two runs differ in their padding."""
    edge_run = tmp_path / "edge"
    assert main(_dataset(data_dir, edge_run)) == 0
    out = tmp_path / "compared"
    assert main(["compare", str(black_run), str(edge_run), "--out", str(out), "--no-report"]) == 0
    runs = json.loads((out / "summary.json").read_text())["runs"]
    assert [r["padding"] for r in runs] == ["black", "edge"]


@pytest.mark.model
def test_threads_with_different_paddings_on_one_model_get_their_own_chips(dlib_model, pair):
    """Guards against the padding leaking between callers that share a model (and its engine,
    which batches their requests together): two threads explaining the same raw pair at once,
    one with black and one with edge padding, each get exactly their serial result."""
    import threading

    explainers = {p: Explainer(dlib_model, 4, padding=p) for p in ("black", "edge")}
    want = {p: e.explain(*pair) for p, e in explainers.items()}
    barrier = threading.Barrier(2)
    got: dict[str, list] = {p: [] for p in explainers}

    def caller(padding: str) -> None:
        barrier.wait()
        for _ in range(3):
            got[padding].append(explainers[padding].explain(*pair))

    threads = [threading.Thread(target=caller, args=(p,)) for p in explainers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not np.array_equal(want["black"].a.scores, want["edge"].a.scores)
    for padding, results in got.items():
        assert len(results) == 3
        for e in results:
            assert e.padding == padding
            np.testing.assert_array_equal(e.a.scores, want[padding].a.scores)
            np.testing.assert_array_equal(e.b.scores, want[padding].b.scores)

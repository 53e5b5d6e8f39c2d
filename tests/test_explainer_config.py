"""``ExplainerConfig`` is the one list of the explainer's settings: provenance, restart check, CLI,
Dask spec, ``explain()``'s kept explainers and ``Explainer.with_`` all derive from its fields.

On the toy model (tests/_toy_model.py): these check where each field goes, not numbers.
"""

from __future__ import annotations

import dataclasses

import _toy_model as toy
import numpy as np
import pytest

from freqxfr.cli import build_parser
from freqxfr.core.bands import BandSchedule
from freqxfr.explanations import config as cfg
from freqxfr.explanations.explainer import Explainer, _kept_explainer, explain
from freqxfr.runs.folder import explainer_settings

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory):
    return toy.load(tmp_path_factory.mktemp("toy"))


def test_every_field_reaches_what_its_metadata_names(toy_model) -> None:
    """Guards against a setting listed by hand somewhere and forgotten there: each field with
    ``provenance`` is a settings key, with ``restart`` a restart-check key, with ``mask`` part of
    the engine's mask key, with ``cli`` an option of the explaining commands."""
    explainer = Explainer(toy_model, 4, threads=1)
    settings = explainer.settings()
    assert tuple(settings) == cfg.SETTINGS_KEYS
    for f in cfg.fields("provenance"):
        assert f.name in settings
    restart = explainer_settings(explainer)
    for f in cfg.fields("restart"):
        assert f.metadata["restart"] in restart
    assert len(explainer.mask_key) == len(cfg.fields("mask")) + 1  # + the region weights
    parser = build_parser()
    for command in ("explain", "dataset"):
        sub = parser._subparsers._group_actions[0].choices[command]
        options = {o for action in sub._actions for o in action.option_strings}
        for f in cfg.fields("cli"):
            assert cfg.option_name(f.name) in options, (command, f.name)


def test_cli_arguments_build_the_config_generically(toy_model) -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["explain", "a.png", "b.png", "--mode", "keep", "--clip", "--planner", "estimate"]
    )
    config = cfg.ExplainerConfig.from_cli(args, schedule=4)
    assert (config.mode, config.clip, config.planner, config.padding) == (
        "keep",
        True,
        "estimate",
        "edge",
    )
    assert config.schedule == BandSchedule.rings(4)


def test_with_changes_settings_and_shares_the_model(toy_model) -> None:
    explainer = Explainer(toy_model, 4, threads=1)
    assert explainer.with_(mode="delete") is explainer
    keep = explainer.with_(mode="keep", clip=True)
    assert keep.model is explainer.model and keep.config.mode == "keep" and keep.clip
    assert explainer.mode == "delete"  # the original is left alone
    assert keep.config == dataclasses.replace(explainer.config, mode="keep", clip=True)
    with pytest.raises(TypeError):
        explainer.with_(no_such_setting=1)


def test_explain_keeps_one_explainer_per_config(toy_model) -> None:
    """Guards against explain() rebuilding (reloading) the explainer for the same settings, or
    reusing one for other settings."""
    a, b = toy.flat((50, 100, 150)), toy.waved((50, 100, 150), 40)
    _kept_explainer.cache_clear()
    first = explain(a, b, model=toy_model, schedule=4, threads=1, aligned=True)
    again = explain(a, b, model=toy_model, schedule=4, threads=1, aligned=True)
    info = _kept_explainer.cache_info()
    assert (info.misses, info.hits) == (1, 1)
    np.testing.assert_array_equal(first.a.scores, again.a.scores)
    explain(a, b, model=toy_model, schedule=4, threads=1, aligned=True, mode="keep")
    assert _kept_explainer.cache_info().misses == 2


def test_dask_spec_is_the_config(toy_model) -> None:
    """The Dask spec carries the client's config (less what each worker sets: model, threads,
    regions), so a new setting travels to the workers without code of its own."""
    pytest.importorskip("distributed")
    from freqxfr.runs.distributed import ExplainerSpec

    explainer = Explainer(toy_model, 4, threads=1, mode="keep", planner="estimate")
    spec = ExplainerSpec.of(explainer, {})
    assert spec.config == explainer.config.replace(model=None, threads=None, regions=None)
    built = spec.build()
    assert built.config.replace(model=None, threads=None) == spec.config


def test_max_batch_is_a_positive_integer_and_none_means_from_the_budget() -> None:
    """One image per model call is the smallest batch; 0, a negative count or a bool is refused
    before a model loads; a count given as a float or string is kept as an int."""
    from freqxfr.common.errors import InputError

    assert cfg.ExplainerConfig().max_batch is None
    assert cfg.ExplainerConfig(max_batch=1).max_batch == 1
    assert cfg.ExplainerConfig(max_batch=8.0).max_batch == 8
    assert cfg.ExplainerConfig(max_batch="3").max_batch == 3
    for bad in (0, -1, True, False):
        with pytest.raises(InputError, match="max_batch must be a positive integer"):
            cfg.ExplainerConfig(max_batch=bad)


def test_settings_record_the_model_and_the_backend_with_the_other_settings(toy_model) -> None:
    """An explanation's provenance (``explanation.json``, ``run.json``, the reports) names the
    model it came from and the masking backend, in the field order, after the version."""
    settings = Explainer(toy_model, 4, backend="numpy", threads=1).settings()
    assert list(settings) == [
        "freqxfr_version",
        "model",
        "backend",
        "mode",
        "domain",
        "clip",
        "padding",
        "planner",
        "schedule",
        "bands",
    ]
    assert settings["model"]["name"] == "toy" and settings["model"]["input_size"] == [16, 16]
    assert settings["backend"] == "numpy"


def test_at_most_five_settings_by_position() -> None:
    """``Explainer(model, schedule, mode, domain, backend)``: five by position, not six."""
    config = cfg.ExplainerConfig.of(None, 4, "keep", "normalised", "numpy")
    assert (config.mode, config.domain, config.backend) == ("keep", "normalised", "numpy")
    assert len(config.schedule.resolve(16, 16).bands) == 4
    with pytest.raises(TypeError, match="at most 5 settings by position"):
        cfg.ExplainerConfig.of(None, 4, "keep", "normalised", "numpy", True)

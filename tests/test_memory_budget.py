"""The memory budget (``Explainer(memory_budget=...)``, ``--memory-budget``) sizes batches,
prefetching and lanes, and changes no result: explanations under two budgets are bit-identical
(the rows of an ONNX Runtime CPU batch do not depend on the batch)."""

from __future__ import annotations

import _toy_model as toy
import numpy as np
import pytest

from freqxfr.common.errors import InputError
from freqxfr.explanations.config import ExplainerConfig, memory_size
from freqxfr.explanations.explainer import Explainer
from freqxfr.explanations.pairs import read_pairs
from freqxfr.model.runner import memory_needed, plan_memory


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory):
    return toy.load(tmp_path_factory.mktemp("toy"))


def _same(a, b) -> None:
    for x, y in zip(a, b, strict=True):
        for side in ("a", "b"):
            np.testing.assert_array_equal(getattr(x, side).scores, getattr(y, side).scores)
        assert x.score_ref == y.score_ref


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512MB", 512 * 2**20),
        ("1GB", 2**30),
        ("1.5g", 3 * 2**29),
        ("800 MiB", 800 * 2**20),
        (2**30, 2**30),
        ("2097152", 2**21),
    ],
)
def test_sizes_are_read_in_powers_of_1024(text, size) -> None:
    assert memory_size(text) == size
    assert ExplainerConfig(memory_budget=text).memory_budget == size


@pytest.mark.unit
@pytest.mark.parametrize("bad", ["abc", "12 parsecs", "-1GB", "100", True, [1]])
def test_a_size_that_is_not_one_is_refused_in_one_line(bad) -> None:
    with pytest.raises(InputError, match="memory_budget") as caught:
        ExplainerConfig(memory_budget=bad)
    assert "\n" not in str(caught.value)


@pytest.mark.unit
def test_a_budget_too_small_for_one_pair_is_one_clear_line(toy_model) -> None:
    with pytest.raises(InputError, match=r"memory budget of 100 MB is too small for model") as e:
        Explainer(toy_model, 4, memory_budget="100MB")
    assert "needs at least" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.unit
def test_the_default_budget_is_the_environment_s_else_1gb(monkeypatch) -> None:
    monkeypatch.setenv("FREQXFR_MEMORY_BUDGET", "768MB")
    assert ExplainerConfig().memory_budget == 768 * 2**20
    monkeypatch.delenv("FREQXFR_MEMORY_BUDGET")
    assert ExplainerConfig().memory_budget == 2**30
    monkeypatch.setenv("FREQXFR_MEMORY_BUDGET", "lots")
    with pytest.raises(InputError, match="FREQXFR_MEMORY_BUDGET"):
        ExplainerConfig()


@pytest.mark.unit
def test_a_smaller_budget_gives_smaller_batches_and_an_estimate_within_it(toy_model) -> None:
    card, path = toy_model.card, toy_model.path
    plans = [plan_memory(card, path, b, 34) for b in (2**30, 300 * 2**20, 210 * 2**20)]
    assert [p.max_batch for p in plans] == sorted((p.max_batch for p in plans), reverse=True)
    assert plans[0].max_batch == 256 and plans[-1].max_batch < 256
    for p in plans:
        assert p.estimate <= p.budget
    # A given max_batch is kept whatever the budget.
    assert plan_memory(card, path, 210 * 2**20, 34, max_batch=300).max_batch == 300


@pytest.mark.unit
def test_explanations_do_not_depend_on_the_budget_toy(toy_model) -> None:
    """Two budgets, one with room for a single batch buffer (no prefetching, one model call per
    image): the same explanations to the bit."""
    explainer = Explainer(toy_model, 4, threads=1)
    tight = memory_needed(toy_model.card, toy_model.path, explainer.images_per_pair, 1, 1)
    small = Explainer(toy_model, 4, threads=1, memory_budget=tight)
    assert (small.memory.prefetch, small.max_batch) == (1, 1)
    assert explainer.memory.prefetch == 2 and explainer.max_batch == 256
    rng = np.random.default_rng(3)
    faces = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(10)]
    pairs = [(faces[i], faces[i + 1]) for i in range(9)]
    _same(
        list(explainer.explain_pairs(pairs, aligned=True)),
        list(small.explain_pairs(pairs, aligned=True)),
    )


@pytest.mark.model
@pytest.mark.parametrize("model", ["dlib_model", "sface_model"])
def test_explanations_do_not_depend_on_the_budget(model, data_dir, request) -> None:
    """Three real LFW pairs, the library's default budget (1 GB) against 512 MB: other batch
    sizes (SFace: 82 vs 26 images per call, a pair's 34 images cut in two calls; the three
    pairs' 102 images fill more than one call, so a call spans pairs), the same explanations
    to the bit."""
    verifier = request.getfixturevalue(model)
    pairs = read_pairs(data_dir / "lfw_aligned112" / "pairs_generated.csv", root=data_dir)[::500]
    assert len(pairs) == 3
    default = Explainer(verifier, 16, memory_budget="1GB")  # the suite's default is 512MB
    small = Explainer(verifier, 16, memory_budget="512MB")
    assert small.max_batch < default.max_batch
    _same(
        list(default.explain_pairs(pairs, aligned=True)),
        list(small.explain_pairs(pairs, aligned=True)),
    )
    pair = pairs[0]
    _same(
        [default.explain(pair.path_a, pair.path_b, aligned=True)],
        [small.explain(pair.path_a, pair.path_b, aligned=True)],
    )

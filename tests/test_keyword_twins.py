"""Twins that take their sibling's options as ``**options: Unpack[...]`` (``compare_async``,
``explain_async``, ``align``, ``freqxfr.explain``) refuse a misspelt option as a written-out
signature would, and pass the real ones on (the toy model: no real model needed)."""

from __future__ import annotations

import asyncio

import _toy_model as toy
import numpy as np
import pytest

import freqxfr
from freqxfr.common.keywords import check_keywords, option_names
from freqxfr.explanations.explainer import Explainer
from freqxfr.explanations.serving import PAIR_OPTIONS, PairOptions
from freqxfr.imaging import align
from freqxfr.model.verifier import CompareOptions

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def toy_verifier(tmp_path_factory):
    return toy.load(tmp_path_factory.mktemp("toy"))


def test_check_keywords_names_the_first_unknown_keyword_like_python():
    check_keywords("f", {"threshold": 0.5}, CompareOptions)
    with pytest.raises(TypeError, match=r"^f\(\) got an unexpected keyword argument 'a'$"):
        check_keywords("f", {"threshold": 0.5, "b": 1, "a": 2}, CompareOptions)
    assert option_names(CompareOptions) == {"aligned", "threshold", "deadline", "padding"}
    assert PAIR_OPTIONS == option_names(PairOptions) == {"aligned", "same", "groups", "deadline"}


def test_compare_async_refuses_a_misspelt_option_and_honours_the_real_ones(toy_verifier):
    a, b = toy.flat((120, 130, 140)), toy.waved((120, 130, 140), 40)
    with pytest.raises(TypeError, match=r"compare_async.*'threshhold'"):
        asyncio.run(toy_verifier.compare_async(a, b, threshhold=0.5))
    sync = toy_verifier.compare(a, b, threshold=-0.25)
    result = asyncio.run(toy_verifier.compare_async(a, b, threshold=-0.25))
    assert result == sync and result.threshold == -0.25


def test_explain_async_refuses_a_misspelt_option_and_passes_the_real_ones_on(toy_verifier):
    explainer = Explainer(toy_verifier, 4)
    a, b = toy.flat((120, 130, 140)), toy.waved((120, 130, 140), 40)
    with pytest.raises(TypeError, match=r"explain_async.*'sam'"):
        asyncio.run(explainer.explain_async(a, b, sam=True))
    result = asyncio.run(explainer.explain_async(a, b, same=True, groups={"set": "toy"}))
    assert result.same is True and result.groups == {"set": "toy"}
    np.testing.assert_array_equal(result.a.scores, explainer.explain(a, b).a.scores)


def test_freqxfr_explain_tells_pair_options_from_settings(toy_verifier):
    a, b = toy.flat((120, 130, 140)), toy.waved((120, 130, 140), 40)
    result = freqxfr.explain(a, b, model=toy_verifier, schedule=4, same=False, mode="keep")
    assert result.same is False and result.mode == "keep"
    with pytest.raises(TypeError, match="'sam'"):
        freqxfr.explain(a, b, model=toy_verifier, schedule=4, sam=False)


def test_align_passes_its_options_to_align_crop_and_refuses_others():
    crop = np.full((150, 150, 3), 7, np.uint8)
    assert align.align(crop, "dlib_chip", aligned=True, padding="black") is crop
    with pytest.raises(TypeError, match="'pading'"):
        align.align(crop, "dlib_chip", pading="black")

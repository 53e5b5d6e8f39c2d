"""Keyword options shared by a function and its twins (``compare``/``compare_async``, ...).

A twin declares ``**options: Unpack[SomeOptions]`` (a ``TypedDict``) instead of repeating the
keywords. A type checker reads the names from it; at run time :func:`check_keywords` refuses a
name it lacks, as a written-out signature would (a misspelt option must not pass silently).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def option_names(options: Any) -> frozenset[str]:
    """The keys a ``TypedDict`` class declares."""
    return frozenset(options.__required_keys__ | options.__optional_keys__)


def check_keywords(function: str, given: Mapping[str, object], options: Any) -> None:
    """Raise the ``TypeError`` Python raises for an unknown keyword if ``given`` has a key that
    the ``TypedDict`` class ``options`` does not declare."""
    unknown = sorted(set(given) - option_names(options))
    if unknown:
        raise TypeError(f"{function}() got an unexpected keyword argument {unknown[0]!r}")

"""How every command prints a decision: one sign convention for all of them.

Scores are "higher means more alike" for every model; a Euclidean model's score is the negative
distance. Commands print the score and threshold, and for Euclidean models the distance beside
them, so that ``verify``, ``explain``, ``demo`` and ``models list`` read alike.
"""

from __future__ import annotations


def score_text(score: float, threshold: float, metric: str) -> str:
    """``score S, threshold T`` plus ``(distance D, threshold distance T')`` for Euclidean models."""
    text = f"score {score:.4f}, threshold {threshold:.4f}"
    if metric == "euclidean":
        text += f" (distance {-score:.4f}, threshold distance {-threshold:.4f})"
    return text


def decision_line(
    decision: bool, score: float, threshold: float, metric: str, model: str, *more: str
) -> str:
    """``MATCH: score ..., threshold ... (model, metric[, provider])``."""
    verdict = "MATCH" if decision else "NO MATCH"
    where = ", ".join((model, metric, *more))
    return f"{verdict}: {score_text(score, threshold, metric)} ({where})"


def threshold_text(threshold: float, metric: str) -> str:
    """A card's threshold in the same convention, e.g. ``-0.600 (distance 0.600)``."""
    text = f"{threshold:.3f}"
    return f"{text} (distance {-threshold:.3f})" if metric == "euclidean" else text

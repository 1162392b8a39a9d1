"""A fitted pricer in the form it is saved in: smaller, faster to write, same predictions.

``saving_form`` changes a fitted pricer in place while a block runs (the block saves it) and
undoes every change afterwards; ``unpack`` turns a loaded pricer back into the working form.
Predictions of the saved form, once unpacked, equal the original's (tested per family). Measured
on the default synthetic leaderboard (benchmarks/model_size.py):

- Decision trees keep per-node training statistics (impurity, sample counts and weights) and a
  value for internal nodes; prediction reads only each internal node's split and each leaf's
  value. Zeroed, they compress away: half of a random forest's file. The saved trees have no
  ``feature_importances_``.
- A word vocabulary (``vocabulary_``: 50k terms -> column) or a long list of texts is saved as
  numpy arrays (``PackedMapping``, ``PackedStrings``) instead of one JSON entry per term:
  skops wrote a TF-IDF family's 50k-term vocabulary in 51 s as 5.8 MB; as arrays, ~1 s.

(A word vectoriser's ``stop_words_``, the other well-known training-only attribute, is no
longer kept by scikit-learn 1.9.)
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.tree._tree import TREE_LEAF, Tree


class PackedMapping:
    """A str -> int mapping (a vocabulary) as arrays: its keys' UTF-8 bytes end to end with
    their offsets (``_encoded``), and its values."""

    def __init__(self, mapping: dict[str, int]) -> None:
        self.text, self.offsets = _encoded(list(mapping))
        self.values = np.fromiter(mapping.values(), dtype=np.int64, count=len(mapping))

    def unpack(self) -> dict[str, int]:
        return dict(zip(_strings(self, "keys"), self.values.tolist(), strict=True))


class PackedStrings:
    """A list of strings (texts shown to an LLM as examples) as arrays (``_encoded``)."""

    def __init__(self, strings: list[str]) -> None:
        self.text, self.offsets = _encoded(strings)

    def unpack(self) -> list[str]:
        return _strings(self, "strings")


def _encoded(strings: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The strings' UTF-8 bytes end to end, and the n + 1 offsets that cut them apart.

    Until 2026-12-06 they were one fixed-width numpy str array, which has two faults: it drops
    trailing NUL characters (a vocabulary with "ab" and "ab\\0" lost a term, and the loaded
    model refused its own features), and it sizes every entry as the longest (one 20,000
    character token made a 50k-term vocabulary 4 GB: 123 s to save, 141 s to load, 12.7 GB).
    """
    encoded = [string.encode("utf-8", "surrogatepass") for string in strings]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(item) for item in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(), offsets


def _strings(packed: Any, old_field: str) -> list[str]:
    if hasattr(packed, old_field):  # saved in the fixed-width form (see _encoded)
        return getattr(packed, old_field).tolist()
    raw, bounds = packed.text.tobytes(), packed.offsets.tolist()
    return [
        raw[start:end].decode("utf-8", "surrogatepass") for start, end in itertools.pairwise(bounds)
    ]


def estimators(value: Any, seen: set[int] | None = None) -> Iterator[BaseEstimator]:
    """Every estimator reachable from ``value`` through attributes, dicts, lists and tuples."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, BaseEstimator):
        yield value
        children: Any = list(vars(value).values())
    elif isinstance(value, dict):
        children = value.values()
    elif isinstance(value, (list, tuple)):
        children = value
    else:
        return
    for child in children:
        yield from estimators(child, seen)


def _packed(value: Any) -> PackedMapping | PackedStrings | None:
    """The packed form of a fitted attribute worth packing, else None."""
    if isinstance(value, dict) and value:
        # Values are Python or numpy integers (scikit-learn's vocabularies hold numpy ones).
        integers = all(isinstance(v, (int, np.integer)) for v in value.values())
        if integers and all(type(k) is str for k in value) and not _has_bool(value):
            return PackedMapping(value)
    elif isinstance(value, list) and value and all(type(item) is str for item in value):
        return PackedStrings(value)
    return None


def _has_bool(mapping: dict[str, Any]) -> bool:
    return any(isinstance(v, (bool, np.bool_)) for v in mapping.values())


@contextmanager
def saving_form(pricer: Any) -> Iterator[Any]:
    """The pricer in its saving form while the block runs; its working form again after."""
    restore: list[Callable[[], None]] = []
    try:
        for estimator in list(estimators(pricer)):
            for name, value in list(vars(estimator).items()):
                if name.endswith("_") and (packed := _packed(value)) is not None:
                    restore.append(partial(setattr, estimator, name, value))
                    setattr(estimator, name, packed)
            tree = getattr(estimator, "tree_", None)
            if isinstance(tree, Tree):
                # Copies: the state's arrays are views of memory the tree overwrites when set.
                state = {
                    key: value.copy() if isinstance(value, np.ndarray) else value
                    for key, value in tree.__getstate__().items()
                }
                restore.append(partial(tree.__setstate__, state))
                tree.__setstate__(_prediction_state(state))
        yield pricer
    finally:
        for undo in reversed(restore):
            undo()


def unpack(pricer: Any) -> Any:
    """A loaded pricer in its working form (packed attributes unpacked), in place."""
    for estimator in list(estimators(pricer)):
        for name, value in list(vars(estimator).items()):
            if isinstance(value, (PackedMapping, PackedStrings)):
                setattr(estimator, name, value.unpack())
    return pricer


def _prediction_state(state: dict[str, Any]) -> dict[str, Any]:
    """A tree's state with everything prediction does not read set to zero (zeros compress)."""
    nodes = state["nodes"].copy()
    for statistic in ("impurity", "n_node_samples", "weighted_n_node_samples"):
        nodes[statistic] = 0
    values = state["values"].copy()
    values[nodes["left_child"] != TREE_LEAF] = 0.0
    return {**state, "nodes": nodes, "values": values}

"""The problem definitions of the families (data laws, initial weights), neutral ground shared by theory
and reference. Every random draw of a family goes through ``streams``: named, independent generators
spawned from one seed, so that drawing more of one thing (evaluation prompts, a test set) never changes
another (initial weights, the training set)."""
from __future__ import annotations

import numpy as np


def streams(seed: int, names: tuple[str, ...]) -> dict[str, np.random.Generator]:
    """One independent generator per name: the i-th name gets the i-th child of ``SeedSequence(seed)``.

    A child depends only on the seed and its position, so a family that needs a new stream appends its name
    at the end of its tuple and every existing draw stays as it was."""
    children = np.random.SeedSequence(int(seed)).spawn(len(names))
    return {name: np.random.default_rng(child) for name, child in zip(names, children)}

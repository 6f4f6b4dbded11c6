"""Shared fixtures: small data sets and the list of every registered architecture."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import seqpipe

# CI has 2 cores and pytest-xdist is not used; one intra-op thread per test
# avoids oversubscription with GridSearchCV(n_jobs=2) workers and is fastest
# for the tiny models the suite trains. The estimators already run fit and
# predict with torch_num_threads=1 (their default); this process-wide setting is
# kept for the torch the suite runs outside them: bodies and modules called
# directly, export tracing, bare tensor reference computations.
torch.set_num_threads(1)


def architecture_cases() -> list[tuple[str, dict]]:
    """(architecture, params) for every registered architecture and test_params set."""
    return [
        (name, dict(params))
        for name in seqpipe.list_architectures()
        for params in seqpipe.get_architecture(name).test_params
    ]


def case_id(case: tuple[str, dict]) -> str:
    name, params = case
    extras = ",".join(f"{k}={v}" for k, v in sorted(params.items()))
    return f"{name}[{extras}]"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def sequences(rng) -> np.ndarray:
    """(40, 7, 3) float sequences."""
    return rng.normal(size=(40, 7, 3))

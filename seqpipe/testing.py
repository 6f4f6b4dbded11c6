"""Conformance kit for architecture plugins: the checks seqpipe runs on its own.

Every registered architecture, built-in or from a plugin, must pass the same
checks: the registry entry is well formed, the body honours the body contract
(:mod:`seqpipe.architectures.spec`), every estimator and output mode fits and
predicts, ragged batches equal sequences alone, ``clone``/``pickle``/
``GridSearchCV`` work, scikit-learn's own estimator checks pass, and the exported
ONNX file matches Python in onnxruntime. Each check takes ``(name, params)``: an
architecture name and one estimator parameter set (one of the spec's
``test_params``), trains tiny models for an epoch or two and takes about a second.

A plugin author runs the kit in their own tests, either in one call::

    from seqpipe.testing import check_architecture

    def test_my_architecture_conforms():
        check_architecture("my_arch")

or as one pytest test per check, as scikit-learn's ``parametrize_with_checks``::

    from seqpipe.testing import parametrize_architecture_checks

    @parametrize_architecture_checks(["my_arch"])
    def test_my_architecture(name, params, check):
        check(name, params)

pytest is imported only by :func:`parametrize_architecture_checks`.
"""

from __future__ import annotations

import functools
import os
import pickle
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any
from unittest import SkipTest

import numpy as np
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from seqpipe.architectures.spec import ArchitectureSpec, BodyConfig, OnnxLowering
from seqpipe.classifier import LSTMClassifier
from seqpipe.plugins import get_architecture, list_architectures
from seqpipe.regressor import LSTMRegressor
from seqpipe.transformer import LSTMTransformer

__all__ = [
    "CHECKS",
    "ONNX_BATCH_SIZES",
    "ONNX_LENGTHS",
    "ONNX_RTOL",
    "SKLEARN_EXPECTED_FAILED_CHECKS",
    "SKLEARN_SCORE_CHECKS",
    "TRAINING_PARAMS",
    "architecture_checks",
    "check_architecture",
    "check_body_contract",
    "check_classifier_string_labels",
    "check_clone",
    "check_grid_search",
    "check_mixed_precision",
    "check_onnx_parity",
    "check_pickle_roundtrip",
    "check_ragged_batch_matches_alone",
    "check_regressor_per_step",
    "check_regressor_single",
    "check_regressor_vector",
    "check_sklearn_compatible",
    "check_spec",
    "check_transformer",
    "parametrize_architecture_checks",
    "sklearn_expected_failed_checks",
]

Check = Callable[[str, Mapping[str, Any]], None]

#: Training settings every check adds to the architecture's parameters: tiny and fast.
#: The checks test plumbing and contracts, not accuracy.
TRAINING_PARAMS: Mapping[str, Any] = {
    "epochs": 2,
    "batch_size": 16,
    "random_state": 0,
    # The estimators' default, stated: tiny models gain nothing from more threads,
    # and on a busy machine extra threads stall (measured 10x slower with 2).
    "torch_num_threads": 1,
}

#: Batch sizes and sequence lengths :func:`check_onnx_parity` compares at.
ONNX_BATCH_SIZES: tuple[int, ...] = (1, 3, 8)
ONNX_LENGTHS: tuple[int, ...] = (1, 6, 17)
#: ``|onnx - python| <= ONNX_RTOL * max(1, |python|)``: absolute for small values,
#: relative for large ones.
ONNX_RTOL = 1e-4

_TWO_D_IS_SEQUENCE = (
    "2-D X is (n_samples, n_timesteps) with one feature, so n_features_in_ is 1 and the "
    "sequence length may change between fit and predict"
)
_SHORTER_SEQUENCE_IS_VALID = (
    "ends by predicting with one column fewer and expecting an error; for seqpipe that is "
    "a shorter sequence, which is valid (" + _TWO_D_IS_SEQUENCE + ")"
)
_SHORTER_CHUNK_IS_VALID = (
    "calls partial_fit again with one column fewer and expects an error; for seqpipe that "
    "is a chunk of shorter sequences, which is valid (" + _TWO_D_IS_SEQUENCE + "); another "
    "feature count in 3-D X is an error (tests/test_partial_fit.py)"
)

#: scikit-learn checks each estimator cannot pass by design, with the reason. This is
#: the one table seqpipe's own ``tests/test_sklearn_checks.py`` and the kit both use.
_WEIGHTS_NOT_BITWISE = (
    "asserts that a fit with integer sample_weight and a fit on the rows repeated that "
    "often agree to rtol 1e-7, but seqpipe trains in float32 by stochastic mini-batches: "
    "the 15 weighted and 27 repeated rows fall into other batches (batch_size below 27), "
    "or one batch sums its loss in another order, and training amplifies that (measured: "
    "3e-4 in the regressor's predictions, 3e-8 in the transformer's features, 0.14 in the "
    "batch_size=8 classifier's probabilities). The equivalence is exact in arithmetic for "
    "full-batch training (batch_size >= n_samples, shuffle=False) and holds there within "
    "1e-5 (tests/test_sample_weight.py)"
)

_BLOBS_ARE_NOT_SERIES = (
    _SHORTER_SEQUENCE_IS_VALID + "; its multiclass half, never reached, would fail too at "
    "LSTMClassifier's default local_scaling='standard': the 3-class blobs read as 2-step "
    "series z-normalize to +-1 each (accuracy 0.64; the level is the class there, and "
    "tests/test_estimators.py runs the accuracy half with local_scaling=None)"
)

SKLEARN_EXPECTED_FAILED_CHECKS: Mapping[type, Mapping[str, str]] = {
    LSTMRegressor: {
        "check_n_features_in": _TWO_D_IS_SEQUENCE,
        "check_n_features_in_after_fitting": _TWO_D_IS_SEQUENCE,
        "check_estimators_partial_fit_n_features": _SHORTER_CHUNK_IS_VALID,
        "check_sample_weight_equivalence_on_dense_data": _WEIGHTS_NOT_BITWISE,
    },
    LSTMClassifier: {
        "check_n_features_in": _TWO_D_IS_SEQUENCE,
        "check_n_features_in_after_fitting": _TWO_D_IS_SEQUENCE,
        "check_classifiers_train": _BLOBS_ARE_NOT_SERIES,
        "check_estimators_partial_fit_n_features": _SHORTER_CHUNK_IS_VALID,
        "check_sample_weight_equivalence_on_dense_data": _WEIGHTS_NOT_BITWISE,
    },
    LSTMTransformer: {
        "check_n_features_in": _TWO_D_IS_SEQUENCE,
        "check_n_features_in_after_fitting": _TWO_D_IS_SEQUENCE,
        "check_transformer_general": _SHORTER_SEQUENCE_IS_VALID,
        "check_sample_weight_equivalence_on_dense_data": _WEIGHTS_NOT_BITWISE,
    },
}

#: scikit-learn checks that assert a score on its toy data sets. They measure how
#: long the model trains, not whether an architecture is wired correctly, so
#: :func:`check_sklearn_compatible` leaves them out; seqpipe's own test suite runs
#: them with longer training.
SKLEARN_SCORE_CHECKS: Mapping[str, str] = {
    "check_regressors_train": "asserts R^2 > 0.5 on toy data: needs tens of epochs",
    "check_classifiers_train": "asserts accuracy > 0.83 on toy data: needs tens of epochs",
    "check_class_weight_classifiers": (
        "asserts > 87% predictions of the class weighted 1000 on noisy blobs: needs tens of epochs"
    ),
}

#: scikit-learn checks that compare outputs at float64 tolerance (rtol 1e-7), below
#: float32's resolution. A float32 network's output may change in its last bit
#: when the rest of the batch changes (BLAS blocking; torch.nn.RNN's bidirectional
#: kernel does), which is not a dependence between samples.
#: :func:`check_sklearn_compatible` runs these at float32 tolerance instead.
SKLEARN_FLOAT32_CHECKS: Mapping[str, str] = {
    "check_methods_sample_order_invariance": "compares at rtol 1e-7, below float32 resolution",
    "check_methods_subset_invariance": "compares at rtol 1e-7, below float32 resolution",
}
#: Tolerance of the float32 versions: ``|a - b| <= FLOAT32_RTOL * max(1, |b|)``.
FLOAT32_RTOL = 1e-5


def sklearn_expected_failed_checks(estimator: Any) -> dict[str, str]:
    """Expected failures (check name -> reason) for a seqpipe estimator.

    Usable directly as ``parametrize_with_checks(..., expected_failed_checks=...)``.

    Examples
    --------
    >>> from seqpipe import LSTMClassifier
    >>> from seqpipe.testing import sklearn_expected_failed_checks
    >>> for name in sorted(sklearn_expected_failed_checks(LSTMClassifier())):
    ...     print(name)
    check_classifiers_train
    check_estimators_partial_fit_n_features
    check_methods_sample_order_invariance
    check_methods_subset_invariance
    check_n_features_in
    check_n_features_in_after_fitting
    check_sample_weight_equivalence_on_dense_data

    The float64-tolerance checks of :data:`SKLEARN_FLOAT32_CHECKS` are included:
    whether a float32 network's last bit moves with the batch depends on its
    weights (it does for chrono-initialised LSTMs on scikit-learn's toy data), so
    :func:`check_sklearn_compatible` runs them at float32 tolerance instead.
    """
    for cls, failures in SKLEARN_EXPECTED_FAILED_CHECKS.items():
        if isinstance(estimator, cls):
            return {**failures, **SKLEARN_FLOAT32_CHECKS}
    return {}


# --- shared helpers ---------------------------------------------------------------------


def _single_threaded(check: Check) -> Check:
    """Run ``check`` with one torch thread, restoring the caller's setting after.

    For checks that run torch outside the estimators (bodies called directly);
    the estimators of the other checks get ``torch_num_threads=1`` from
    :data:`TRAINING_PARAMS`. Tiny models gain nothing from intra-op threads, and
    on a busy machine those threads spin against other processes: measured 10x
    slower with 2 threads.
    """

    @functools.wraps(check)
    def run(name: str, params: Mapping[str, Any]) -> None:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            check(name, params)
        finally:
            torch.set_num_threads(threads)

    return run


def _data(seed: int = 0, n: int = 24, time: int = 6, features: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, time, features))


def _estimator(cls: type, name: str, params: Mapping[str, Any]) -> Any:
    return cls(architecture=name, **{**TRAINING_PARAMS, **params})


def _where(name: str, params: Mapping[str, Any]) -> str:
    extras = ", ".join(f"{k}={v!r}" for k, v in sorted(params.items()))
    return f"architecture {name!r} with {{{extras}}}"


def _body_config(
    name: str, params: Mapping[str, Any], input_size: int, max_timesteps: int | None = None
) -> BodyConfig:
    """The BodyConfig an estimator with ``params`` passes to ``build``.

    Built by the same public constructor ``fit`` uses, so the kit cannot drift from
    it; ``max_timesteps`` is the training length ``fit`` would pass.
    """
    estimator = _estimator(LSTMRegressor, name, params)
    resolved = dict(estimator.get_params())
    resolved["hidden_size"] = get_architecture(name).resolved_hidden_size(resolved["hidden_size"])
    return BodyConfig.from_params(resolved, input_size, max_timesteps)


def _within_bound(model: Any, lengths: Iterable[int]) -> list[int]:
    """``lengths`` capped at the fitted body's ``max_timesteps``: a body that needs a
    fixed length (``None`` = unbounded) refuses longer sequences by design."""
    bound = getattr(model.module_.body, "max_timesteps", None)
    return [int(t) if bound is None else min(int(t), int(bound)) for t in lengths]


def _assert_close(actual: Any, expected: Any, rtol: float, what: str) -> None:
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert np.array_equal(np.isnan(actual), np.isnan(expected)), f"{what}: NaN positions differ"
    diff = np.abs(np.nan_to_num(actual) - np.nan_to_num(expected))
    limit = rtol * np.maximum(1.0, np.abs(np.nan_to_num(expected)))
    worst = np.unravel_index(np.argmax(diff - limit), diff.shape) if diff.size else ()
    assert (diff <= limit).all(), (
        f"{what}: max abs difference {diff.max():.3g} exceeds {rtol:g} x max(1, |value|) "
        f"(at index {tuple(int(i) for i in worst)})"
    )


# --- the registry entry and the body ----------------------------------------------------


def check_spec(name: str, params: Mapping[str, Any]) -> None:
    """The registry entry is well formed and ``params`` are valid estimator parameters."""
    spec = get_architecture(name)
    assert isinstance(spec, ArchitectureSpec), f"{name!r}: registry holds {type(spec).__name__}"
    assert spec.name == name, f"spec registered as {name!r} is named {spec.name!r}"
    assert callable(spec.build), f"{name!r}: build is not callable"
    assert isinstance(spec.description, str), f"{name!r}: description must be a str"
    assert spec.onnx_lowering is None or isinstance(spec.onnx_lowering, OnnxLowering), (
        f"{name!r}: onnx_lowering must be None (the torch.onnx fallback) or an OnnxLowering"
    )
    assert len(spec.test_params) >= 1, f"{name!r}: test_params needs at least one set"
    valid = set(LSTMRegressor().get_params()) - {"architecture"}
    for index, candidate in enumerate(spec.test_params):
        assert isinstance(candidate, Mapping), f"{name!r}: test_params[{index}] is not a dict"
        unknown = sorted(set(candidate) - valid)
        assert not unknown, (
            f"{name!r}: test_params[{index}] has {unknown}, which are not estimator "
            "parameters ('architecture' is implied)"
        )
    unknown = sorted(set(params) - valid)
    assert not unknown, f"{_where(name, params)}: {unknown} are not estimator parameters"


@_single_threaded
def check_body_contract(name: str, params: Mapping[str, Any]) -> None:
    """``build`` returns a module honouring the body contract, padding included.

    Checks ``output_size``, both output shapes and dtypes, ``lengths=None`` equal to
    full lengths, each sequence of a zero-padded ragged batch equal to the sequence
    alone (per-step output at valid steps, and summary), the summary's definition
    (last valid step; for bidirectional bodies the forward half there and the
    backward half at step 0; not for a body with ``pooled_summary = True``, whose
    summary pools every valid step), and that gradients reach every parameter.
    """
    where = _where(name, params)
    config = _body_config(name, params, input_size=3, max_timesteps=7)
    # A forked, seeded RNG: reproducible weights and dropout, caller's state untouched.
    with torch.random.fork_rng():
        torch.manual_seed(0)
        _check_body(get_architecture(name).build(config), config, where)


def _check_body(body: Any, config: BodyConfig, where: str) -> None:
    assert isinstance(body, torch.nn.Module), f"{where}: build returned {type(body).__name__}"
    size = getattr(body, "output_size", None)
    assert isinstance(size, (int, np.integer)) and not isinstance(size, bool) and size > 0, (
        f"{where}: body needs a positive integer `output_size`, has {size!r}"
    )
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(4, 7, 3, generator=generator)
    lengths = torch.tensor([7, 3, 1, 5])
    for i, length in enumerate(lengths.tolist()):
        x[i, length:] = 0.0  # the contract: padded positions arrive as zeros

    body.train()
    sequence, summary = body(x, lengths)
    (sequence.sum() + summary.sum()).backward()
    missing = [n for n, p in body.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"{where}: no gradient reaches parameters {missing}"

    body.eval()
    with torch.no_grad():
        sequence, summary = body(x, lengths)
        assert tuple(sequence.shape) == (4, 7, size), (
            f"{where}: sequence_output has shape {tuple(sequence.shape)}, expected (4, 7, {size})"
        )
        assert tuple(summary.shape) == (4, size), (
            f"{where}: summary has shape {tuple(summary.shape)}, expected (4, {size})"
        )
        assert sequence.dtype == summary.dtype == torch.float32, f"{where}: outputs not float32"
        full = x[:1].expand(2, -1, -1)
        _assert_close(
            body(full, None)[1],
            body(full, torch.tensor([7, 7]))[1],
            1e-5,
            f"{where}: summary with lengths=None vs full lengths",
        )
        half = size // 2
        for i, length in enumerate(lengths.tolist()):
            alone_seq, alone_summary = body(x[i : i + 1, :length], None)
            label = f"{where}: sequence {i} (length {length}) in a ragged batch vs alone"
            _assert_close(sequence[i, :length], alone_seq[0], 1e-5, label + " (per step)")
            _assert_close(summary[i], alone_summary[0], 1e-5, label + " (summary)")
            if getattr(body, "pooled_summary", False):
                continue  # the summary pools every valid step; no single step holds it
            if config.bidirectional:
                expected = torch.cat([sequence[i, length - 1, :half], sequence[i, 0, half:]])
                rule = "forward half at the last valid step + backward half at step 0"
            else:
                expected, rule = sequence[i, length - 1], "output at the last valid step"
            _assert_close(summary[i], expected, 1e-5, f"{where}: summary {i} is not the {rule}")


# --- estimators, one output mode each ---------------------------------------------------


def _fit_and_check_output(
    model: Any, X: np.ndarray, y: Any, shape: tuple[int, ...] | None, where: str
) -> Any:
    model.fit(X, y)
    out = model.transform(X) if isinstance(model, LSTMTransformer) else model.predict(X)
    if shape is None:  # a transformer's width is the body's output_size
        shape = (X.shape[0], int(model.module_.body.output_size))
    assert out.shape == shape, f"{where}: output shape {out.shape}, expected {shape}"
    if out.dtype.kind == "f":
        assert np.isfinite(out).all(), f"{where}: non-finite outputs"
    # Sequences may be shorter or longer at predict time than at fit time.
    for time in _within_bound(model, (2, X.shape[1] + 4)):
        other = _data(1, 3, time, X.shape[2])
        got = model.transform(other) if isinstance(model, LSTMTransformer) else model.predict(other)
        assert got.shape[0] == 3, f"{where}: predicting sequences of length {time} failed"
    return out


def check_regressor_single(name: str, params: Mapping[str, Any]) -> None:
    """``LSTMRegressor`` with 1-D ``y``: one value per sequence."""
    X = _data()
    model = _estimator(LSTMRegressor, name, params)
    _fit_and_check_output(model, X, X[:, :, 0].sum(axis=1), (24,), _where(name, params))


def check_regressor_vector(name: str, params: Mapping[str, Any]) -> None:
    """``LSTMRegressor`` with 2-D ``y``: several values per sequence."""
    X = _data()
    y = np.stack([X[:, -1, 0], X[:, :, 1].mean(axis=1)], axis=1)
    model = _estimator(LSTMRegressor, name, params)
    _fit_and_check_output(model, X, y, (24, 2), _where(name, params))


def check_regressor_per_step(name: str, params: Mapping[str, Any]) -> None:
    """``LSTMRegressor`` with 3-D ``y``: one output per time step (many-to-many)."""
    X = _data()
    model = _estimator(LSTMRegressor, name, params)
    _fit_and_check_output(
        model, X, np.cumsum(X[:, :, :1], axis=1), (24, 6, 1), _where(name, params)
    )


def check_classifier_string_labels(name: str, params: Mapping[str, Any]) -> None:
    """``LSTMClassifier`` with string labels: labels from ``classes_``, probabilities sum to 1."""
    where = _where(name, params)
    X = _data()
    y = np.array(["low", "mid", "high"])[np.random.default_rng(0).integers(0, 3, size=24)]
    model = _estimator(LSTMClassifier, name, params)
    labels = _fit_and_check_output(model, X, y, (24,), where)
    assert set(labels) <= {"low", "mid", "high"}, f"{where}: unknown labels {set(labels)}"
    proba = model.predict_proba(X)
    assert proba.shape == (24, 3), f"{where}: predict_proba shape {proba.shape}"
    _assert_close(proba.sum(axis=1), np.ones(24), 1e-6, f"{where}: probabilities sum")


def check_transformer(name: str, params: Mapping[str, Any]) -> None:
    """``LSTMTransformer``: self-supervised fit, ``transform`` gives ``output_size`` columns."""
    where = _where(name, params)
    X = _data()
    model = _estimator(LSTMTransformer, name, params)
    width = _fit_and_check_output(model, X, None, None, where).shape[1]
    names = model.get_feature_names_out()
    assert len(names) == width, f"{where}: {len(names)} feature names for {width} columns"


def check_mixed_precision(name: str, params: Mapping[str, Any]) -> None:
    """``precision="bf16-mixed"``: the body trains under ``torch.autocast`` (bfloat16),
    ragged batches included; weights and predictions stay float32 and finite.

    A body fails here when it mixes float32 and bfloat16 in one operation that
    autocast does not cast (a matmul inside a custom ``torch.autograd.Function``, an
    ``out=`` buffer of the other dtype): cast to float32 inside the body where it
    must (seqpipe's hand-written cells turn autocast off around their time loops).
    """
    where = _where(name, params)
    X = _data()
    X[::3, 4:] = np.nan  # every third sequence ends after 4 steps
    model = _estimator(LSTMRegressor, name, {**params, "precision": "bf16-mixed"})
    _fit_and_check_output(model, X, np.nansum(X[:, :, 0], axis=1), (24,), where)
    dtypes = {str(p.dtype) for p in model.module_.parameters()}
    assert dtypes == {"torch.float32"}, f"{where}: parameters of dtype {sorted(dtypes)}"


# --- sequences, copies and searches -----------------------------------------------------


def check_ragged_batch_matches_alone(name: str, params: Mapping[str, Any]) -> None:
    """A sequence predicted in a ragged batch gives the numbers it gives alone."""
    X = _data(n=12, time=6)
    model = _estimator(LSTMRegressor, name, params).fit(X, X[:, -1, 0])
    rng = np.random.default_rng(2)
    lengths = _within_bound(model, (6, 2, 9, 1, 4))
    sequences = [rng.normal(size=(length, 2)) for length in lengths]
    together = model.predict(sequences)
    alone = np.array([model.predict(seq[None])[0] for seq in sequences])
    _assert_close(together, alone, 1e-5, f"{_where(name, params)}: ragged batch vs alone")


def check_clone(name: str, params: Mapping[str, Any]) -> None:
    """``clone`` keeps every parameter, drops the fit, and refits to the same model."""
    where = _where(name, params)
    X = _data()
    y = X[:, :, 0].sum(axis=1)
    model = _estimator(LSTMRegressor, name, params).fit(X, y)
    fresh = clone(model)
    assert not hasattr(fresh, "module_"), f"{where}: clone kept the fitted network"
    assert fresh.get_params() == model.get_params(), f"{where}: clone changed parameters"
    same = np.array_equal(fresh.fit(X, y).predict(X), model.predict(X))
    assert same, f"{where}: refitting a clone with the same random_state gave other predictions"


def check_pickle_roundtrip(name: str, params: Mapping[str, Any]) -> None:
    """A fitted regressor and classifier survive ``pickle`` with identical outputs."""
    where = _where(name, params)
    X = _data()
    labels = np.where(X[:, :, 0].sum(axis=1) > 0, "up", "down")
    for cls, y in ((LSTMRegressor, X[:, -1, 0]), (LSTMClassifier, labels)):
        model = _estimator(cls, name, params).fit(X, y)
        restored = pickle.loads(pickle.dumps(model))
        assert np.array_equal(restored.predict(X), model.predict(X)), (
            f"{where}: {cls.__name__} predicts differently after a pickle round trip"
        )


def check_grid_search(name: str, params: Mapping[str, Any]) -> None:
    """``GridSearchCV`` searches this architecture's parameters and refits the best."""
    where = _where(name, params)
    X = _data()
    y = X[:, :, 0].sum(axis=1)
    hidden = get_architecture(name).resolved_hidden_size(params.get("hidden_size", 8))
    grid = {"architecture": [name], **{k: [v] for k, v in params.items()}}
    grid["hidden_size"] = [hidden, hidden + 2]
    search = GridSearchCV(LSTMRegressor(**TRAINING_PARAMS), grid, cv=2)
    search.fit(X, y)
    best = search.best_estimator_
    assert best.architecture == name, f"{where}: best estimator uses {best.architecture!r}"
    assert len(search.cv_results_["params"]) == 2, f"{where}: expected 2 candidates"
    assert best.predict(X).shape == (24,), f"{where}: refitted best estimator predicts badly"


# --- scikit-learn's checks and ONNX -----------------------------------------------------


def check_sklearn_compatible(name: str, params: Mapping[str, Any]) -> None:
    """scikit-learn's estimator checks on all three estimators built with ``params``.

    Runs every check ``sklearn.utils.estimator_checks`` yields, except the expected
    failures of :data:`SKLEARN_EXPECTED_FAILED_CHECKS` and the score thresholds of
    :data:`SKLEARN_SCORE_CHECKS`; the checks of :data:`SKLEARN_FLOAT32_CHECKS` run
    at float32 tolerance (:func:`_check_batch_invariance`).
    """
    from sklearn.utils.estimator_checks import estimator_checks_generator

    failures = []
    for cls in (LSTMRegressor, LSTMClassifier, LSTMTransformer):
        estimator = _estimator(cls, name, params)
        try:
            _check_batch_invariance(estimator)
        except AssertionError as exc:
            failures.append(f"{cls.__name__}: {exc}")
        skipped = {
            **sklearn_expected_failed_checks(estimator),
            **SKLEARN_SCORE_CHECKS,
            **SKLEARN_FLOAT32_CHECKS,
        }
        # mark="skip" wraps the listed checks so they raise SkipTest instead of running.
        for est, check in estimator_checks_generator(
            estimator, expected_failed_checks=skipped, mark="skip"
        ):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    check(est)
            except SkipTest:
                continue
            except Exception as exc:
                check_name = getattr(check, "func", check).__name__
                failures.append(f"{cls.__name__}.{check_name}: {type(exc).__name__}: {exc}")
    assert not failures, f"{_where(name, params)} fails scikit-learn's checks:\n  " + "\n  ".join(
        failures
    )


def _check_batch_invariance(estimator: Any) -> None:
    """sklearn's sample-order and subset invariance checks at float32 tolerance.

    Every output method gives each sample the same result whether the batch is
    shuffled or predicted in pieces.
    """
    X = _data(n=30)
    y = (
        np.where(X[:, :, 0].sum(axis=1) > 0, "up", "down")
        if isinstance(estimator, LSTMClassifier)
        else X[:, -1, 0]
    )
    fitted = clone(estimator).fit(X, y)
    order = np.random.default_rng(3).permutation(len(X))
    for method in ("predict", "predict_proba", "decision_function", "transform"):
        if not hasattr(fitted, method):
            continue
        run = getattr(fitted, method)
        full = run(X)
        if full.dtype.kind not in "fc":  # labels: compare exactly
            assert np.array_equal(run(X[order]), full[order]), f"{method} depends on order"
            continue
        _assert_close(run(X[order]), full[order], FLOAT32_RTOL, f"{method} of a shuffled batch")
        pieces = np.concatenate([run(X[i : i + 7]) for i in range(0, len(X), 7)])
        _assert_close(pieces, full, FLOAT32_RTOL, f"{method} in batches of 7")


def check_onnx_parity(name: str, params: Mapping[str, Any]) -> None:
    """Export (``seqpipe.onnx.export``), run in onnxruntime (``seqpipe.runtime``), compare.

    Covers a one-value regressor, a per-step regressor, a string-label classifier
    and a transformer, each at every combination of :data:`ONNX_BATCH_SIZES` and
    :data:`ONNX_LENGTHS` plus a NaN-padded ragged batch; values must agree to
    :data:`ONNX_RTOL` relative to their magnitude.
    """
    from seqpipe import runtime
    from seqpipe.onnx import export

    where = _where(name, params)
    X = _data()
    labels = np.array(["low", "mid", "high"])[np.random.default_rng(0).integers(0, 3, size=24)]
    cases = [
        (LSTMRegressor, X[:, :, 0].sum(axis=1)),
        (LSTMRegressor, np.cumsum(X[:, :, :1], axis=1)),
        (LSTMClassifier, labels),
        (LSTMTransformer, None),
    ]

    def make_inputs(model: Any) -> list[tuple[str, np.ndarray]]:
        rng = np.random.default_rng(3)
        inputs = [
            (f"batch {n}, length {t}", rng.normal(size=(n, t, 2)))
            for n in ONNX_BATCH_SIZES
            for t in dict.fromkeys(_within_bound(model, ONNX_LENGTHS))
        ]
        ragged_lengths = _within_bound(model, (9, 1, 5, 3))
        ragged = rng.normal(size=(4, max(ragged_lengths), 2))
        for i, length in enumerate(ragged_lengths):
            ragged[i, length:] = np.nan
        inputs.append((f"ragged batch of lengths {ragged_lengths}", ragged))
        return inputs

    with tempfile.TemporaryDirectory() as folder:
        for index, (cls, y) in enumerate(cases):
            model = _estimator(cls, name, params).fit(X, y)
            inputs = make_inputs(model)
            # The exporter verifies too; at the kit's shapes rather than its defaults
            # (up to length 120), which would double the time for no extra coverage.
            path = export(
                model,
                os.path.join(folder, f"model{index}.onnx"),
                verify_batch_sizes=ONNX_BATCH_SIZES,
                verify_lengths=ONNX_LENGTHS,
            )
            served = runtime.load(path, intra_op_num_threads=1)
            for label, batch in inputs:
                what = f"{where}: {cls.__name__} ({'no y' if y is None else y.ndim}-D y), {label}"
                if cls is LSTMTransformer:
                    _assert_close(served.transform(batch), model.transform(batch), ONNX_RTOL, what)
                elif cls is LSTMClassifier:
                    expected = model.predict_proba(batch)
                    _assert_close(served.predict_proba(batch), expected, ONNX_RTOL, what)
                    # Labels must agree except where two classes (nearly) tie.
                    top = np.sort(expected, axis=1)
                    clear = top[:, -1] - top[:, -2] > 10 * ONNX_RTOL
                    got, want = served.predict(batch)[clear], model.predict(batch)[clear]
                    assert (got == want).all(), f"{what}: predicted labels differ"
                else:
                    _assert_close(served.predict(batch), model.predict(batch), ONNX_RTOL, what)


#: Every check, in the order :func:`check_architecture` runs them.
CHECKS: tuple[Check, ...] = (
    check_spec,
    check_body_contract,
    check_regressor_single,
    check_regressor_vector,
    check_regressor_per_step,
    check_classifier_string_labels,
    check_transformer,
    check_mixed_precision,
    check_ragged_batch_matches_alone,
    check_clone,
    check_pickle_roundtrip,
    check_grid_search,
    check_sklearn_compatible,
    check_onnx_parity,
)


# --- running the kit --------------------------------------------------------------------


def architecture_checks(
    name: str,
    *,
    params: Iterable[Mapping[str, Any]] | None = None,
    checks: Iterable[Check] = CHECKS,
) -> Iterator[tuple[str, dict[str, Any], Check]]:
    """Yield ``(name, params, check)`` for each parameter set and check.

    Parameters
    ----------
    name : str
        A registered architecture.
    params : iterable of dict, optional
        Estimator parameter sets to check; default: the spec's ``test_params``.
    checks : iterable of callables, default=CHECKS
        The checks to yield; each is called as ``check(name, params)``.

    Examples
    --------
    >>> from seqpipe.testing import architecture_checks, check_spec
    >>> for name, params, check in architecture_checks("gru", checks=[check_spec]):
    ...     check(name, params)
    """
    sets = get_architecture(name).test_params if params is None else params
    for candidate in sets:
        for check in checks:
            yield name, dict(candidate), check


def check_architecture(
    name: str,
    *,
    params: Iterable[Mapping[str, Any]] | None = None,
    checks: Iterable[Check] = CHECKS,
    expected_failed_checks: Mapping[str, str] | None = None,
) -> None:
    """Run the conformance checks on ``name``; raise one AssertionError naming every failure.

    Parameters
    ----------
    name : str
        A registered architecture.
    params : iterable of dict, optional
        Estimator parameter sets to check; default: the spec's ``test_params``.
    checks : iterable of callables, default=CHECKS
        Which checks to run.
    expected_failed_checks : dict, optional
        ``{check_name: reason}`` for checks the architecture cannot pass; they are
        not run. A reason is required, as in scikit-learn.

    Raises
    ------
    AssertionError
        Listing each failing check, its parameters and what went wrong.

    Examples
    --------
    >>> from seqpipe.testing import check_architecture, check_body_contract, check_spec
    >>> check_architecture("rnn", checks=[check_spec, check_body_contract])
    """
    expected = dict(expected_failed_checks or {})
    failures, ran = [], 0
    for arch, candidate, check in architecture_checks(name, params=params, checks=checks):
        if check.__name__ in expected:
            continue
        ran += 1
        try:
            check(arch, candidate)
        except Exception as exc:  # every failure is collected and reported together
            kind = "" if isinstance(exc, AssertionError) else f"{type(exc).__name__}: "
            failures.append(f"{check.__name__} {candidate}: {kind}{exc}")
    if failures:
        raise AssertionError(
            f"architecture {name!r} failed {len(failures)} of {ran} conformance checks:\n- "
            + "\n- ".join(failures)
        )


def _case_id(name: str, params: Mapping[str, Any], check: Check) -> str:
    extras = ",".join(f"{k}={v}" for k, v in sorted(params.items()))
    return f"{name}[{extras}]-{check.__name__}"


def parametrize_architecture_checks(
    names: Iterable[str] | None = None,
    *,
    checks: Iterable[Check] = CHECKS,
    expected_failed_checks: Mapping[str, str] | None = None,
) -> Any:
    """A ``pytest.mark.parametrize("name, params, check", ...)`` over the kit.

    Parameters
    ----------
    names : iterable of str, optional
        Architectures to check; default: every registered one.
    checks : iterable of callables, default=CHECKS
        Which checks to include.
    expected_failed_checks : dict, optional
        ``{check_name: reason}``; those cases are marked ``xfail`` with the reason.

    Examples
    --------
    >>> from seqpipe.testing import parametrize_architecture_checks
    >>> mark = parametrize_architecture_checks(["lstm"])
    >>> mark.args[0]
    'name, params, check'
    """
    import pytest

    expected = dict(expected_failed_checks or {})
    checks = tuple(checks)
    cases = []
    for name in list_architectures() if names is None else names:
        for arch, candidate, check in architecture_checks(name, checks=checks):
            marks = []
            if check.__name__ in expected:
                marks.append(pytest.mark.xfail(reason=expected[check.__name__]))
            cases.append(
                pytest.param(
                    arch, candidate, check, id=_case_id(arch, candidate, check), marks=marks
                )
            )
    return pytest.mark.parametrize("name, params, check", cases)

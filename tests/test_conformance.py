"""seqpipe's architectures through the public conformance kit, and the kit itself.

Every registered architecture (built-in or installed plugin) runs every check of
:mod:`seqpipe.testing` on each of its ``test_params`` sets, except scikit-learn's
estimator checks, which run on the first set only: they exercise the estimator
API far more than the architecture and cost several seconds per set.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import seqpipe
from seqpipe import testing
from seqpipe.architectures.padding import last_valid
from seqpipe.testing import (
    CHECKS,
    check_architecture,
    check_body_contract,
    check_mixed_precision,
    check_regressor_single,
    check_sklearn_compatible,
    check_spec,
    parametrize_architecture_checks,
    sklearn_expected_failed_checks,
)

ARCHITECTURE_CHECKS = [check for check in CHECKS if check is not check_sklearn_compatible]


@parametrize_architecture_checks(checks=ARCHITECTURE_CHECKS)
def test_architecture_conforms(name, params, check):
    check(name, params)


@pytest.mark.parametrize("name", seqpipe.list_architectures())
def test_sklearn_checks_through_each_architecture(name):
    check_sklearn_compatible(name, seqpipe.get_architecture(name).test_params[0])


# --- the kit catches what it promises to catch ---------------------------------------


class LeakyBody(nn.Module):
    """Breaks the contract: its summary averages every step, padding included."""

    def __init__(self, config: seqpipe.BodyConfig) -> None:
        super().__init__()
        self.rnn = nn.GRU(config.input_size, config.hidden_size, batch_first=True)
        self.output_size = config.hidden_size

    def forward(self, x, lengths=None):
        out, _ = self.rnn(x)
        return out, out.mean(dim=1)


class BatchMixingBody(nn.Module):
    """Breaks sample independence: every summary sees the batch mean."""

    def __init__(self, config: seqpipe.BodyConfig) -> None:
        super().__init__()
        self.rnn = nn.GRU(config.input_size, config.hidden_size, batch_first=True)
        self.output_size = config.hidden_size

    def forward(self, x, lengths=None):
        out, _ = self.rnn(x)
        last = out[:, -1]
        return out, last + last.mean(dim=0, keepdim=True)


class _Project(torch.autograd.Function):
    """``x @ w`` into a preallocated float32 buffer, as hand-written time loops do."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        out = x.new_empty(x.shape[0], w.shape[1], dtype=torch.float32)
        return torch.mm(x, w, out=out)  # out= is outside autocast's casting

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        return grad @ w.t(), x.t() @ grad


class DtypeMixingBody(nn.Module):
    """Fine in float32, broken under autocast: its custom Function multiplies the
    bfloat16 output of a Linear into a float32 buffer."""

    def __init__(self, config: seqpipe.BodyConfig) -> None:
        super().__init__()
        self.proj = nn.Linear(config.input_size, config.hidden_size)
        self.weight = nn.Parameter(torch.eye(config.hidden_size))
        self.output_size = config.hidden_size

    def forward(self, x, lengths=None):
        h = torch.tanh(self.proj(x))
        out = _Project.apply(h.reshape(-1, h.shape[-1]), self.weight).view(h.shape)
        return out, last_valid(out, lengths)


class Plugin:
    @seqpipe.hookimpl
    def seqpipe_architectures(self):
        return [
            seqpipe.ArchitectureSpec("leaky_gru", LeakyBody, test_params=({"hidden_size": 4},)),
            seqpipe.ArchitectureSpec("mixing_gru", BatchMixingBody, test_params=({},)),
            seqpipe.ArchitectureSpec("typo_params", LeakyBody, test_params=({"hiden_size": 4},)),
            seqpipe.ArchitectureSpec("dtype_mixing", DtypeMixingBody, test_params=({},)),
        ]


@pytest.fixture
def broken_plugin():
    seqpipe.register_plugin(Plugin(), name="broken-for-kit")
    yield
    seqpipe.unregister_plugin("broken-for-kit")


def test_body_check_names_the_broken_rule(broken_plugin):
    with pytest.raises(AssertionError, match="summary 0 is not the output at the last valid"):
        check_body_contract("leaky_gru", {"hidden_size": 4})


def test_float32_invariance_checks_catch_samples_that_see_each_other(broken_plugin):
    # sklearn's own sample-order check is replaced by a float32-tolerant one; it must
    # still fail a body whose outputs depend on the rest of the batch.
    with pytest.raises(AssertionError, match=r"shuffled batch|batches of 7"):
        testing._check_batch_invariance(seqpipe.LSTMRegressor(architecture="mixing_gru", epochs=2))
    # torch.nn.RNN's bidirectional kernel changes the last float32 bit with the batch
    # order, which sklearn's rtol=1e-7 check rejects; the float32 check accepts it.
    bidirectional_rnn = seqpipe.LSTMTransformer(
        architecture="rnn", hidden_size=6, num_layers=2, bidirectional=True, epochs=2
    )
    testing._check_batch_invariance(bidirectional_rnn)


def test_mixed_precision_check_catches_a_body_that_mixes_dtypes(broken_plugin):
    check_regressor_single("dtype_mixing", {})  # float32 training works
    with pytest.raises(RuntimeError, match=r"dtype|BFloat16"):
        check_mixed_precision("dtype_mixing", {})


def test_spec_check_names_unknown_parameters(broken_plugin):
    with pytest.raises(AssertionError, match=r"\['hiden_size'\].*not estimator parameters"):
        check_spec("typo_params", {})


def test_check_architecture_reports_every_failure_at_once(broken_plugin):
    with pytest.raises(AssertionError) as info:
        check_architecture("leaky_gru", checks=[check_spec, check_body_contract])
    message = str(info.value)
    assert "'leaky_gru' failed 1 of 2 conformance checks" in message
    assert "check_body_contract {'hidden_size': 4}" in message


def test_expected_failed_checks_are_skipped_with_a_reason(broken_plugin):
    check_architecture(
        "leaky_gru",
        checks=[check_spec, check_body_contract],
        expected_failed_checks={"check_body_contract": "documented limitation"},
    )


def test_parametrize_helper_builds_one_case_per_set_and_check(broken_plugin):
    mark = parametrize_architecture_checks(
        ["leaky_gru"],
        checks=[check_spec, check_body_contract],
        expected_failed_checks={"check_body_contract": "documented limitation"},
    )
    assert mark.args[0] == "name, params, check"
    cases = mark.args[1]
    assert [case.id for case in cases] == [
        "leaky_gru[hidden_size=4]-check_spec",
        "leaky_gru[hidden_size=4]-check_body_contract",
    ]
    assert [m.kwargs.get("reason") for m in cases[1].marks] == ["documented limitation"]


def test_architecture_checks_default_to_the_spec_test_params():
    cases = list(testing.architecture_checks("lstm", checks=[check_spec]))
    assert [params for _, params, _ in cases] == [
        dict(p) for p in seqpipe.get_architecture("lstm").test_params
    ]


def test_sklearn_expected_failures_are_one_table():
    for cls, failures in testing.SKLEARN_EXPECTED_FAILED_CHECKS.items():
        # The table, plus the float64-tolerance checks the kit reruns at float32's.
        expected = {**failures, **testing.SKLEARN_FLOAT32_CHECKS}
        assert sklearn_expected_failed_checks(cls()) == expected
        assert all(reason for reason in expected.values())
    assert sklearn_expected_failed_checks(object()) == {}


def test_onnx_tolerance_is_relative_to_magnitude():
    testing._assert_close(np.array([1000.0]), np.array([1000.05]), 1e-4, "large")
    with pytest.raises(AssertionError, match="max abs difference"):
        testing._assert_close(np.array([0.5]), np.array([0.5002]), 1e-4, "small")


def test_kit_leaves_global_torch_state_alone():
    state = torch.random.get_rng_state()
    check_body_contract("gru", {"hidden_size": 4})
    assert torch.equal(state, torch.random.get_rng_state())

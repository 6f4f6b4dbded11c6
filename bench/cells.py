"""Training time per epoch: hand-written cells against ``nn.LSTM`` at the same size.

Target (BRIEF.md): every custom cell trains within 3x of ``nn.LSTM``.

Each model is the body plus a linear head on the summary; an epoch is forward,
MSE loss, backward and an Adam step over every batch. Models are timed
interleaved, round after round, and each keeps its fastest epoch, so load from
other processes hits all of them alike.

Rows: ``lstm relu`` is what ``LSTMRegressor(activation="relu")`` trains (Keras'
``LSTM(50, activation="relu")``); ``peephole_lstm``/``cifg_lstm`` use the default
tanh/sigmoid; ``nn.GRU`` and the bidirectional pair are for reference.

``--gru-sizes`` measures instead what sets
:data:`seqpipe.architectures.torch_rnn.GRU_TIME_LOOP_MAX_WIDTH`: forward + backward
of ``nn.GRU`` against the same weights run by seqpipe's hand-written recurrence
(:func:`seqpipe.architectures.cells.gru_time_loop`), and forward alone under
``inference_mode``, over a grid of batch x time x features x hidden sizes, one
thread, interleaved, best of ``--rounds``.

Run: ``python bench/cells.py [--threads 2] [--rounds 5] [--gru-sizes]``. With other processes
competing for the cores, 2-thread figures swing widely (OpenMP workers wait to be
scheduled at every small matmul, in ``nn.LSTM`` and here alike); compare with
``--threads 1`` when in doubt.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch import nn

from seqpipe.architectures.cells import CustomGRU, CustomLSTM, gru_time_loop
from seqpipe.architectures.spec import BodyConfig
from seqpipe.architectures.torch_rnn import GRU_TIME_LOOP_MAX_WIDTH, TorchRecurrentBody


class _Net(nn.Module):
    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body
        self.head = nn.Linear(body.output_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x)[1])


#: (name, the nn.LSTM it is compared with, builder(features, hidden))
MODELS = [
    ("nn.LSTM", "nn.LSTM", lambda f, h: TorchRecurrentBody("lstm", BodyConfig(f, h))),
    ("lstm relu", "nn.LSTM", lambda f, h: CustomLSTM(f, h, activation="relu")),
    ("peephole_lstm", "nn.LSTM", lambda f, h: CustomLSTM(f, h, peephole=True)),
    ("cifg_lstm", "nn.LSTM", lambda f, h: CustomLSTM(f, h, cifg=True)),
    ("gru relu", "nn.LSTM", lambda f, h: CustomGRU(f, h, activation="relu")),
    # seqpipe's `gru` body: nn.GRU, trained through the hand-written recurrence at
    # batch x hidden <= GRU_TIME_LOOP_MAX_WIDTH (see --gru-sizes)
    ("gru", "nn.LSTM", lambda f, h: TorchRecurrentBody("gru", BodyConfig(f, h))),
    (
        "nn.LSTM bi",
        "nn.LSTM bi",
        lambda f, h: TorchRecurrentBody("lstm", BodyConfig(f, h, bidirectional=True)),
    ),
    (
        "lstm relu bi",
        "nn.LSTM bi",
        lambda f, h: CustomLSTM(f, h, bidirectional=True, activation="relu"),
    ),
]


def _epoch(net: nn.Module, opt: torch.optim.Optimizer, X, y, batch: int) -> float:
    start = time.perf_counter()
    for i in range(0, X.shape[0], batch):
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.mse_loss(net(X[i : i + batch]), y[i : i + batch])
        loss.backward()
        opt.step()
    return time.perf_counter() - start


#: (batch, time, features, hidden) for --gru-sizes: the classifier's and the
#: regressor's default batches (8, 32) at short and long series, and wider batches.
GRU_SIZES = [
    (8, 1000, 1, 32),
    (8, 300, 1, 32),
    (8, 200, 8, 128),
    (32, 50, 4, 32),
    (32, 1000, 1, 32),
    (64, 100, 4, 64),
    (128, 50, 4, 32),
    (512, 20, 1, 16),
    (64, 200, 8, 128),
    (256, 32, 4, 64),
]


def _best_ms(run, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def gru_sizes(rounds: int) -> None:
    """nn.GRU against the hand-written recurrence on the same weights, per size."""
    torch.set_num_threads(1)
    print(
        f"nn.GRU vs gru_time_loop, ms, 1 thread, best of {rounds}, torch {torch.__version__}, "
        f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}; rule: time loop "
        f"when batch x hidden <= {GRU_TIME_LOOP_MAX_WIDTH}"
    )
    print(
        f"{'batch x T x F x H':>20} {'train nn.GRU':>13} {'time loop':>10} {'speed-up':>9} "
        f"{'infer nn.GRU':>13} {'time loop':>10}  rule picks"
    )
    for batch, steps, features, hidden in GRU_SIZES:
        torch.manual_seed(0)
        rnn = nn.GRU(features, hidden, batch_first=True)
        x = torch.randn(batch, steps, features)

        def torch_train(rnn=rnn, x=x):
            rnn(x)[0].sum().backward()

        def loop_train(rnn=rnn, x=x):
            gru_time_loop(rnn, x, None, True).sum().backward()

        train = [0.0, 0.0]
        infer = [0.0, 0.0]
        for _ in range(2):  # interleaved: load from other processes hits both alike
            train = [_best_ms(torch_train, rounds), _best_ms(loop_train, rounds)]
            with torch.inference_mode():
                infer = [
                    _best_ms(lambda rnn=rnn, x=x: rnn(x), rounds),
                    _best_ms(lambda rnn=rnn, x=x: gru_time_loop(rnn, x, None, False), rounds),
                ]
        picks = "time loop" if batch * hidden <= GRU_TIME_LOOP_MAX_WIDTH else "nn.GRU"
        print(
            f"{f'{batch} x {steps} x {features} x {hidden}':>20} {train[0]:13.1f} "
            f"{train[1]:10.1f} {train[0] / train[1]:8.2f}x {infer[0]:13.1f} {infer[1]:10.1f}  "
            f"{picks}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--features", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--gru-sizes", action="store_true", help="nn.GRU vs the hand-written GRU, per size"
    )
    args = parser.parse_args()
    if args.gru_sizes:
        gru_sizes(args.rounds)
        return

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    X = torch.randn(args.samples, args.steps, args.features)
    y = torch.randn(args.samples, 1)
    models = {}
    for name, _, build in MODELS:
        net = _Net(build(args.features, args.hidden))
        models[name] = (net, torch.optim.Adam(net.parameters(), lr=1e-3))
    best = dict.fromkeys(models, float("inf"))
    for round_ in range(args.rounds + 1):
        for name, (net, opt) in models.items():
            seconds = _epoch(net, opt, X, y, args.batch)
            if round_:  # round 0 warms up
                best[name] = min(best[name], seconds)

    print(
        f"training, {args.samples}x{args.steps}x{args.features}, hidden {args.hidden}, "
        f"batch {args.batch}, {args.threads} threads, best of {args.rounds} epochs "
        f"(torch {torch.__version__})"
    )
    print(f"{'model':<14} {'s/epoch':>8}  ratio")
    for name, base, _ in MODELS:
        ratio = best[name] / best[base]
        print(f"{name:<14} {best[name]:8.4f}  {ratio:5.2f} x {base}")


if __name__ == "__main__":
    main()

"""The ``seqpipe`` command: export fitted models, predict with and inspect ONNX files.

::

    seqpipe export MODEL.joblib OUT.onnx [--streaming] [--opset N] [--no-verify]
                   [--quantize int8 [--quantize-tolerance F] [--quantize-data X.npy]]
    seqpipe predict MODEL.onnx INPUT.(csv|npy) [-o OUT.(csv|npy)] [--proba]
    seqpipe info MODEL.onnx [--json]
    seqpipe plugins

``predict`` and ``info`` need only numpy and onnxruntime (the runtime-only
install); ``export`` and ``plugins`` need the full one (``seqpipe-ml[train]``) and
say so in one line where it is missing. ``plugins`` lists the installed
architecture plugins, what each provides and any that failed to load.

``export`` loads its input with joblib/pickle, which runs code stored in the file:
export only files from a source you trust. Input files:

* ``.npy``: a 3-D array ``(n_samples, n_timesteps, n_features)``, or 2-D
  ``(n_samples, n_timesteps)`` for a one-feature model; NaN-pad shorter sequences
  at the end;
* ``.csv``: one sequence per row, values step by step with the features of each
  step together (``x[t0,f0], x[t0,f1], ..., x[t1,f0], ...``), so a row holds
  ``n_timesteps * n_features`` numbers; shorter sequences leave trailing cells empty
  (or ``nan``). A first row that is not numeric is taken as a header and skipped.

CSV files are read as UTF-8 (a byte-order mark, as spreadsheets write, is skipped).

Output: ``.npy`` keeps the shape; ``.csv`` (and the default, stdout) writes one row
per sequence, per-step outputs flattened the same way as the input. String labels
go to ``.npy`` as a fixed-width unicode array (no pickle).

Errors (bad files, unwritable or full disks, a missing part of the install) print
one line ``seqpipe: error: ...`` to stderr and exit with status 1 (2 for usage);
never a traceback. ``info`` escapes non-printable characters (terminal escape
sequences in a crafted file's metadata are shown, not obeyed), and so does the
error line.

Subcommands are registered in :data:`COMMANDS`; adding one is adding a function
and a parser there.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import errno
import io
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seqpipe._install import missing_module_hint
from seqpipe._version import __version__


class CommandError(Exception):
    """A problem with the user's files or arguments, reported without a traceback."""


#: Said wherever a pickle is loaded: unpickling runs code the file's author chose.
TRUST_WARNING = (
    "The model file is loaded with joblib/pickle, which runs code stored in it: "
    "export only files from a source you trust"
)


def _cannot(action: str, path: str | os.PathLike, exc: OSError) -> CommandError:
    """``cannot write out.csv: folder out does not exist`` for an OSError on ``path``."""
    if exc.errno is None and str(exc):
        return CommandError(str(exc))  # seqpipe's own message, naming path and problem
    if isinstance(exc, FileNotFoundError) and action == "write":
        reason = f"folder {Path(path).parent} does not exist"
    elif isinstance(exc, IsADirectoryError):
        reason = "it is a folder; give a file name"
    else:  # permissions, a read-only file system, a full disk: the system's words
        reason = exc.strerror or os.strerror(exc.errno or errno.EIO)
    return CommandError(f"cannot {action} {path}: {reason}")


# --- export ------------------------------------------------------------------------
def _add_export(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="write a fitted model (joblib/pickle) as an ONNX file",
        description="Write a fitted model or pipeline as one verified ONNX file. "
        + TRUST_WARNING
        + ".",
    )
    p.add_argument(
        "model",
        help="fitted estimator or pipeline saved with joblib.dump or pickle "
        "(from a trusted source: loading it runs code)",
    )
    p.add_argument("output", help="ONNX file to write (replaced atomically)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18)")
    p.add_argument(
        "--streaming",
        action="store_true",
        help="add recurrent state inputs/outputs (needs a model fitted with local_scaling=None; "
        "LSTMClassifier's default scales each whole window)",
    )
    p.add_argument("--no-verify", action="store_true", help="skip the onnxruntime parity check")
    p.add_argument(
        "--quantize",
        choices=["int8"],
        default=None,
        help="write an int8 graph (onnxruntime dynamic quantization), its error measured "
        "against the float32 graph and held to --quantize-tolerance",
    )
    p.add_argument(
        "--quantize-tolerance",
        type=float,
        default=0.05,
        metavar="F",
        help="int8 error budget: largest RMS difference as a fraction of the float32 "
        "output's standard deviation (default 0.05)",
    )
    p.add_argument(
        "--quantize-data",
        default=None,
        metavar="X",
        help="sequences (.npy or .csv, as for predict) to measure the int8 error on "
        "(default: inputs drawn around the training data)",
    )


def _cmd_export(args: argparse.Namespace) -> int:
    from seqpipe.onnx import export

    model = _load_pickle(Path(args.model))
    data = None
    if args.quantize_data is not None:
        if args.quantize is None:
            raise CommandError("--quantize-data is only used with --quantize int8")
        n_features = getattr(model, "n_features_in_", None)
        if not isinstance(n_features, int):
            raise CommandError(f"{args.model} does not hold a fitted model (no n_features_in_)")
        data = read_input(Path(args.quantize_data), n_features)
    try:
        path = export(
            model,
            args.output,
            opset=args.opset,
            streaming=args.streaming,
            verify=not args.no_verify,
            quantize=args.quantize,
            quantize_tolerance=args.quantize_tolerance,
            quantize_data=data,
        )
    except (TypeError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise _cannot("write", args.output, exc) from None
    print(f"wrote {path}")
    return 0


def _load_pickle(path: Path) -> Any:
    if not path.is_file():
        raise CommandError(f"no such file: {path}")
    try:  # runs code from the file by design: TRUST_WARNING, in --help and the README
        import joblib

        return joblib.load(path)
    except ImportError:
        import pickle

        with path.open("rb") as handle:
            return pickle.load(handle)
    except OSError as exc:
        raise _cannot("read", path, exc) from None
    except Exception as exc:
        raise CommandError(f"{path} is not a joblib/pickle file of a fitted model: {exc}") from None


# --- predict -----------------------------------------------------------------------
def _add_predict(sub: Any) -> None:
    p = sub.add_parser("predict", help="predict with an exported model on a .csv or .npy file")
    p.add_argument("model", help="ONNX file written by seqpipe")
    p.add_argument("input", help=".npy (2-D/3-D) or .csv (one sequence per row)")
    p.add_argument("-o", "--output", help="write to this .csv or .npy instead of stdout")
    p.add_argument("--proba", action="store_true", help="class probabilities (classifiers)")
    p.add_argument("--providers", default=None, help="'cpu' (default) or 'cuda'")


def _cmd_predict(args: argparse.Namespace) -> int:
    model = _load_model(args.model, args.providers)
    X = read_input(Path(args.input), model.n_features_in_)
    try:
        if args.proba:
            result = model.predict_proba(X)
        elif model.task == "transform":
            result = model.transform(X)
        else:
            result = model.predict(X)
    except (AttributeError, TypeError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    write_output(result, args.output)
    return 0


def read_input(path: Path, n_features: int) -> np.ndarray:
    """Read a ``.npy`` or ``.csv`` input file (layouts in the module docstring)."""
    if not path.is_file():
        raise CommandError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise CommandError(f"{path} is not a numeric .npy file: {exc}") from None
        except OSError as exc:
            raise _cannot("read", path, exc) from None
    if suffix != ".csv":
        raise CommandError(f"input must be a .csv or .npy file, got {path.name!r}")
    rows = _read_csv_rows(path)
    width = max(len(r) for r in rows)
    if width % n_features:
        raise CommandError(
            f"{path}: the longest row has {width} values, not a multiple of the model's "
            f"{n_features} features per time step"
        )
    X = np.full((len(rows), width), np.nan)
    for i, row in enumerate(rows):
        X[i, : len(row)] = row
    return X.reshape(len(rows), width // n_features, n_features)


def _read_csv_rows(path: Path) -> list[list[float]]:
    try:
        return _parse_csv_rows(path)
    except UnicodeDecodeError:
        raise CommandError(_not_utf8(path)) from None
    except OSError as exc:
        raise _cannot("read", path, exc) from None


def _not_utf8(path: Path) -> str:
    """Where ``path`` stops being UTF-8 (the reader's error counts from its buffer)."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        byte = raw[exc.start : exc.start + 1].hex()
        return f"{path}, line {line}: not UTF-8 text (byte 0x{byte}); save the file as UTF-8"
    return f"{path} is not UTF-8 text; save the file as UTF-8"


def _parse_csv_rows(path: Path) -> list[list[float]]:
    rows: list[list[float]] = []
    # utf-8-sig: spreadsheets start UTF-8 CSV with a byte-order mark, which would make
    # the first row non-numeric and drop it silently as a "header".
    with path.open(newline="", encoding="utf-8-sig") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            cells = [c.strip() for c in row]
            while cells and cells[-1] == "":
                cells.pop()
            if not cells:
                continue
            try:
                rows.append([float(c) if c else float("nan") for c in cells])
            except ValueError:
                if number == 1 and not rows:
                    continue  # a header
                raise CommandError(f"{path}, line {number}: non-numeric value in {row}") from None
    if not rows:
        raise CommandError(f"{path} holds no data rows")
    return rows


def write_output(result: np.ndarray, output: str | None) -> None:
    """Write ``result`` to ``output`` (.npy or .csv) or as CSV to stdout."""
    if output is not None and output.lower().endswith(".npy"):
        array = _without_objects(result, output)
        # An open file, not the name: np.save would append ".npy" to a name.
        _write_file(output, "wb", lambda handle: np.save(handle, array, allow_pickle=False))
        return
    if output is not None and not output.lower().endswith(".csv"):
        raise CommandError(f"output must be a .csv or .npy file, got {output!r}")
    flat = result.reshape(len(result), -1) if result.ndim > 1 else result[:, None]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in flat:
        writer.writerow([v if isinstance(v, str) else repr(v.item()) for v in row])
    if output is None:
        sys.stdout.write(buffer.getvalue())
    else:
        _write_file(output, "w", lambda handle: handle.write(buffer.getvalue()))


def _write_file(output: str, mode: str, write: Callable[[Any], object]) -> None:
    """Open ``output`` and ``write`` to it; any OSError becomes one clear line.

    A write that fails after the file was opened (a full disk) removes the file:
    a truncated result must not pass for a result. A file that could not be opened
    (read-only, no permission) is left alone.
    """
    try:
        handle = open(output, mode, **({} if "b" in mode else {"encoding": "utf-8"}))
    except OSError as exc:
        raise _cannot("write", output, exc) from None
    try:
        with handle:
            write(handle)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(output)
        raise _cannot("write", output, exc) from None


def _without_objects(result: np.ndarray, output: str) -> np.ndarray:
    """``result`` without object dtype, which ``.npy`` can hold only as a pickle.

    Labels come back as objects when the classifier was fitted on an object array
    (pandas strings); string labels become a fixed-width unicode array.
    """
    if result.dtype != object:
        return result
    if all(isinstance(v, str) for v in result.flat):
        return result.astype(str)
    kinds = sorted({type(v).__name__ for v in result.flat})
    raise CommandError(
        f"cannot write {output}: the labels are Python objects ({', '.join(kinds)}), "
        "which .npy holds only as a pickle; write a .csv instead"
    )


# --- info --------------------------------------------------------------------------
def _add_info(sub: Any) -> None:
    p = sub.add_parser("info", help="show what an exported model expects and contains")
    p.add_argument("model", help="ONNX file written by seqpipe")
    p.add_argument("--json", action="store_true", help="print the raw metadata as JSON")


def _cmd_info(args: argparse.Namespace) -> int:
    from seqpipe import _format as fmt

    model = _load_model(args.model, None)
    meta = model.metadata
    if args.json:
        print(json.dumps(meta, indent=2, sort_keys=True))
        return 0
    network = json.loads(meta.get(fmt.KEY_NETWORK, "{}"))
    lines = [
        f"file:          {args.model}",
        f"model:         {meta.get(fmt.KEY_MODEL)} (seqpipe {meta.get(fmt.KEY_VERSION)})",
        f"task:          {model.task} ({model.output_kind})",
        f"architecture:  {model.architecture} "
        + ", ".join(f"{k}={v}" for k, v in network.items() if k != "architecture"),
        "inputs:",
    ]
    for item in json.loads(meta.get(fmt.KEY_INPUTS, "[]")):
        lines.append(
            f"  {item['name']}: {item['dtype']} {_shape(item['shape'])}  {item['meaning']}"
        )
    lines.append("outputs:")
    for item in json.loads(meta.get(fmt.KEY_OUTPUTS, "[]")):
        lines.append(
            f"  {item['name']}: {item['dtype']} {_shape(item['shape'])}  {item['meaning']}"
        )
    if model.classes_ is not None:
        lines.append(f"classes:       {model.classes_.tolist()}")
    lines.append(f"streaming:     {'yes' if model.streaming else 'no'}")
    unsupported = json.loads(meta.get(fmt.KEY_CUDA_UNSUPPORTED, "[]"))
    lines.append(
        "cuda:          " + ("refused: " + ", ".join(unsupported) if unsupported else "ok")
    )
    verified = meta.get(fmt.KEY_VERIFIED)
    if verified:
        v = json.loads(verified)
        graph = "float32 graph: " if model.quantization is not None else ""
        lines.append(
            f"verified:      {graph}max abs diff {v['max_abs_diff']:.3g} at batch sizes "
            f"{v['batch_sizes']}, lengths {v['lengths']}, ragged (rtol {v['rtol']:g})"
        )
    else:
        lines.append("verified:      no")
    if model.quantization is not None:
        lines.extend(_quantization_lines(model.quantization))
    print("\n".join(printable(line) for line in lines))
    return 0


def _quantization_lines(q: dict[str, Any]) -> list[str]:
    """``seqpipe info``'s lines for an int8 file: how, and the error measured at export."""
    nodes = q.get("nodes")
    kinds = ""
    if isinstance(nodes, dict) and nodes:
        kinds = " (" + ", ".join(f"{op} x{n}" for op, n in nodes.items()) + ")"
    where = "given" if q.get("data") == "given" else "drawn"
    lines = [
        f"quantized:     {q['dtype']}{kinds}",
        f"int8 error:    RMS {q['error']:.2%} of the float32 output's std (budget "
        f"{q['tolerance']:.2%}), largest difference {q['max_abs_diff']:.3g}, on "
        f"{q['sequences']} {where} sequences",
    ]
    if q.get("class_agreement") is not None:
        lines.append(f"int8 classes:  {q['class_agreement']:.2%} agree with float32")
    return lines


def printable(text: str) -> str:
    r"""``text`` with every non-printable character escaped as in ``repr``.

    A file's metadata is text its author chose: an ANSI escape sequence in it would
    otherwise be obeyed by the terminal (rewrite the screen, set its title, ...).

    Examples
    --------
    >>> print(printable("model \x1b[2J\tok é"))
    model \x1b[2J\tok é
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _shape(shape: Sequence[Any]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _load_model(path: str, providers: str | None) -> Any:
    from seqpipe import runtime

    try:
        return runtime.load(path, providers)
    except (FileNotFoundError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise _cannot("read", path, exc) from None


# --- plugins -----------------------------------------------------------------------
def _add_plugins(sub: Any) -> None:
    sub.add_parser("plugins", help="list installed architecture plugins and what each provides")


def _cmd_plugins(args: argparse.Namespace) -> int:
    # Imported here: it pulls in torch, which predict and info never need.
    from seqpipe.plugin_report import format_plugin_report

    print(format_plugin_report())
    return 0


# --- entry point -------------------------------------------------------------------
#: name -> (add the subparser, run it)
COMMANDS: dict[str, tuple[Callable[[Any], None], Callable[[argparse.Namespace], int]]] = {
    "export": (_add_export, _cmd_export),
    "predict": (_add_predict, _cmd_predict),
    "info": (_add_info, _cmd_info),
    "plugins": (_add_plugins, _cmd_plugins),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqpipe",
        description="seqpipe: export and serve sequence models as ONNX, list plugins",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 error, 2 usage)."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command][1](args)
    except CommandError as exc:
        message = str(exc)
    except ModuleNotFoundError as exc:
        hint = missing_module_hint(exc)
        if hint is None:
            raise  # not the runtime-only install: a real bug, keep its traceback
        message = f"'seqpipe {args.command}' {hint}"
    except OSError as exc:
        # Files and disks the paths above did not foresee: still the user's
        # environment, so one line, not a traceback.
        message = str(exc) or type(exc).__name__
    except KeyboardInterrupt:
        return 130  # Ctrl-C: the shell's convention, 128 + SIGINT
    print(f"seqpipe: error: {printable(message)}", file=sys.stderr)
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

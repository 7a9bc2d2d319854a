"""Every lens of the book on your own trained classifier: `genlens.measure(model, data)` and `genlens measure`.

>>> import genlens                                                     # doctest: +SKIP
>>> result = genlens.measure(net, "mnist5k", lenses=["accuracy", "pgd"])  # doctest: +SKIP
>>> print(result)                                                      # doctest: +SKIP

`genlens.measure` is this module, and calling it calls `measure`. The measures, their units and their
chapters are `genlens.zoo.measures.DESCRIPTIONS`. A model's own input normalization goes *inside* the
measured model (``normalize=(mean, std)``: `core.models.with_normalization`), so that attacks and
Fourier splits work on [0, 1] pixels.

The command loads weights without running pickled code (``torch.load(..., weights_only=True)`` or a
``.safetensors`` file), checks everything it is given before it measures anything, and answers bad input
with one line on stderr and exit code 2:

    genlens measure ARCH [-a NAME=VALUE ...] --weights FILE --data NAME [--normalize MEAN,STD] [--lens L ...] [--out PREFIX]
                    [--zoo CSV] [--device D] [--seed S] [--smoke]
"""
from __future__ import annotations

import argparse
import csv
import io
import math
import sys
import types
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .core.data import ImageData
    from .zoo.measures import MeasureSettings, Measurement

__all__ = ["MeasureResult", "measure", "load_data", "load_weights", "build_model", "main"]


class MeasureError(ValueError):
    """Bad input to `genlens measure`; its message is one line."""


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def load_data(spec: str, device: Any = "cpu") -> "ImageData":
    """A data set by name for `genlens.core.data.load`; a suffix ``@poolK`` average-pools its images by K, as the
    zoo's models saw them (``mnist5k@pool2``: 14x14 digits). DatasetError (one line) for an unknown name or K."""
    from .core.data import DatasetError, avg_pool, load

    name, sep, pool = spec.partition("@pool")
    if not sep:
        return load(spec, device=device)
    if not pool.isdigit() or int(pool) < 1:
        raise DatasetError(f"data {spec!r}: the pooling factor after @pool must be an integer >= 1")
    return avg_pool(load(name, device=device), int(pool))


# ----------------------------------------------------------------------------- the result

def _finite_or_none(value: Any) -> Any:
    """NaN and infinities as None (JSON has no NaN), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value


def _fmt(value: float) -> str:
    return "nan" if not math.isfinite(value) else f"{value:.4g}"


@dataclass(frozen=True)
class MeasureResult:
    """The measurements of one model, its row (name -> value, name_seconds -> seconds) and, where a zoo table
    was given, where it stands among the zoo's models (`zoo.measures.place`). Prints as a table."""

    model: str  # what was measured (an architecture name or the model's class)
    data: str  # the data set's name
    measurements: tuple[Measurement, ...]
    row: Mapping[str, float]
    zoo: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    zoo_csv: str = ""  # the zoo table, if any

    def table(self) -> str:
        """A summary (measure, value, seconds, zoo percentile and median where a zoo was given, note), then one
        table per lens that measures per layer."""
        head = ["measure", "value", "seconds"] + (["zoo percentile", "zoo median"] if self.zoo else []) + ["note"]
        rows = []
        for m in self.measurements:
            place = self.zoo.get(m.name)
            zoo = ([f"{100 * place['percentile']:.0f}% of {place['n']}" if math.isfinite(place["percentile"])
                    else "-", _fmt(place["median"])] if place else ["-", "-"]) if self.zoo else []
            rows.append([m.name, _fmt(m.value), f"{m.seconds:.2f}"] + zoo + [m.note])
        title = f"{self.model} on {self.data}" + (f" (zoo: {self.zoo_csv})" if self.zoo else "")
        parts = [title, _text_table(head, rows)]
        for m in self.measurements:
            if m.per_layer:
                parts += ["", f"{m.name} per layer", _text_table(["layer", m.name], [[k, _fmt(v)] for k, v in m.per_layer])]
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.table()

    def to_json(self) -> dict:
        """A JSON-ready dict (NaN as null)."""
        return _finite_or_none({"model": self.model, "data": self.data,
                                "measurements": [asdict(m) for m in self.measurements],
                                "row": dict(self.row), "zoo": {k: dict(v) for k, v in self.zoo.items()},
                                "zoo_csv": self.zoo_csv})

    def to_csv(self) -> str:
        """The row as a one-row CSV with a leading `model` column (the columns of the zoo's table)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["model", *self.row])
        writer.writerow([self.model, *(repr(float(v)) for v in self.row.values())])
        return buffer.getvalue()


def _text_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)])


# ----------------------------------------------------------------------------- the function

def _normalized(model: nn.Module, normalize: tuple[Sequence[float], Sequence[float]] | None, channels: int,
                data_name: str) -> nn.Module:
    if normalize is None:
        return model
    from .core.models import with_normalization
    from .core.nn import model_device

    try:
        mean, std = ([float(v) for v in (part if isinstance(part, (list, tuple)) else [part])] for part in normalize)
    except (TypeError, ValueError):
        raise MeasureError(f"normalize must be (mean, std) with one number per channel each, got {normalize!r}") from None
    if len(mean) != channels or len(std) != channels:
        raise MeasureError(f"normalize needs one mean and one std per channel: data {data_name} has {channels} "
                           f"channel(s), got {len(mean)} mean(s) and {len(std)} std(s)")
    if any(s <= 0 for s in std):
        raise MeasureError(f"normalize: every std must be > 0, got {std}")
    device = model_device(model)
    return with_normalization(model, mean, std).to(device) if device is not None else with_normalization(model, mean, std)


def measure(model: nn.Module, data: ImageData | str, lenses: Sequence[str] | None = None, *,
            normalize: tuple[Sequence[float], Sequence[float]] | None = None, init: nn.Module | None = None,
            settings: MeasureSettings | None = None, seed: int = 0, progress: bool = True,
            zoo: str | Path | None = None, name: str | None = None) -> MeasureResult:
    """Every requested lens (default: all) on a trained classifier: a `MeasureResult`.

    model: inputs (N, C, H, W) in [0, 1] unless `normalize` = (mean, std), one value per channel each, which
    puts the model's normalization inside the measured model; data: an ImageData or a name for
    `genlens.core.data.load` (loaded onto the model's device); init: the model at initialization
    (``dist_init``; normalized the same way); settings: `zoo.measures.MeasureSettings` (default: the settings
    the zoo was measured with, `zoo_settings`, so that the placement compares like with like);
    zoo: a zoo table (``book/results/<profile>/zoo.csv``) to place the model in; name: what to call the model
    (default: its class). Bad input: one-line ValueError before any measuring work.
    """
    from .core.data import ImageData
    from .core.nn import check_model, model_device
    from .zoo import measures

    check_model(model)
    if isinstance(data, str):
        data = load_data(data, device=model_device(model) or "cpu")
    if not isinstance(data, ImageData):
        raise TypeError(f"data must be an ImageData or a data set name, got {type(data).__name__}")
    settings = zoo_settings(zoo) if settings is None else settings
    name = name or type(model).__name__
    measured = _normalized(model, normalize, data.in_channels, data.name)
    init = _normalized(init, normalize, data.in_channels, data.name) if init is not None else None
    measures.check(measured, data, lenses=lenses, init=init)
    if zoo is not None:
        measures.read_zoo(zoo)  # a missing or unreadable table fails before the work
    found = measures.measure(measured, data, lenses=lenses, init=init, settings=settings, seed=seed, progress=progress)
    row = measures.as_row(found)
    placed = measures.place(row, zoo) if zoo is not None else {}
    return MeasureResult(name, data.name, tuple(found), row, placed, str(zoo) if zoo is not None else "")


# ----------------------------------------------------------------------------- weights and architectures

def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict from `path`: ``.safetensors`` (no pickle at all) or a ``torch.save`` file read with
    ``weights_only=True``. MeasureError (one line) for a missing, unreadable or non-state_dict file."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise MeasureError(f"weights file {path} not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state: Any = load_file(str(path), device="cpu")
        except Exception as err:
            raise MeasureError(f"{path} is not a readable .safetensors file ({_first_line(err)})") from None
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            if "Unsupported global" in str(err):  # pickled classes: weights_only refuses to run them
                raise MeasureError(f"{path} is not a weights-only state_dict (a pickled object?); save "
                                   f"model.state_dict()") from None
            raise MeasureError(f"{path} cannot be read by torch.load(weights_only=True) (not a torch.save file? "
                               f"{type(err).__name__})") from None
    if not isinstance(state, Mapping) or not state:
        raise MeasureError(f"{path} holds {type(state).__name__ if state is not None else 'nothing'}, not a "
                           f"state_dict; save model.state_dict()")
    bad = next((k for k, v in state.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))), None)
    if bad is not None:
        raise MeasureError(f"{path} is not a state_dict: its entry {bad!r} is not a tensor; save model.state_dict()")
    return dict(state)


def build_model(arch: str, image_shape: Sequence[int], num_classes: int, **kwargs: Any) -> nn.Module:
    """A genlens model (`core.models.MODELS`, via `build_for`) or, for any other name or ``torchvision:NAME``,
    a torchvision classification model (`torchvision.models.get_model(NAME, num_classes=K, weights=None)`);
    `kwargs` go to the constructor (e.g. width=8)."""
    from .core import models

    if not arch.startswith("torchvision:") and arch.lower() in models.MODELS:
        try:
            return models.build_for(arch, image_shape, num_classes, **kwargs)
        except (TypeError, ValueError) as err:
            raise MeasureError(f"cannot build {arch} for images {_shape(image_shape)}: {_first_line(err)}") from None
    import torchvision

    name = arch.removeprefix("torchvision:")
    known = torchvision.models.list_models(module=torchvision.models)
    if name not in known:
        raise MeasureError(f"unknown architecture {arch!r}: not a genlens model ({', '.join(sorted(models.MODELS))}) "
                           f"nor a torchvision classification model (torchvision.models.list_models())")
    try:
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)
    except (TypeError, ValueError) as err:
        raise MeasureError(f"cannot build torchvision {name} with {num_classes} classes: {_first_line(err)}") from None


def _shape(t: Sequence[int]) -> str:
    return "(" + ", ".join(map(str, t)) + ")"


def fit_weights(model: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """Load `state` into `model`, or MeasureError naming the first missing or unexpected key or shape mismatch."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing:
        raise MeasureError(f"weights do not fit {what}: missing key {missing[0]!r} ({len(missing)} missing)")
    if unexpected:
        raise MeasureError(f"weights do not fit {what}: unexpected key {unexpected[0]!r} ({len(unexpected)} unexpected)")
    for k, t in own.items():
        if tuple(t.shape) != tuple(state[k].shape):
            raise MeasureError(f"weights do not fit {what}: {k!r} has shape {_shape(state[k].shape)} in the file but "
                               f"{_shape(t.shape)} in the model")
    model.load_state_dict(state)


# ----------------------------------------------------------------------------- the command

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit code 2
        raise MeasureError(message)


def _parser() -> argparse.ArgumentParser:
    from .zoo.measures import LENSES

    p = _Parser(prog="genlens measure", description="Measure one trained classifier with every lens of the book.")
    p.add_argument("arch", metavar="ARCH", help="a genlens model name (resnet20, cnn, mnist_cnn, ...) or a torchvision "
                   "classification model name (torchvision:NAME where genlens has the same name)")
    p.add_argument("-a", "--arch-arg", action="append", default=[], metavar="NAME=VALUE", help="an argument of the "
                   "architecture's constructor, e.g. -a width=8 (a Python literal, else a string; repeatable)")
    p.add_argument("--weights", required=True, metavar="FILE", help="state_dict: a torch.save file (read with "
                   "weights_only=True) or a .safetensors file")
    p.add_argument("--data", required=True, metavar="NAME", help="data set (genlens.core.data.load): mnist5k, "
                   "cifar10, imagefolder:<dir-or-zip>, ...; NAME@poolK average-pools the images by K (the zoo's "
                   "models: mnist5k@pool2)")
    p.add_argument("--normalize", metavar="MEAN,STD", help="the model's input normalization, one mean then one std "
                   "per channel, e.g. 0.5,0.5 or 0.49,0.48,0.45,0.25,0.24,0.26; it goes inside the measured model")
    p.add_argument("--lens", nargs="+", action="extend", metavar="L", help=f"lenses to run (default: all): {', '.join(LENSES)}")
    p.add_argument("--out", metavar="PREFIX", help="write PREFIX.json and PREFIX.csv")
    p.add_argument("--zoo", metavar="CSV", help="a zoo table to place the model in (default: "
                   "book/results/quick/zoo.csv of the checkout, where it exists)")
    p.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda, cuda:N, mps")
    p.add_argument("--seed", type=int, default=0, help="the subsets, directions, probes and attack starts")
    p.add_argument("--smoke", action="store_true", help="every lens tiny (MeasureSettings.smoke()): the code path only")
    return p


def _parse_normalize(text: str | None) -> tuple[list[float], list[float]] | None:
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise MeasureError(f"--normalize must be comma-separated numbers (MEAN then STD per channel), got {text!r}") from None
    if len(values) % 2:
        raise MeasureError(f"--normalize needs one mean and one std per channel (an even count), got {len(values)} "
                           f"value(s)")
    half = len(values) // 2
    return values[:half], values[half:]


def _parse_arch_args(pairs: Sequence[str]) -> dict[str, Any]:
    import ast

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.isidentifier():
            raise MeasureError(f"--arch-arg must be NAME=VALUE, got {pair!r}")
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[key] = text
    return out


def _default_zoo() -> Path | None:
    from .book import runner

    try:
        path = runner.repo_root() / "book" / "results" / "quick" / "zoo.csv"
    except runner.RunError:
        return None
    return path if path.is_file() else None


def zoo_settings(zoo: str | Path | None) -> "MeasureSettings":
    """The lens settings a zoo table was measured with (its profile: the folder of book/results/<profile>/zoo.csv),
    so that a model placed among the zoo's is measured the same way; MeasureSettings() without a known zoo."""
    from .book.settings_zoo import PROFILES
    from .zoo.measures import MeasureSettings

    profile = Path(zoo).parent.name if zoo is not None else ""
    return PROFILES[profile].measures if profile in PROFILES else MeasureSettings()


def _prepare(args: argparse.Namespace) -> dict:
    """Everything the command needs, checked; nothing measured yet."""
    from .core.data import DatasetError
    from .core.device import pick_device
    from .zoo import measures

    normalize = _parse_normalize(args.normalize)
    arch_args = _parse_arch_args(args.arch_arg)
    unknown = [name for name in args.lens or [] if name not in measures.LENSES]
    if unknown:
        raise MeasureError(f"unknown lens {', '.join(map(repr, unknown))}; known: {', '.join(measures.LENSES)}")
    try:
        device = pick_device(args.device)
    except ValueError as err:
        raise MeasureError(_first_line(err)) from None
    zoo = Path(args.zoo) if args.zoo is not None else _default_zoo()
    if zoo is not None:
        try:
            measures.read_zoo(zoo)
        except (OSError, ValueError, csv.Error) as err:
            raise MeasureError(_first_line(err)) from None
    state = load_weights(args.weights)
    try:
        data = load_data(args.data, device=device)
    except DatasetError as err:
        raise MeasureError(_first_line(err)) from None
    model = build_model(args.arch, data.image_shape, data.num_classes, **arch_args)
    fit_weights(model, state, f"{args.arch} built for {args.data} (images {_shape(data.image_shape)}, "
                f"{data.num_classes} classes)")
    model = _normalized(model.to(device).eval(), normalize, data.in_channels, args.data)
    try:
        measures.check(model, data, lenses=args.lens)
    except ValueError as err:
        raise MeasureError(_first_line(err)) from None
    settings = zoo_settings(zoo)
    return {"model": model, "data": data, "zoo": zoo, "settings": settings.smoke() if args.smoke else settings,
            "device": device}


def _write(prefix: str, result: MeasureResult, meta: Mapping[str, Any]) -> list[Path]:
    from .core.cache import atomic_write_bytes, atomic_write_json

    json_path, csv_path = Path(prefix + ".json"), Path(prefix + ".csv")
    atomic_write_json(json_path, {**_finite_or_none(dict(meta)), **result.to_json()})
    atomic_write_bytes(csv_path, result.to_csv().encode())
    return [json_path, csv_path]


def main(argv: Sequence[str] | None = None) -> int:
    """`genlens measure ...`: 0 on success, 2 on bad input (one line on stderr, nothing written)."""
    try:
        args = _parser().parse_args(argv)
        plan = _prepare(args)
    except MeasureError as err:
        print(f"genlens measure: error: {err}", file=sys.stderr)
        return 2
    except SystemExit as stop:  # --help
        return int(stop.code or 0)
    result = measure(plan["model"], plan["data"], args.lens, settings=plan["settings"], seed=args.seed,
                     progress=True, zoo=plan["zoo"], name=" ".join([args.arch, *args.arch_arg]))
    print(result.table())
    if args.out:
        meta = {"arch": args.arch, "arch_args": _parse_arch_args(args.arch_arg), "weights": str(args.weights), "normalize": args.normalize, "seed": args.seed,
                "device": str(plan["device"]), "settings": asdict(plan["settings"])}
        for path in _write(args.out, result, meta):
            print(f"genlens measure: wrote {path}")
    return 0


class _CallableModule(types.ModuleType):
    """`genlens.measure` is this module; calling it calls `measure`."""

    def __call__(self, *args: Any, **kwargs: Any) -> MeasureResult:
        return measure(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

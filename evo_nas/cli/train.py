"""``evo-nas train`` (train one cell on PTB) and ``evo-nas data fetch`` (install a corpus)."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from evo_nas.config.yaml_input import read_scalar
from evo_nas.rundir.progress import Progress
from evo_nas_common.data_files import DataError
from evo_nas_common.registry import UnknownNameError
from ground_truths.digits_data import fetch_mnist
from ground_truths.ptb_corpus import fetch_ptb
from ground_truths.ptb_trainer import PRESETS, PTBTrainer, TrainConfig
from search_spaces import GenotypeError, SearchSpace, get_space

#: dataset name -> its verified fetch (source, dest)
_FETCHERS = {"ptb": fetch_ptb, "mnist": fetch_mnist}
#: what ``--set`` may set: the training's fields, and the trainer's time limit
_TRAINER_OPTIONS = {f.name for f in dataclasses.fields(TrainConfig)} | {"time_limit_s"}


def _parse_sets(items: tuple[str, ...]) -> dict[str, Any]:
    """``key=value`` pairs; values are read as YAML scalars (``1e-3``, ``true``, ``null``)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.BadParameter(f"'{item}' is not key=value", param_hint="--set")
        if key not in _TRAINER_OPTIONS:
            known = ", ".join(sorted(_TRAINER_OPTIONS))
            raise click.BadParameter(f"unknown option '{key}' (known: {known})", param_hint="--set")
        out[key] = read_scalar(value)
    return out


def _plot(curve: list[dict[str, Any]], batch_ppl: list[float], path: Path, title: str) -> None:
    """Training perplexity per batch (when trained here) and validation perplexity per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    per_epoch = len(batch_ppl) / max(len(curve), 1)
    if batch_ppl:
        xs = [(i + 1) / per_epoch for i in range(len(batch_ppl))]
        ax.plot(xs, batch_ppl, lw=0.8, alpha=0.7, label="train (batch)")
    epochs = [row["epoch"] for row in curve]
    ax.plot(epochs, [row["train_ppl"] for row in curve], "s--", label="train (epoch mean)")
    ax.plot(epochs, [row["val_ppl"] for row in curve], "o-", label="validation")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("perplexity")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@click.command("train")
@click.option("--space", "space_name", default="darts_rnn", show_default=True)
@click.option("--genotype", required=True, help="A genotype the space accepts, or a built-in name.")
@click.option("--preset", type=click.Choice(list(PRESETS)), default="cpu", show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=None)
@click.option(
    "--set", "sets", multiple=True, metavar="KEY=VALUE", help="A training option (TrainConfig)."
)
@click.option("--data", type=click.Path(path_type=Path), default=None, help="PTB folder.")
@click.option("--device", default="auto", show_default=True)
@click.option("--test/--no-test", default=True, show_default=True, help="Report test perplexity.")
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("runs/train"), show_default=True
)
def train(
    space_name: str,
    genotype: str,
    preset: str,
    epochs: int | None,
    sets: tuple[str, ...],
    data: Path | None,
    device: str,
    test: bool,
    out: Path,
) -> None:
    """Train one cell's language model on Penn Treebank and report its perplexities.

    Writes OUT/curve.json (learning curve and final perplexities) and OUT/curve.png. The
    training checkpoints every epoch under OUT/cache, so rerunning resumes it; a finished
    configuration is answered from the cache.
    """
    try:
        space = get_space(space_name)
        g = space.validate(genotype)
    except (UnknownNameError, GenotypeError, ValueError) as e:
        raise click.UsageError(str(e)) from None
    trainer = _trainer(space, preset, epochs, sets, data, device, test, out)
    cfg = trainer.config
    click.echo(
        f"{space.describe(g)} | preset {preset} | nhid {cfg.nhid} | epochs {cfg.epochs} "
        f"| device {trainer.device}"
    )
    batch_ppl: list[float] = []
    bar = Progress("training", unit="batch")
    trainer.progress = _show_progress(bar, cfg.epochs, batch_ppl)
    try:
        result = trainer.evaluate_one(g)
    finally:
        bar.close()
    metrics = result.metrics
    report = {
        "space": space_name,
        "genotype": space.to_json(g),
        "preset": preset,
        "config": dataclasses.asdict(cfg),
        "status": result.status,
        "message": result.message,
        "val_ppl": result.objective if math.isfinite(result.objective) else None,
        "test_ppl": metrics.get("test_ppl"),
        "train_s": result.cost_s,
        "params": metrics.get("params"),
        "curve": metrics.get("curve", []),
    }
    (out / "curve.json").write_text(json.dumps(report, indent=2))
    if report["curve"]:
        _plot(report["curve"], batch_ppl, out / "curve.png", f"{space.describe(g)} ({preset})")
    if result.status != "ok":
        raise click.ClickException(f"training {result.status}: {result.message}")
    line = f"valid ppl {result.objective:.2f}"
    if report["test_ppl"] is not None:
        line += f", test ppl {report['test_ppl']:.2f}"
    click.echo(f"{line} ({result.cost_s:.0f} s); wrote {out / 'curve.json'}")


def _trainer(
    space: SearchSpace,
    preset: str,
    epochs: int | None,
    sets: tuple[str, ...],
    data: Path | None,
    device: str,
    test: bool,
    out: Path,
) -> PTBTrainer:
    """The trainer the options describe, attached to OUT/cache; a usage error in one line
    for a bad option or an output folder that cannot be written."""
    options = {"test": test, **_parse_sets(sets)}
    if epochs is not None:
        options["epochs"] = epochs
    try:
        limit = options.pop("time_limit_s", None)
        trainer = PTBTrainer(
            space, {"preset": preset, **options}, None, data, device, time_limit_s=limit
        )
    except (ValueError, TypeError) as e:
        raise click.UsageError(str(e)) from None
    try:
        out.mkdir(parents=True, exist_ok=True)
        trainer.attach(out / "cache")
        (out / "curve.json").touch()  # refuse an output folder that cannot be written now
    except OSError as e:
        raise click.UsageError(f"--out: {out}: cannot write there ({e.strerror or e})") from None
    return trainer


def _show_progress(
    bar: Progress, epochs: int, batch_ppl: list[float]
) -> Callable[[dict[str, Any]], None]:
    """The training's progress callback: batches advance ``bar`` (their perplexities are
    kept in ``batch_ppl`` for the plot), epochs print a line."""

    def progress(event: dict[str, Any]) -> None:
        if event["event"] == "batch":
            if bar.total is None:
                bar.reset(total=event["batches"] * (epochs - event["epoch"] + 1))
            batch_ppl.append(event["ppl"])
            bar.status(
                f"epoch {event['epoch']} loss {event['loss']:.3f} ppl {event['ppl']:.1f}",
                refresh=False,
            )
            bar.update()
        else:
            bar.note(
                f"epoch {event['epoch']}: train ppl {event['train_ppl']:.2f}, "
                f"valid ppl {event['val_ppl']:.2f}{' (ASGD)' if event['asgd'] else ''}",
                file=sys.stdout,
            )

    return progress


@click.group("data")
def data() -> None:
    """Install the datasets the trainers read."""


@data.command("fetch")
@click.argument("dataset", type=click.Choice(list(_FETCHERS)))
@click.option("--source", default=None, help="URL, archive or folder (default: a public copy).")
@click.option(
    "--dest",
    type=click.Path(path_type=Path),
    default=None,
    help="Target folder (default: $EVO_NAS_DATA/DATASET, else the user cache).",
)
def fetch(dataset: str, source: str | None, dest: Path | None) -> None:
    """Download or copy DATASET, verify its checksums and install it."""
    try:
        folder = _FETCHERS[dataset](source, dest)
    except (DataError, OSError) as e:
        click.echo(f"error: {e}", err=True)  # bad input, in one line, as everywhere else
        sys.exit(2)
    click.echo(f"{dataset}: installed and verified in {folder}")

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

from evo_nas.config.components import build
from evo_nas.config.errors import ConfigError, first_line
from evo_nas.config.yaml_input import read_scalar
from evo_nas.reports.summary import ranked_evaluations, space_config, space_of
from evo_nas.rundir.files import RunDir
from evo_nas.rundir.progress import Progress, duration
from evo_nas_common.data_files import DataError
from ground_truths.digits_data import fetch_mnist
from ground_truths.ptb_corpus import fetch_ptb
from ground_truths.ptb_trainer import PRESETS, PTBTrainer, TrainConfig
from search_spaces import GenotypeError, SearchSpace

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


def _parse_space_options(items: tuple[str, ...]) -> dict[str, Any]:
    """``--space-option key=value`` pairs, values read as YAML (``4``, ``[tanh, relu]``)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"'{item}' is not key=value", param_hint="--space-option")
        out[key.strip()] = read_scalar(value)
    return out


def _cell(
    space_name: str | None,
    space_options: tuple[str, ...],
    genotype: str | None,
    run_dir: Path | None,
    rank: int | None,
) -> tuple[str, SearchSpace, Any, dict[str, Any]]:
    """The space (its name) and the cell the options name, and where the cell came from; a
    usage error in one line when they name none."""
    if (genotype is None) == (run_dir is None):
        raise click.UsageError("give either --genotype or --run (with --rank)")
    if run_dir is None:
        if rank is not None:
            raise click.UsageError("--rank picks a cell of --run RUN_DIR")
        return _cell_of_space(space_name or "darts_rnn", space_options, genotype or "")
    if space_name is not None or space_options:
        raise click.UsageError("--run reads the space and its options from the run's config")
    return _cell_of_run(run_dir, rank or 1)


def _cell_of_space(
    space_name: str, items: tuple[str, ...], genotype: str
) -> tuple[str, SearchSpace, Any, dict[str, Any]]:
    """``--genotype`` in the space ``--space`` with ``--space-option``s."""
    options = _parse_space_options(items)
    try:
        space = build("space", space_name, options)
    except ConfigError as e:
        raise click.UsageError(str(e).replace("space.options.", "--space-option ")) from None
    try:
        g = space.validate(genotype)
    except GenotypeError as e:
        hint = "" if items else "; another space or options? --space NAME, --space-option K=V"
        raise click.UsageError(f"--genotype: {e} (space {space_name}{hint})") from None
    return space_name, space, g, {}


def _cell_of_run(run_dir: Path, rank: int) -> tuple[str, SearchSpace, Any, dict[str, Any]]:
    """The cell ranked ``rank`` (as ``show`` ranks them) in a run directory, in its space."""
    try:
        RunDir(run_dir).check_files()
        rows = ranked_evaluations(run_dir)
        if not 1 <= rank <= len(rows):
            raise ValueError(f"--rank {rank}: the run has {len(rows)} evaluated cells")
        row = rows[rank - 1]
        space = space_of(run_dir)
        g = space.from_json(json.loads(row["genotype"]))
        name = space_config(run_dir).name
    except (OSError, ValueError) as e:
        raise click.UsageError(f"--run {run_dir}: {first_line(e)}") from None
    source = {"run": str(run_dir), "rank": rank, "evaluation": int(row["index"])}
    return name, space, g, source


@click.command("train")
@click.option(
    "--genotype",
    default=None,
    help="The cell: its key (as show, export and the dashboard print it), the space's JSON "
    "form or a built-in name.",
)
@click.option(
    "--space", "space_name", default=None, help="The genotype's search space [default: darts_rnn]."
)
@click.option(
    "--space-option",
    "space_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="An option of the space (as under space.options in a config), e.g. nodes=4.",
)
@click.option(
    "--run",
    "run_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Train a cell of this run directory (its space and options from its config).",
)
@click.option(
    "--rank",
    type=click.IntRange(min=1),
    default=None,
    help="With --run: the cell ranked so by `evo-nas show` [default: 1, the best].",
)
@click.option("--preset", type=click.Choice(list(PRESETS)), default="cpu", show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=None)
@click.option(
    "--set", "sets", multiple=True, metavar="KEY=VALUE", help="A training option (TrainConfig)."
)
@click.option("--data", type=click.Path(path_type=Path), default=None, help="PTB folder.")
@click.option("--device", default="auto", show_default=True)
@click.option("--test/--no-test", default=True, show_default=True, help="Report test perplexity.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Output folder [default: runs/train, or RUN_DIR/train/rank<N> with --run].",
)
def train(
    genotype: str | None,
    space_name: str | None,
    space_options: tuple[str, ...],
    run_dir: Path | None,
    rank: int | None,
    preset: str,
    epochs: int | None,
    sets: tuple[str, ...],
    data: Path | None,
    device: str,
    test: bool,
    out: Path | None,
) -> None:
    """Train one cell's language model on Penn Treebank and report its perplexities.

    The cell is --genotype (in --space with its --space-option's) or the cell ranked --rank
    in the run directory --run. Writes OUT/curve.json (learning curve and final perplexities)
    and OUT/curve.png. The training checkpoints every epoch under OUT/cache, so rerunning
    resumes it; a finished configuration is answered from the cache.
    """
    space_name, space, g, source = _cell(space_name, space_options, genotype, run_dir, rank)
    if out is None:
        out = Path("runs/train") if run_dir is None else run_dir / "train" / f"rank{rank or 1}"
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
        "key": space.key(g),
        "genotype": space.to_json(g),
        **({"from": source} if source else {}),
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
    if result.status == "diverged":
        raise click.ClickException(f"training diverged ({result.message}); {_what_to_try(cfg)}")
    if result.status != "ok":
        raise click.ClickException(f"training {result.status}: {result.message}")
    line = f"valid ppl {result.objective:.2f}"
    if report["test_ppl"] is not None:
        line += f", test ppl {report['test_ppl']:.2f}"
    click.echo(f"{line} ({duration(result.cost_s)}); wrote {out / 'curve.json'}")


def _what_to_try(cfg: TrainConfig) -> str:
    """What to change after a diverged training, in the options that change it."""
    return (
        f"try a lower learning rate (--set lr={cfg.lr / 4:g}), tighter gradient clipping "
        f"(--set clip={cfg.clip / 2:g}) or another preset (--preset "
        f"{'|'.join(PRESETS)})"
    )


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

"""The ``evo-nas`` command line."""

from __future__ import annotations

import contextlib
import shlex
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from evo_nas.config.errors import ConfigError
from evo_nas.rundir.lock import RunDirError
from evo_nas_common.statefile import StateError

#: what ``run`` and ``resume`` report in one line (exit status 2) instead of a traceback
_REFUSALS = (ConfigError, RunDirError, StateError)
#: the longest refusal line: enough for a key, a file and the problem, never a file's content
MAX_ERROR_CHARS = 500


def one_line(message: str) -> str:
    """A message as one line of at most :data:`MAX_ERROR_CHARS` characters."""
    lines = str(message).strip().splitlines()
    line = lines[0] if lines else "failed"
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 3] + "..."


def _fail(message: str) -> None:
    click.echo(f"error: {one_line(message)}", err=True)
    sys.exit(2)


class _OneLineGroup(click.Group):
    """The command group, reporting a bad command line in one ``error:`` line as every
    other refusal is (not click's usage block)."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError as e:
            e.show()  # a bare command asks for its help
            sys.exit(e.exit_code)
        except click.ClickException as e:
            click.echo(f"error: {one_line(e.format_message())}", err=True)
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("error: aborted", err=True)
            sys.exit(1)


#: how many cells ``show`` and ``export`` may list (``config.schema.MAX_SIZE``, not imported
#: here: the command line loads nothing heavy before a command runs)
_TOP = click.IntRange(1, 100_000)


def _show_warning(message: Warning | str, *_: object, **__: object) -> None:
    """Warnings as one line each, on stderr (not Python's two lines with a source line)."""
    click.echo(f"warning: {message}", err=True)


@click.group(cls=_OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="evo-nas")
def main() -> None:
    """Surrogate-assisted evolutionary search over recurrent-cell architectures."""
    warnings.showwarning = _show_warning


@main.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--overwrite", is_flag=True, help="Replace an existing run directory of that name.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option(
    "--check", is_flag=True, help="Only validate CONFIG and build what it names; write nothing."
)
def run(config: Path, overwrite: bool, quiet: bool, check: bool) -> None:
    """Run the search described by CONFIG (a search.yaml)."""
    from evo_nas.reports.summary import cost_line
    from evo_nas.search.launch import check_config, start_run

    if check:
        try:
            rd = check_config(config)
        except _REFUSALS as e:
            _fail(str(e))
        click.echo(f"{config}: valid (a run writes {rd.path})")
        return
    try:
        engine, rd = start_run(config, overwrite=overwrite, progress=False if quiet else None)
        with _stopped_note(rd.path):
            best = engine.run()
    except _REFUSALS as e:
        _fail(str(e))
    _print_best(best)
    click.echo(cost_line(rd.path))
    _print_next(rd.path, best)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--quiet", is_flag=True, help="No progress bar.")
def resume(run_dir: Path, quiet: bool) -> None:
    """Continue the run in RUN_DIR where it stopped."""
    from evo_nas.reports.summary import cost_line
    from evo_nas.search.launch import resume_search

    try:
        with _stopped_note(run_dir):
            best = resume_search(run_dir, progress=False if quiet else None)
    except _REFUSALS as e:
        _fail(str(e))
    _print_best(best)
    click.echo(cost_line(run_dir))
    _print_next(run_dir, best)


def _shown(path: Path) -> str:
    """A run directory as a command line takes it: relative to here when it is below here."""
    try:
        text = str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        text = str(path)
    return shlex.quote(text)


@contextlib.contextmanager
def _stopped_note(run_dir: Path) -> Iterator[None]:
    """A run stopped by Ctrl-C (exit status 130) or by an error says how to continue it."""
    try:
        yield
    except KeyboardInterrupt:
        click.echo(
            f"interrupted; the run is kept as far as it got: evo-nas resume {_shown(run_dir)}",
            err=True,
        )
        sys.exit(130)
    except _REFUSALS:
        raise
    except Exception:
        click.echo(
            f"the run stopped at an error (below); what it found is kept in {_shown(run_dir)} "
            f"and `evo-nas resume {_shown(run_dir)}` continues it once the cause is fixed",
            err=True,
        )
        raise


def _print_next(run_dir: Path, best: dict) -> None:
    """Where the results are and the commands that use them, ready to copy."""
    from evo_nas.reports.summary import space_of

    where = _shown(run_dir)
    steps = [
        (f"evo-nas show {where} --plots", "best cells, progress and figures"),
        (f"evo-nas dashboard {where}", "the run in a browser"),
        (f"evo-nas export {where} --top 5", "best genotypes as JSON and torch modules"),
    ]
    try:
        trainable = bool(best) and space_of(run_dir).motif == "cell"
    except (OSError, ValueError):
        trainable = False
    if trainable:
        steps.append((f"evo-nas train --run {where} --rank 1", "the best cell trained on PTB"))
    width = max(len(command) for command, _ in steps)
    click.echo(f"results in {where}; next:")
    for command, what in steps:
        click.echo(f"  {command.ljust(width)}  # {what}")


def _print_best(best: dict) -> None:
    from evo_nas.reports.summary import format_objective

    if not best:
        click.echo("no finite result yet")
        return
    click.echo(
        f"best objective {format_objective(best['objective'])} "
        f"(evaluation {best['found_at_evaluation']} of {best['evaluations']}): {best['describe']}"
    )


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--top", type=_TOP, default=10, show_default=True, help="How many cells to list.")
@click.option("--plots", is_flag=True, help="Also write figures to RUN_DIR/plots/.")
def show(run_dir: Path, top: int, plots: bool) -> None:
    """Best cells and progress of the run in RUN_DIR, as tables (and figures)."""
    from evo_nas.reports.summary import progress_table, top_table, write_run_plots
    from evo_nas.rundir.files import RunDir

    try:  # everything read (and drawn) before anything is printed: a refusal is one line
        RunDir(run_dir).check_files()
        tables = [top_table(run_dir, top), "", progress_table(run_dir)]
        written = write_run_plots(run_dir) if plots else []
    except (OSError, ValueError) as e:
        _fail(f"{run_dir}: {str(e).splitlines()[0]}")
    click.echo("\n".join(tables))
    for p in written:
        click.echo(f"wrote {p}")
    for line in _train_lines(run_dir):
        click.echo(line)


def _train_lines(run_dir: Path) -> list[str]:
    """How to train a listed cell on PTB: by its rank in the run, or by its key in the run's
    space (none where the space's motifs are not cells)."""
    import json

    from evo_nas.config.components import construct
    from evo_nas.reports.summary import space_config

    try:
        space = space_config(run_dir)
        if construct("space", space).motif != "cell":
            return []
    except (OSError, ValueError):
        return []
    options = "".join(
        f" --space-option {shlex.quote(f'{k}={v if isinstance(v, str) else json.dumps(v)}')}"
        for k, v in space.options.items()
    )
    return [
        "",
        f"train one on PTB: evo-nas train --run {_shown(run_dir)} --rank N",
        f"  or by its key:  evo-nas train --space {space.name}{options} --genotype 'KEY'",
    ]


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--top", type=_TOP, default=5, show_default=True, help="How many cells to export.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder (default RUN_DIR/export).",
)
def export(run_dir: Path, top: int, out: Path | None) -> None:
    """Write the TOP best genotypes as JSON, with a script that rebuilds them as modules."""
    from evo_nas.reports.summary import export_top
    from evo_nas.rundir.files import RunDir

    try:
        RunDir(run_dir).check_files()
        folder = export_top(run_dir, top, out)
    except (OSError, ValueError, KeyError) as e:
        _fail(f"{run_dir}: {str(e).splitlines()[0]}")
    click.echo(f"wrote {folder / 'top_cells.json'} and {folder / 'rebuild_cells.py'}")


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--points", default=100, show_default=True, help="Grid points over the space.")
@click.option("--truth", is_flag=True, help="Also evaluate every point with the ground truth.")
def sweep(run_dir: Path, points: int, truth: bool) -> None:
    """Plot the run's fitted surrogate (and the ground truth) along a one-dimensional space."""
    from evo_nas.reports.sweep import sweep_run

    try:
        csv_path, png = sweep_run(run_dir, points, truth)
    except (ConfigError, OSError, ValueError, KeyError) as e:
        _fail(f"{run_dir}: {str(e).splitlines()[0]}")
    click.echo(f"wrote {csv_path} and {png}")


@main.group()
def compare() -> None:
    """Compare surrogates head to head (prediction quality, or whole searches)."""


@compare.command(name="predict")
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--quiet", is_flag=True, help="No progress bar.")
def compare_predict(config: Path, quiet: bool) -> None:
    """Fit each surrogate on training sets of growing size; score them on one test set."""
    from evo_nas.compare.predict import load_predict_config, run_predict_comparison

    _compare(config, lambda: run_predict_comparison(load_predict_config(config), not quiet))


@compare.command(name="search")
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--quiet", is_flag=True, help="No progress bar.")
def compare_search(config: Path, quiet: bool) -> None:
    """Run one search configuration with each method and seed, under the same budget."""
    from evo_nas.compare.search import load_search_compare, run_search_comparison

    def run() -> Path:
        cfg, base, base_dir = load_search_compare(config)
        return run_search_comparison(cfg, base, base_dir, progress=not quiet)

    _compare(config, run)


def _compare(config: Path, run: Callable[[], Path]) -> None:
    """Run a comparison; print its summary, or refuse in one line."""
    try:
        out = run()
    except _REFUSALS as e:
        _fail(str(e))
    except OSError as e:
        _fail(f"{config}: cannot write the results ({e})")
    click.echo((out / "summary.md").read_text())
    click.echo(f"results in {out}")


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; any but loopback requires the token printed at start.",
)
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: any free one).",
)
@click.option(
    "--token", default=None, help="Require this token (default: a random one off loopback)."
)
@click.option(
    "--refresh",
    default=2.0,
    show_default=True,
    type=click.FloatRange(min=0.2),
    help="Seconds between two updates of the page.",
)
def dashboard(run_dirs: tuple[Path, ...], host: str, port: int, token: str | None, refresh: float):
    """Watch RUN_DIRS (run directories or `compare search` folders) live in a browser.

    A local web server, read-only: it never writes or locks a run directory, so it can watch
    runs that are being written, and follows a run that resumes; a folder that does not
    exist yet is waited for. Stop it with Ctrl-C.
    """
    from evo_nas.dashboard.runs import DashboardError
    from evo_nas.dashboard.server import make_server

    try:
        server = make_server(list(run_dirs), host, port, token, refresh)
    except DashboardError as e:
        _fail(str(e))
    except OSError as e:
        _fail(f"cannot listen on {host}:{port} ({e.strerror or e})")
    click.echo(f"evo-nas dashboard of {len(server.runs.feeds)} run(s): {server.url}")
    for path in server.runs.pending:
        click.echo(f"waiting for {path}: no run there yet; the page shows it once one starts")
    click.echo("(read-only; Ctrl-C stops it)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@main.command(name="list")
def list_() -> None:
    """Registered search spaces, surrogates and ground truths."""
    from ground_truths import GROUND_TRUTHS
    from search_spaces import SPACES
    from surrogates import SURROGATES

    for title, reg in (
        ("search spaces", SPACES),
        ("surrogates", SURROGATES),
        ("ground truths", GROUND_TRUTHS),
    ):
        click.echo(f"{title}: {', '.join(reg.names())}")


def _add_training_commands() -> None:
    from evo_nas.cli.train import data, train

    main.add_command(train)
    main.add_command(data)


_add_training_commands()

"""Starting, resuming and checking runs: from a config to a run directory and its engine.

One process at a time works in a run directory (:mod:`evo_nas.rundir.lock`): :func:`start_run`
and :func:`resume_search` take its lock, and the engine releases it when its run returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evo_nas.config.errors import ConfigError
from evo_nas.config.schema import (
    SearchConfig,
    build_space,
    config_differences,
    config_to_dict,
    load_config,
    parse_config,
    read_yaml,
)
from evo_nas.rundir.files import RunDir
from evo_nas.rundir.lock import RunDirError
from evo_nas.search.checkpoint import load_checkpoint
from evo_nas.search.engine import SearchEngine


def _run_dir_for(cfg: SearchConfig) -> RunDir:
    return RunDir(Path(cfg.output_dir) / cfg.name)


def check_config(config: str | Path) -> RunDir:
    """Validate a config file and build every component it names, writing nothing; returns
    the run directory a run of it would use (``evo-nas run --check``)."""
    cfg = load_config(config)
    SearchEngine(cfg, _run_dir_for(cfg), progress=False)
    return _run_dir_for(cfg)


def _refuse_existing(run_dir: RunDir, holding: bool = False) -> None:
    """Refuse a run directory that a run works in or that holds a run's results (a directory
    holding nothing of a run, e.g. one whose run stopped before its first result, is reused);
    ``holding``: this process holds its lock."""
    if not run_dir.path.exists():
        return
    if not holding:
        run_dir.refuse_if_locked()  # a run working there: name it
    run_dir.check_files()
    held = run_dir.started()
    if held is not None:
        raise ConfigError(
            f"name: run directory {run_dir.path} already exists and holds a run ({held}); "
            "use `evo-nas resume` to continue it, or --overwrite to start again"
        )


def start_run(
    config: SearchConfig | dict[str, Any] | str | Path,
    *,
    overwrite: bool = False,
    progress: bool | None = None,
    base_dir: Path | None = None,
) -> tuple[SearchEngine, RunDir]:
    """Validate ``config``, build every component and create a fresh run directory.

    The returned engine holds the run directory's lock; :meth:`SearchEngine.run` releases it.
    """
    if isinstance(config, (str, Path)):
        cfg = load_config(config)
    elif isinstance(config, dict):
        cfg = parse_config(config, Path(base_dir or Path.cwd()).resolve())
    else:
        cfg = config
    run_dir = _run_dir_for(cfg)
    if not overwrite:
        _refuse_existing(run_dir)
    engine = SearchEngine(cfg, run_dir, progress)
    lock = run_dir.lock()
    try:
        if not overwrite:  # another run may have started there meanwhile
            _refuse_existing(run_dir, holding=True)
        try:
            run_dir.create(config_to_dict(cfg))
        except OSError as e:
            raise RunDirError(f"{run_dir.path}: cannot write the run directory ({e})") from None
    except BaseException:
        lock.release()
        raise
    engine.lock = lock
    return engine, run_dir


def run_search(
    config: SearchConfig | dict[str, Any] | str | Path,
    *,
    overwrite: bool = False,
    progress: bool | None = None,
    base_dir: Path | None = None,
) -> dict[str, Any]:
    """Run a search from a config (path, dict or model); returns ``best.json``'s content."""
    engine, _ = start_run(config, overwrite=overwrite, progress=progress, base_dir=base_dir)
    return engine.run()


def _resumed_engine(rd: RunDir, progress: bool | None) -> SearchEngine:
    """The engine of a run directory, restored from its checkpoint (its lock is held)."""
    data = read_yaml(rd.config_path)
    try:
        current = parse_config(data, rd.path.resolve())
    except ConfigError as e:
        raise ConfigError(f"{rd.config_path}: {e}") from None
    if not rd.checkpoint_files():
        held = rd.holds_results()
        if held is not None:
            raise RunDirError(
                f"{rd.checkpoint_path}: missing, but {held}; refusing to start the run again "
                "over its results (restore the checkpoint, or start again with "
                "`evo-nas run CONFIG --overwrite`)"
            )
        engine = SearchEngine(current, rd, progress)  # killed before its first checkpoint
        rd.create(config_to_dict(current))
        return engine
    ck = load_checkpoint(rd, build_space(current))
    try:  # keys added since the run was written take their defaults, as they did then
        saved = config_to_dict(parse_config(ck.config, rd.path.resolve()))
    except ConfigError:
        saved = ck.config
    diffs = config_differences(saved, config_to_dict(current))
    if diffs:
        raise ConfigError(
            "config.yaml differs from the run's config, refusing to resume: " + "; ".join(diffs)
        )
    rd.check_events(ck.events_kept, ck.records_kept)
    return SearchEngine(current, rd, progress, ck)


def resume_search(run_dir: Path | str, progress: bool | None = None) -> dict[str, Any]:
    """Continue a killed run; refuses when its config.yaml no longer matches the run's, when
    another process works in it, or when its files are damaged beyond what it can recover."""
    rd = RunDir(Path(run_dir))
    if not rd.config_path.exists():
        raise RunDirError(f"{rd.path}: not a run directory (no config.yaml)")
    lock = rd.lock()
    try:
        engine = _resumed_engine(rd, progress)
    except BaseException:
        lock.release()
        raise
    engine.lock = lock
    return engine.run()

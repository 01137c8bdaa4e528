"""The search configuration: its schema, defaults and validation, and what it builds.

Every error a user can make in a YAML file becomes a
:class:`~evo_nas.config.errors.ConfigError` whose message is one line naming the key and the
problem; the CLI prints it and exits with status 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    PositiveFloat,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from evo_nas.config.components import (
    Component,
    Section,
    construct,
    resolve_component,
    takes_option,
)
from evo_nas.config.errors import ConfigError, first_error
from evo_nas.config.yaml_input import YAMLInputError
from evo_nas.config.yaml_input import read_yaml as _read_yaml
from evo_nas_common.bounds import MAX_COUNT, MAX_SIZE, Count, Seed, Size, SizeOrZero
from ground_truths import GroundTruth
from search_spaces import GenotypeError, SearchSpace
from surrogates import Surrogate

#: the longest path a config may give (Linux's PATH_MAX) and the longest part of one (NAME_MAX)
MAX_PATH_BYTES, MAX_PART_BYTES = 4096, 255


def _checked_path(path: Path) -> Path:
    """A path the file system can take: no NUL, parts and whole within Linux's limits."""
    text = str(path)
    if "\x00" in text:
        raise ValueError("a path holds no NUL character")
    if len(text.encode()) > MAX_PATH_BYTES:
        raise ValueError(f"a path is at most {MAX_PATH_BYTES:,} bytes long")
    if any(len(part.encode()) > MAX_PART_BYTES for part in path.parts):
        raise ValueError(f"each part of a path is at most {MAX_PART_BYTES} bytes long")
    return path


#: a file or folder a config names (relative paths are taken from the config's folder)
FilePath = Annotated[Path, Field(strict=False), AfterValidator(_checked_path)]
#: the name of a run (or comparison) folder, or of a label that becomes part of one: one
#: path component of letters, digits and ``_ . + -``, not starting with a dot, so that it
#: stays inside ``output_dir`` and is an ordinary file name everywhere
Name = Annotated[str, StringConstraints(pattern=r"^[\w+-][\w.+-]*$", max_length=100)]


def _name_only(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


class SearchSection(Section):
    """How candidates are proposed."""

    #: a name in :data:`evo_nas.search.strategy.STRATEGIES` (checked when the engine is built)
    strategy: Annotated[str, Field(min_length=1, max_length=100)] = "generational"
    algorithm: Literal["regularized", "mu_plus_lambda", "random"] = "regularized"
    generator: Literal["mutation", "nao"] = "mutation"
    population: Size = 20
    sample: Size = 5
    offspring: Size = 10
    initial: list[Any] = Field(default_factory=list, max_length=MAX_SIZE)
    pool: bool = False
    pool_options: dict[str, Any] = Field(default_factory=dict)
    mutation_retries: Count = 20
    max_stale_generations: Size = 50

    @model_validator(mode="after")
    def _sample_fits(self) -> SearchSection:
        if self.algorithm == "regularized" and self.sample > self.population:
            raise ValueError(
                f"sample ({self.sample}) must not exceed population ({self.population})"
            )
        if self.pool_options and not self.pool:
            raise ValueError("pool_options: only with pool: true (they would be ignored)")
        return self


class SurrogateLoopSection(Section):
    """The outer loop of surrogate-assisted search (ignored with ``surrogate: none``)."""

    warmup: Size = 10
    #: rank this many unseen random cells (pool members in pool mode) with the surrogate
    #: before any ground truth and warm up on the best of them; 0: a random warm-up
    warmup_candidates: SizeOrZero = 0
    generations: Size = 5
    promote: Size = 5
    #: promotion order: the prediction, or ``mean - kappa * spread`` where the surrogate
    #: gives a spread (a lower confidence bound: uncertain cells get a chance)
    promote_by: Literal["mean", "lcb"] = "mean"
    kappa: Annotated[float, Field(ge=0, le=1e6)] = 1.0
    explore: SizeOrZero = 0
    #: the best cells the ground truth has answered that join every round's population (the
    #: rest: the round's best predicted cells), so evolution searches next to them too; the
    #: default fills the default population with them (NAS-Bench-NLP, 10 seeds: the best
    #: 0.1 % reached in 5 of 10 searches against 1 of 10 with 0; docs/results/search_nbnlp.md)
    incumbents: SizeOrZero = 20


class BudgetSection(Section):
    """When the search stops: ground-truth evaluations and/or wall time."""

    #: (at most a billion: far beyond what any search evaluates, so a larger count is a typo)
    evaluations: Annotated[int, Field(gt=0, le=10**9)] | None = 100
    wall_time_s: PositiveFloat | None = None

    @model_validator(mode="after")
    def _some_limit(self) -> BudgetSection:
        if self.evaluations is None and self.wall_time_s is None:
            raise ValueError("set evaluations, wall_time_s or both")
        return self


#: host[:port], with a scheme or not (the scheme is checked per backend)
_ADDRESS = r"^([a-z]+://)?[A-Za-z0-9._\-\[\]:]+$|^auto$"
_SCHEMES = {"dask": ("tcp", "tls", "ws", "wss", "ucx", "inproc"), "ray": ("ray",)}


class ExecutionSection(Section):
    """Where and how ground-truth evaluations run."""

    backend: Literal["local", "dask", "ray"] = "local"
    workers: Count = 1
    #: a scheduler (dask: [tcp|tls|ws|wss|ucx|inproc]://host[:port]) or cluster (ray: auto,
    #: ray://host:port or host:port) address
    address: Annotated[str, StringConstraints(pattern=_ADDRESS, max_length=1000)] | None = None
    threads_per_worker: Count | None = None
    gpus_per_task: Annotated[float, Field(ge=0, le=MAX_COUNT)] = 0.0
    retries: Annotated[int, Field(ge=0, le=MAX_COUNT)] = 2
    timeout_s: PositiveFloat | None = None

    @model_validator(mode="after")
    def _address_of_a_cluster(self) -> ExecutionSection:
        if self.address is not None and self.backend == "local":
            raise ValueError("address: only with backend dask or ray (local starts its workers)")
        scheme = self.address.partition("://")[0] if "://" in (self.address or "") else None
        allowed = _SCHEMES[self.backend] if self.backend != "local" else ()
        if scheme is not None and scheme not in allowed:
            raise ValueError(
                f"address: scheme '{scheme}://' is not one of {self.backend}'s "
                f"({', '.join(s + '://' for s in allowed)})"
            )
        return self


class LoggingSection(Section):
    """What the run shows while it works."""

    progress: bool = True
    tensorboard: bool = False


class FinalSection(Section):
    """Retrain the best cells of a finished search with another ground truth (and seeds)."""

    top_k: Size = 3
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1, max_length=MAX_COUNT)
    ground_truth: Component

    _normalise = field_validator("ground_truth", mode="before")(_name_only)


class SearchConfig(Section):
    """A whole ``search.yaml``."""

    name: Name = "search"
    output_dir: FilePath = Path("runs")
    seed: Seed = 0
    space: Component
    ground_truth: Component
    surrogate: Component | None = None
    search: SearchSection = Field(default_factory=SearchSection)
    surrogate_loop: SurrogateLoopSection = Field(default_factory=SurrogateLoopSection)
    budget: BudgetSection = Field(default_factory=BudgetSection)
    execution: ExecutionSection = Field(default_factory=ExecutionSection)
    logging: LoggingSection = Field(default_factory=LoggingSection)
    final: FinalSection | None = None

    _normalise_space = field_validator("space", "ground_truth", mode="before")(_name_only)

    @field_validator("surrogate", mode="before")
    @classmethod
    def _surrogate_none(cls, value: Any) -> Any:
        value = _name_only(value)
        if value is None or (isinstance(value, dict) and value.get("name") in ("none", None)):
            return None
        return value


def validate_model(model: type[BaseModel], data: Any) -> Any:
    """``model.model_validate(data)`` with the first error as a one-line ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError("config: the file must hold a mapping of keys to values")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(first_error(e)) from None


def parse_config(data: Any, base_dir: Path) -> SearchConfig:
    """Validate a config mapping; relative paths are taken from ``base_dir``."""
    cfg = validate_model(SearchConfig, data)
    if not cfg.output_dir.is_absolute():
        cfg.output_dir = (base_dir / cfg.output_dir).resolve()
    for section in ("space", "ground_truth", "surrogate"):
        resolve_component(section, getattr(cfg, section), base_dir)
    if cfg.final is not None:
        resolve_component("ground_truth", cfg.final.ground_truth, base_dir)
    return cfg


def read_yaml(path: Path | str) -> Any:
    """The content of a YAML file (:mod:`evo_nas.config.yaml_input`); any problem is a
    ConfigError."""
    try:
        return _read_yaml(path)
    except YAMLInputError as e:
        raise ConfigError(str(e)) from None


def load_config(path: Path | str) -> SearchConfig:
    """Read and validate a YAML search config."""
    return parse_config(read_yaml(path), Path(path).parent.resolve())


def build_space(cfg: SearchConfig) -> SearchSpace:
    """The search space named by the config."""
    return construct("space", cfg.space)


def build_ground_truth(cfg: SearchConfig, space: SearchSpace) -> GroundTruth:
    """The ground truth named by the config, for ``space``."""
    return construct("ground_truth", cfg.ground_truth, space=space)


def build_surrogate(cfg: SearchConfig, space: SearchSpace) -> Surrogate | None:
    """The surrogate named by the config (None for evolution on the ground truth)."""
    if cfg.surrogate is None:
        return None
    return construct("surrogate", cfg.surrogate, space=space, seed=cfg.seed)


def initial_genotypes(cfg: SearchConfig, space: SearchSpace) -> list[Any]:
    """``search.initial`` parsed by the space (names such as DARTS_V2 are accepted)."""
    out = []
    for i, obj in enumerate(cfg.search.initial):
        try:
            out.append(space.validate(obj))
        except GenotypeError as e:
            raise ConfigError(f"search.initial[{i}]: {e}") from None
    return out


def config_to_dict(cfg: SearchConfig) -> dict[str, Any]:
    """A plain, YAML-friendly dict of the resolved config."""
    return cfg.model_dump(mode="json")


def config_differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Lines ``key: old -> new`` for every leaf that differs."""
    diffs: list[str] = []
    for k in sorted(set(old) | set(new), key=str):
        a, b = old.get(k, "<unset>"), new.get(k, "<unset>")
        where = f"{prefix}{k}"
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += config_differences(a, b, where + ".")
        elif a != b:
            diffs.append(f"{where}: {a!r} -> {b!r}")
    return diffs


def build_final_ground_truth(cfg: SearchConfig, space: SearchSpace, seed: int) -> GroundTruth:
    """The final stage's ground truth for one seed (passed as its ``seed`` option)."""
    assert cfg.final is not None
    comp = cfg.final.ground_truth
    options = dict(comp.options)
    if takes_option("ground_truth", comp, "seed"):
        options["seed"] = seed
    elif len(cfg.final.seeds) > 1:
        raise ConfigError(
            f"final.seeds: ground truth '{comp.name}' takes no seed, so give a single seed"
        )
    try:
        return construct("ground_truth", comp.model_copy(update={"options": options}), space=space)
    except ConfigError as e:
        raise ConfigError(f"final.{e}") from None

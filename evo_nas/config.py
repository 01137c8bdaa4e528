"""The search configuration: schema, defaults, validation and the components it names.

Every error a user can make in a YAML file becomes a :class:`ConfigError` whose message is
one line naming the key and the problem; the CLI prints it and exits with status 2.
"""

from __future__ import annotations

import inspect
import types
import typing
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    TypeAdapter,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from common.registry import UnknownNameError
from evo_nas.yaml_input import YAMLInputError
from evo_nas.yaml_input import read_yaml as _read_yaml
from ground_truths import GROUND_TRUTHS, GroundTruth
from search_spaces import SPACES, GenotypeError, SearchSpace
from surrogates import SURROGATES, Surrogate


class ConfigError(ValueError):
    """A configuration mistake, described in one line."""


class DeprecatedKeyWarning(FutureWarning):
    """A config key that still works under its old name; the message gives the new one."""


#: a seed of python, numpy and torch alike (numpy's legacy seeding takes 32 bits, and the
#: seeds derived from it, e.g. seed * 1_000_003 + round, stay within torch's 64)
Seed = Annotated[int, Field(ge=0, lt=2**32)]
#: the most cells (or steps) a size may ask for: beyond this one step would not end in any
#: reasonable time, nor fit in memory, so such a value is a typo, refused up front
MAX_SIZE = 100_000
Size = Annotated[int, Field(gt=0, le=MAX_SIZE)]
#: workers, threads, retries and the like
MAX_COUNT = 1024
Count = Annotated[int, Field(gt=0, le=MAX_COUNT)]


class Section(BaseModel):
    """A config mapping whose unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")


class Component(Section):
    """A registry entry by name, with the options passed to its constructor."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)


def _name_only(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


class SearchSection(Section):
    """How candidates are proposed."""

    strategy: Literal["generational", "steady_state"] = "generational"
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
        return self

    @model_validator(mode="after")
    def _steady_state_is_not_generational(self) -> SearchSection:
        if self.strategy == "steady_state" and self.algorithm == "mu_plus_lambda":
            raise ValueError(
                "strategy steady_state works with regularized or random search, "
                "not mu_plus_lambda (a generational algorithm)"
            )
        return self


class SurrogateLoopSection(Section):
    """The outer loop of surrogate-assisted search (ignored with ``surrogate: none``)."""

    warmup: Size = 10
    #: rank this many unseen random cells (pool members in pool mode) with the surrogate
    #: before any ground truth and warm up on the best of them; 0: a random warm-up
    warmup_candidates: Annotated[int, Field(ge=0, le=MAX_SIZE)] = 0
    generations: Size = 5
    promote: Size = 5
    #: promotion order: the prediction, or ``mean - kappa * spread`` where the surrogate
    #: gives a spread (a lower confidence bound: uncertain cells get a chance)
    promote_by: Literal["mean", "lcb"] = "mean"
    kappa: Annotated[float, Field(ge=0, le=1e6)] = 1.0
    explore: Annotated[int, Field(ge=0, le=MAX_SIZE)] = 0


class BudgetSection(Section):
    """When the search stops: ground-truth evaluations and/or wall time."""

    evaluations: PositiveInt | None = 100
    wall_time_s: PositiveFloat | None = None

    @model_validator(mode="after")
    def _some_limit(self) -> BudgetSection:
        if self.evaluations is None and self.wall_time_s is None:
            raise ValueError("set evaluations, wall_time_s or both")
        return self


class ExecutionSection(Section):
    """Where and how ground-truth evaluations run."""

    backend: Literal["local", "dask", "ray"] = "local"
    workers: Count = 1
    address: str | None = None
    threads_per_worker: Count | None = None
    gpus_per_task: Annotated[float, Field(ge=0, le=MAX_COUNT)] = 0.0
    retries: Annotated[int, Field(ge=0, le=MAX_COUNT)] = 2
    timeout_s: PositiveFloat | None = None


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

    name: str = "search"
    output_dir: Path = Path("runs")
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

    @model_validator(mode="after")
    def _warm_start_is_generational(self) -> SearchConfig:
        if self.surrogate_loop.warmup_candidates and self.search.strategy == "steady_state":
            raise ValueError(
                "surrogate_loop.warmup_candidates: the steady_state strategy warms up on "
                "random cells; set 0 or use strategy generational"
            )
        return self

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not value or "/" in value or "\\" in value or value in (".", ".."):
            raise ValueError(f"'{value}' is not a plain directory name")
        return value


def _first_error(err: ValidationError) -> str:
    e = err.errors()[0]
    loc = ".".join(str(p) for p in e["loc"])
    msg = e["msg"]
    if e["type"] == "extra_forbidden":
        msg = "unknown key"
    elif e["type"] == "missing":
        msg = "missing required key"
    else:
        msg = msg.removeprefix("Value error, ")
        if "input" in e and not isinstance(e["input"], (dict, list)):
            msg += f" (got {e['input']!r})"
    more = len(err.errors()) - 1
    where = f"{loc}: " if loc else ""
    return where + msg + (f" (and {more} more error{'s' if more > 1 else ''})" if more else "")


def validate_model(model: type[BaseModel], data: Any) -> Any:
    """``model.model_validate(data)`` with the first error as a one-line ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError("config: the file must hold a mapping of keys to values")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_first_error(e)) from None


def resolve_component(section: str, comp: Component | None, base_dir: Path) -> None:
    """Make the component's path options absolute, relative to ``base_dir``."""
    if comp is not None:
        comp.options = _resolve_paths(section, comp, base_dir)


def upgrade_config(data: Any) -> Any:
    """``data`` with the deprecated ``execution.asynchronous`` replaced by ``search.strategy``
    (true: ``steady_state``, false: ``generational``); ``data`` itself when it has no such key.

    Also applied to the config a checkpoint holds, so that runs started before the rename
    resume (their config then matches the config.yaml beside them)."""
    execution = data.get("execution") if isinstance(data, dict) else None
    if not isinstance(execution, dict) or "asynchronous" not in execution:
        return data
    try:
        asynchronous = TypeAdapter(bool).validate_python(execution["asynchronous"])
    except ValidationError:
        raise ConfigError(
            f"execution.asynchronous: expected true or false (got {execution['asynchronous']!r})"
        ) from None
    upgraded = {**data, "execution": {k: v for k, v in execution.items() if k != "asynchronous"}}
    search = data.get("search", {})
    if isinstance(search, dict):
        strategy = "steady_state" if asynchronous else "generational"
        given = search.get("strategy", strategy)
        if given != strategy:
            raise ConfigError(
                f"execution.asynchronous: {str(asynchronous).lower()} contradicts "
                f"search.strategy: {given} (drop the deprecated key)"
            )
        upgraded["search"] = {**search, "strategy": strategy}
    return upgraded


def parse_config(data: Any, base_dir: Path) -> SearchConfig:
    """Validate a config mapping; relative paths are taken from ``base_dir``.

    The deprecated ``execution.asynchronous`` still works, with a :class:`DeprecatedKeyWarning`.
    """
    upgraded = upgrade_config(data)
    if upgraded is not data:
        search = upgraded.get("search")
        new = f"search.strategy: {search['strategy']}" if isinstance(search, dict) else "strategy"
        warnings.warn(
            f"execution.asynchronous is deprecated: write {new} instead",
            DeprecatedKeyWarning,
            stacklevel=2,
        )
    cfg = validate_model(SearchConfig, upgraded)
    if not cfg.output_dir.is_absolute():
        cfg.output_dir = (base_dir / cfg.output_dir).resolve()
    for section in ("space", "ground_truth", "surrogate"):
        resolve_component(section, getattr(cfg, section), base_dir)
    if cfg.final is not None:
        resolve_component("ground_truth", cfg.final.ground_truth, base_dir)
    return cfg


def parse_run_config(data: Any, run_dir: Path) -> SearchConfig:
    """A run directory's ``config.yaml`` (or a checkpoint's config): the config a run
    resolved and wrote itself, so keys renamed since it was written are upgraded silently."""
    return parse_config(upgrade_config(data), run_dir.resolve())


def read_yaml(path: Path | str) -> Any:
    """The content of a YAML file (:mod:`evo_nas.yaml_input`); any problem is a ConfigError."""
    try:
        return _read_yaml(path)
    except YAMLInputError as e:
        raise ConfigError(str(e)) from None


def load_config(path: Path | str) -> SearchConfig:
    """Read and validate a YAML search config."""
    return parse_config(read_yaml(path), Path(path).parent.resolve())


# -- components -------------------------------------------------------------------------------
_REGISTRIES = {"space": SPACES, "ground_truth": GROUND_TRUTHS, "surrogate": SURROGATES}
# constructor arguments the engine passes itself, per section
_INJECTED = {
    "space": {"self"},
    "ground_truth": {"self", "space"},
    "surrogate": {"self", "space", "seed"},
}


def _factory(section: str, comp: Component) -> Any:
    try:
        return _REGISTRIES[section].get(comp.name)
    except UnknownNameError as e:
        raise ConfigError(f"{section}.name: {e}") from None


def _option_fields(factory: Any, section: str) -> dict[str, tuple[Any, Any]] | None:
    """pydantic fields from a constructor signature (None if it takes ``**kwargs``)."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    sig = inspect.signature(target)
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # unresolvable annotations: accept any value
        hints = {}
    fields: dict[str, tuple[Any, Any]] = {}
    for name, p in sig.parameters.items():
        if p.kind is p.VAR_KEYWORD:
            return None
        if name in _INJECTED[section] or p.kind is p.VAR_POSITIONAL:
            continue
        default = ... if p.default is p.empty else p.default
        fields[name] = (hints.get(name, Any), default)
    return fields


def _is_path(annotation: Any) -> bool:
    if annotation is Path:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(a is Path for a in typing.get_args(annotation))
    return False


def _resolve_paths(section: str, comp: Component, base_dir: Path) -> dict[str, Any]:
    fields = _option_fields(_factory(section, comp), section) or {}
    out = dict(comp.options)
    for name, value in out.items():
        if name in fields and _is_path(fields[name][0]) and isinstance(value, str):
            p = Path(value).expanduser()
            out[name] = str(p if p.is_absolute() else (base_dir / p).resolve())
    return out


def validated_options(section: str, comp: Component) -> dict[str, Any]:
    """The component's options checked against its constructor's signature and types."""
    factory = _factory(section, comp)
    fields = _option_fields(factory, section)
    if fields is None:
        return dict(comp.options)
    model = create_model(
        f"{comp.name}_options",
        __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=True),
        **fields,
    )
    try:
        parsed = model.model_validate(comp.options)
    except ValidationError as e:
        raise ConfigError(f"{section}.options.{_first_error(e)}") from None
    return {k: getattr(parsed, k) for k in comp.options}


def first_line(error: BaseException) -> str:
    """An exception's message as one line (its type's name when it has none)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def construct(section: str, comp: Component, **injected: Any) -> Any:
    """Instantiate a component with validated options; any failure is a ConfigError."""
    options = validated_options(section, comp)
    try:
        return _factory(section, comp)(**injected, **options)
    except (ValueError, OSError, KeyError, TypeError) as e:
        raise ConfigError(f"{section}: {first_line(e)}") from None


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
    fields = _option_fields(_factory("ground_truth", comp), "ground_truth") or {}
    options = dict(comp.options)
    if "seed" in fields:
        options["seed"] = seed
    elif len(cfg.final.seeds) > 1:
        raise ConfigError(
            f"final.seeds: ground truth '{comp.name}' takes no seed, so give a single seed"
        )
    try:
        return construct("ground_truth", comp.model_copy(update={"options": options}), space=space)
    except ConfigError as e:
        raise ConfigError(f"final.{e}") from None

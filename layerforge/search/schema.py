"""Schema of the spec's ``search:`` section (torch- and Optuna-free; the spec package imports it).

::

    search:
      objective: [val_accuracy: max, flops: min]     # one metric, or several (a Pareto front)
      trials: 40
      pruner: median                                 # median | hyperband | none
      budget: {max_params: 200000, max_flops: 5e6}   # checked before training
      space:
        train.optimizer.lr: {space: loguniform, lower: 1e-4, upper: 1e-2}
        model.layers.conv1.filters: {space: choice, categories: [8, 16, 32]}
        model.layers.conv2: {space: choice, categories: [{type: conv2d, filters: 32, kernel_size: 3}, null]}

This module checks each entry on its own (kinds, ranges, steps, categories); what needs the rest of the
spec (does the path exist, do the values fit the field there, what does ``when:`` refer to) is checked by
:mod:`layerforge.search.space` before the first trial. See docs/search.md.
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, NonNegativeInt, PositiveFloat, PositiveInt, \
    model_validator

SPACES = ("loguniform", "uniform", "int", "choice")
MEASURES = ("params", "flops", "latency_ms")  # objectives measured on the model rather than reported per epoch
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _also(schema: dict[str, Any], alternative: dict[str, Any]) -> None:
    """JSON Schema: also accept the short form that a validator expands."""
    schema.setdefault("anyOf", []).insert(0, alternative)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) or isinstance(v, float) and v.is_integer()


class ParamSpec(_Section):
    """One dimension of the search space, at a dotted spec path (the key)."""

    space: Literal["loguniform", "uniform", "int", "choice"] = Field(
        description="loguniform (a float drawn on a log scale), uniform (a float), int (an integer) or choice "
                    "(one of 'categories').")
    lower: float | None = Field(default=None, description="Smallest value (loguniform, uniform, int).")
    upper: float | None = Field(default=None, description="Largest value, included (loguniform, uniform, int).")
    step: PositiveFloat | None = Field(default=None, description="uniform/int: only lower, lower+step, ... "
                                       "(upper - lower must be a multiple of it).")
    log: bool = Field(default=False, description="int only: draw on a log scale (needs lower >= 1, no step).")
    categories: list[Any] | None = Field(default=None, description="choice: the values to pick from; a category "
                                         "may be a whole mapping (a layer) or null (drop the layer or key).")
    when: dict[str, Any] | None = Field(default=None, description="Only sample this parameter when another "
                                        "parameter of the space has this value (or one of a list of values): "
                                        "{train.optimizer.name: sgd}.")

    @model_validator(mode="after")
    def _consistent(self) -> "ParamSpec":
        if self.space == "choice":
            if not self.categories:
                raise ValueError("space: choice needs a non-empty 'categories' list")
            extra = [k for k in ("lower", "upper", "step") if getattr(self, k) is not None] + (["log"] if self.log else [])
            if extra:
                raise ValueError(f"space: choice takes 'categories', not {', '.join(extra)}")
            labels = [category_label(c) for c in self.categories]
            dup = next((lab for i, lab in enumerate(labels) if lab in labels[:i]), None)
            if dup is not None:
                raise ValueError(f"category {dup} is listed twice")
            return self
        if self.categories is not None:
            raise ValueError(f"space: {self.space} takes lower/upper, not 'categories' (use space: choice)")
        if self.lower is None or self.upper is None:
            raise ValueError(f"space: {self.space} needs both 'lower' and 'upper'")
        lo, hi = self.lower, self.upper
        if not lo < hi:
            raise ValueError(f"bad range: lower ({_num(lo)}) must be below upper ({_num(hi)})")
        if self.log and self.space != "int":
            raise ValueError(f"'log' applies to space: int only (space: {self.space} is "
                             + ("already logarithmic)" if self.space == "loguniform" else "linear; use loguniform)"))
        if self.space == "loguniform":
            if lo <= 0:
                raise ValueError(f"bad range: loguniform needs lower > 0, got {_num(lo)}")
            if self.step is not None:
                raise ValueError("loguniform takes no 'step' (use uniform with a step)")
        if self.space == "int":
            bad = [f"{k} {_num(v)}" for k, v in (("lower", lo), ("upper", hi), ("step", self.step))
                   if v is not None and not _is_int(v)]
            if bad:
                raise ValueError(f"space: int needs whole numbers, got {', '.join(bad)}")
            if self.log and (self.step not in (None, 1) or lo < 1):
                raise ValueError("int with log: true needs lower >= 1 and no step")
        if self.step is not None:
            n = (hi - lo) / self.step
            if abs(n - round(n)) > 1e-9 * max(1.0, abs(n)):
                raise ValueError(f"upper - lower ({_num(hi - lo)}) is not a multiple of step ({_num(self.step)})")
        return self

    def contains(self, value: Any) -> bool:
        """Whether a sample of this parameter can be ``value`` (used to check ``when:`` values)."""
        if self.space == "choice":
            return category_label(value) in {category_label(c) for c in self.categories or []}
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        assert self.lower is not None and self.upper is not None
        if not self.lower <= value <= self.upper:
            return False
        if self.space == "int" and not _is_int(value):
            return False
        if self.step is not None:
            n = (value - self.lower) / self.step
            return abs(n - round(n)) <= 1e-9 * max(1.0, abs(n))
        return True


def category_label(value: Any) -> Any:
    """What Optuna records for a category: the value itself when it is a scalar, else its compact YAML-like
    text (``{type: conv2d, filters: 32}``), so whole layers can be categories and still read well in plots."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return _flow(value)


def _flow(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _num(v: float) -> str:
    return str(int(v)) if isinstance(v, float) and v.is_integer() and abs(v) < 1e15 else f"{v:g}"


class Objective(_Section):
    """One quantity to optimise: a metric the run reports per epoch (val_accuracy, val_loss, loss, ...), or
    params, flops (forward FLOPs per sample) or latency_ms (the profiler's timing of the trained model)."""

    name: str = Field(description="val_accuracy, val_loss, accuracy, ..., params, flops or latency_ms.")
    direction: Literal["max", "min"] | None = Field(default=None, description="max or min (default: from the "
                                                    "name: min for losses, errors, params, flops, latency).")


def _objectives(v: Any) -> Any:
    """``val_accuracy`` | ``{val_accuracy: max}`` | ``[val_accuracy: max, flops: min]`` → a list of Objective mappings."""
    items = v if isinstance(v, list) else [v]
    out: list[Any] = []
    for item in items:
        if isinstance(item, str):
            out.append({"name": item})
        elif isinstance(item, dict) and len(item) == 1 and "name" not in item:
            (name, direction), = item.items()
            out.append({"name": name, "direction": direction})
        else:
            out.append(item)
    return out


class PrunerSpec(_Section):
    """Stopping unpromising trials early from their per-epoch values (single objective only)."""

    name: Literal["median", "hyperband", "none"] = Field(default="median", description="median (Optuna's "
                                                         "MedianPruner), hyperband, or none.")
    startup_trials: NonNegativeInt = Field(default=5, description="median: trials that finish before any is pruned.")
    warmup_epochs: NonNegativeInt = Field(default=0, description="median: epochs a trial runs before it may be pruned.")
    min_epochs: PositiveInt = Field(default=1, description="hyperband: the smallest number of epochs a trial gets.")
    reduction_factor: int = Field(default=3, ge=2, description="hyperband: 1/reduction_factor of the trials go "
                                  "on to each next rung.")


class SamplerSpec(_Section):
    """How the next trial's parameters are chosen."""

    name: Literal["auto", "tpe", "random", "nsga2"] = Field(
        default="auto", description="tpe (Optuna's TPESampler), random, nsga2 (NSGA-II), or auto: tpe for one "
                                    "objective, nsga2 for several.")
    startup_trials: NonNegativeInt = Field(default=10, description="tpe: random trials before the model-based ones.")
    population: PositiveInt | None = Field(default=None, ge=2, description="nsga2: the population size "
                                           "(default: trials/4, between 4 and 50).")


class BudgetSpec(_Section):
    """Limits checked on the validated graph before training: a trial over budget is pruned and costs nothing."""

    max_params: PositiveInt | None = Field(default=None, description="Most parameters a sampled model may have.")
    max_flops: PositiveFloat | None = Field(default=None, description="Most forward FLOPs per sample.")
    max_latency_ms: PositiveFloat | None = Field(default=None, description="Most inference latency for one sample "
                                                 "(ms, the profiler's timing on the untrained model).")


def _named(v: Any) -> Any:
    return {"name": v} if isinstance(v, str) else v


class SearchSpec(_Section):
    """The ``search:`` section: what ``layerforge search`` optimises and over which values (docs/search.md).
    A spec with it stays an ordinary spec: ``layerforge train`` ignores the section."""

    objective: Annotated[list[Objective], BeforeValidator(_objectives)] = Field(
        default_factory=list, description="What to optimise: a metric name, {name: max|min}, or a list of them "
        "for several objectives (a Pareto front). Default: val_loss (or loss without a validation split).",
        json_schema_extra=lambda s: _also(s, {"type": "string"}))
    trials: PositiveInt = Field(default=20, description="Trials in the study in all (finished ones, pruned "
                                "included; --trials overrides it).")
    sampler: Annotated[SamplerSpec, BeforeValidator(_named)] = Field(
        default_factory=SamplerSpec, description="tpe, random, nsga2 or auto; or a mapping with options.",
        json_schema_extra=lambda s: _also(s, {"type": "string"}))
    pruner: Annotated[PrunerSpec | None, BeforeValidator(_named)] = Field(
        default=None, description="median, hyperband or none; or a mapping with options (default: median for one "
        "objective reported per epoch, none otherwise).", json_schema_extra=lambda s: _also(s, {"type": "string"}))
    seed: int | None = Field(default=None, description="Seed of the sampler (default: the spec's seed). Every "
                             "trial trains with the spec's own seed.")
    budget: BudgetSpec = Field(default_factory=BudgetSpec, description="Limits checked before training.")
    space: dict[str, ParamSpec] = Field(min_length=1, description="Dotted spec path (as for --set; layers by name "
                                        "or index) → the values to try there.")

    @model_validator(mode="after")
    def _objectives_and_pruner(self) -> "SearchSpec":
        names = [o.name for o in self.objective]
        for n in names:
            if not _NAME.match(n):
                raise ValueError(f"objective '{n}' is not a metric name (letters, digits and '_')")
        dup = next((n for i, n in enumerate(names) if n in names[:i]), None)
        if dup is not None:
            raise ValueError(f"objective '{dup}' is listed twice")
        if len(names) > 1 and self.pruner is not None and self.pruner.name != "none":
            raise ValueError(f"pruner {self.pruner.name} works with one objective only; this search has "
                             f"{len(names)} ({', '.join(names)}): remove 'pruner' or set pruner: none")
        return self

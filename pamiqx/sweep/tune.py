"""``pamiqx tune TUNE.toml``: the same search budget for every variant, the best settings as files.

For each variant (one after another, each with the whole cluster) a Ray Tune
``Tuner`` samples ``tune.trials`` settings from the variant's search space
(:mod:`pamiqx.sweep.space`) with Tune's ``BasicVariantGenerator`` (random
search) or ``OptunaSearch`` (``search = "optuna"``, when optuna is installed).
A trial runs its settings on every tuning seed in turn (:func:`tune_trial`),
reporting ``step_total`` (steps over its seeds so far) and the metric, so ASHA
stops the weak ones at the same step of the same seed for every trial. The
best trial that ran every seed (highest mean final metric) becomes the
variant's tuned experiment file (:mod:`pamiqx.sweep.tuned_files`), and a sweep
file evaluates them all on fresh seeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from pamiqx.sweep.errors import SweepError
from pamiqx.sweep.expand import TrialSpec
from pamiqx.sweep.values import override

__all__ = ["run_tune", "tune_trial"]


def tune_trial(config: dict[str, Any]) -> None:
    """The Tune function trainable of ``pamiqx tune``: one sample of settings, every tuning seed.

    Args:
        config: ``{"trial": TrialSpec.to_config(), "params": {key: value}, "seeds": [...],
            "metric": name}``.
    """
    from ray import tune

    from pamiqx.sweep.trial import execute

    spec = TrialSpec.from_config(config["trial"])
    params: dict[str, Any] = config["params"]
    seeds: list[int] = config["seeds"]
    metric: str = config["metric"]
    base = Path(spec.log_root) / tune.get_context().get_trial_id()
    finals: list[float] = []
    last: dict[str, Any] = {}
    # ASHA ends a trial when step_total reaches max_t (every seed's steps): the last
    # step is reported once, by the final report that carries the score.
    total = len(seeds) * spec.max_steps
    for done, seed in enumerate(seeds):
        log_root = base / f"seed={seed}"
        overrides = [
            *(o for o in spec.overrides if not o.startswith("run.log_dir=")),
            *(override(k, v) for k, v in params.items()),
            override("seed", seed),
            override("run.log_dir", str(log_root)),
        ]
        offset = done * spec.max_steps

        def report(metrics: dict[str, Any], offset: int = offset, done: int = done) -> None:
            nonlocal last
            last = {**metrics, "step_total": offset + int(metrics["step"]), "seeds_done": done}
            if last["step_total"] < total:
                tune.report(last)

        outcome = execute(
            spec.experiment, overrides, log_root, spec.name, spec.max_steps, report, spec.workdir
        )
        value = outcome.result.get(metric)
        finals.append(float(value) if isinstance(value, int | float) else math.nan)
    tune.report({**last, "seeds_done": len(seeds), "score": sum(finals) / len(finals)})


def _search_algorithm(name: str, seed: int, max_concurrent: int) -> Any:
    """Tune's search algorithm for ``tune.search``, running at most ``max_concurrent`` (0: any)."""
    if name == "optuna":
        try:
            from ray.tune.search import ConcurrencyLimiter
            from ray.tune.search.optuna import OptunaSearch

            optuna = OptunaSearch(metric="score", mode="max", seed=seed)
            return ConcurrencyLimiter(optuna, max_concurrent) if max_concurrent else optuna
        except (ImportError, AssertionError):
            raise SweepError(
                "key 'tune.search': 'optuna' needs the optuna package (pip install optuna); "
                "'random' needs nothing."
            ) from None
    from ray.tune.search import BasicVariantGenerator

    return BasicVariantGenerator(random_state=seed, max_concurrent=max_concurrent)


def run_tune(
    file: Path,
    storage: Path | None = None,
    address: str | None = None,
    overrides: Sequence[str] = (),
    console: Console | None = None,
) -> int:
    """Tune every variant of a tune file and write the tuned experiments.

    Args:
        file: The tune file.
        storage: Its storage folder (None: the file's ``storage`` or ``logs/sweeps/<name>``).
        address: A Ray cluster, or None for an embedded local Ray.
        overrides: ``KEY=VALUE`` overrides for every run.
        console: Where the report goes.

    Returns:
        0 when every variant has tuned settings, 1 otherwise.

    Raises:
        SweepError: The tune file, a variant's experiment or a search space is invalid.
    """
    from pamiqx.plugins.manager import load_plugins
    from pamiqx.sweep.driver import check_cluster, ray_session
    from pamiqx.sweep.expand import expand, storage_dir, validate
    from pamiqx.sweep.space import to_tune, variant_space
    from pamiqx.sweep.spec import load_sweep_file
    from pamiqx.sweep.tuned_files import Budget, Tuned, write_outputs

    console = console or Console(emoji=False, highlight=False)
    sweep = load_sweep_file(file, tune=True)
    settings = sweep.tune
    assert settings is not None
    folder = storage_dir(sweep, storage)
    manager = load_plugins()
    runs = expand(sweep, folder, overrides)
    trials = validate(sweep, runs, manager)
    spaces = {
        run.key: variant_space(
            sweep.path,
            run.experiment,
            run.overrides,
            settings.space,
            settings.plugin_spaces,
            manager,
        )
        for run in runs
    }
    steps = {t.max_steps for t in trials}
    if len(steps) != 1:
        raise SweepError(
            f"{sweep.path}: key 'set.run.max_steps': the variants run {sorted(steps)} steps; "
            "set one run length for all of them, so that each gets the same budget."
        )
    max_steps = steps.pop()
    budget = Budget(
        trials=settings.trials,
        max_steps=max_steps,
        seeds=settings.seeds,
        grace_steps=min(settings.grace_steps or max(max_steps // 4, 1), max_steps),
        reduction_factor=settings.reduction_factor,
        search=settings.search,
        metric=settings.metric,
    )
    out = Path(settings.out).absolute() if settings.out else folder / "tuned"
    console.print(f"tune {sweep.name}: {len(trials)} variants; {budget.describe()}", markup=False)
    outcomes = []
    with ray_session(address):
        check_cluster(trials, sweep.resources)
        for trial in trials:
            space = spaces[trial.key]
            best, score, completed = _tune_variant(trial, space, budget, sweep, folder, to_tune)
            variant = trial.variant or trial.key
            shown = (
                "no trial ran every seed" if best is None else f"best {budget.metric} {score:.4g}"
            )
            console.print(
                f"  {variant}: {shown} ({completed}/{budget.trials} complete)", markup=False
            )
            run = next(r for r in runs if r.key == trial.key)
            variant_keys = next((v.keys for v in sweep.variants if v.name == trial.variant), {})
            outcomes.append(
                Tuned(
                    variant=variant,
                    experiment=run.experiment,
                    keys=dict(variant_keys),
                    space={k: d.describe() for k, (d, _) in space.items()},
                    best=best,
                    score=score,
                    completed=completed,
                )
            )
    written = write_outputs(sweep, outcomes, budget, settings.eval_seeds, out)
    console.print(written[-1].read_text(), markup=False)
    for path in written:
        console.print(f"wrote {path}", markup=False)
    return 0 if all(o.best is not None for o in outcomes) else 1


def _tune_variant(
    trial: TrialSpec,
    space: dict[str, Any],
    budget: Any,
    sweep: Any,
    folder: Path,
    to_tune: Any,
) -> tuple[dict[str, Any] | None, float | None, int]:
    """Run one variant's Tuner; return its best settings, their score and the complete trials."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from pamiqx.sweep.driver import trial_resources

    resources = sweep.resources
    tuner = tune.Tuner(
        tune.with_resources(tune_trial, trial_resources(resources)),
        param_space={
            "trial": trial.to_config(),
            "params": {key: to_tune(domain) for key, (domain, _) in space.items()},
            "seeds": list(budget.seeds),
            "metric": budget.metric,
        },
        tune_config=tune.TuneConfig(
            num_samples=budget.trials,
            scheduler=ASHAScheduler(
                time_attr="step_total",
                metric=budget.metric,
                mode="max",
                max_t=budget.max_steps * len(budget.seeds),
                grace_period=budget.grace_steps,
                reduction_factor=budget.reduction_factor,
            ),
            # The search algorithm limits concurrency (Tune ignores max_concurrent_trials
            # beside a BasicVariantGenerator).
            search_alg=_search_algorithm(budget.search, 0, resources.max_concurrent or 0),
            reuse_actors=True,  # as pamiqx sweep: the worker is reused, each run is a process
        ),
        run_config=tune.RunConfig(
            name=f"tune-{trial.key}",
            storage_path=str(folder / "ray"),
            failure_config=tune.FailureConfig(max_failures=resources.max_failures),
            verbose=0,
        ),
    )
    results = tuner.fit()
    complete = [
        r
        for r in (results[i] for i in range(len(results)))
        if r.error is None
        and r.metrics
        and r.metrics.get("seeds_done") == len(budget.seeds)
        and isinstance(r.metrics.get("score"), int | float)
        and not math.isnan(r.metrics["score"])
    ]
    if not complete:
        return None, None, 0
    best = max(complete, key=lambda r: float((r.metrics or {})["score"]))
    assert best.config is not None and best.metrics is not None
    return dict(best.config["params"]), float(best.metrics["score"]), len(complete)

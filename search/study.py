"""The Optuna study: storage, sampler, creating or resuming a study, and running one worker.

* Storage: an Optuna RDB storage URL. The default is a SQLite file in the output folder
  (``sqlite:///OUT/search.db``): every trial is committed as it ends, so a killed search
  restarted with the same command continues the same study. For several workers on several
  machines, every worker is given the URL of one database server they all reach
  (``postgresql://user:password@host/db``, ``mysql+pymysql://...``). Workers send a heartbeat;
  a trial whose worker died (killed, machine lost) is marked failed after
  :data:`GRACE_SECONDS` and its candidate queued again once.
* Sampler: multi-objective TPE by default (Optuna's ``TPESampler`` with ``multivariate`` and
  ``group``, which model the conditional space: the number of blocks decides which block
  parameters exist), with the board's budgets as constraints; ``nsga2`` picks Optuna's NSGA-II.
  TPE is the default because a trial costs minutes: a few dozen trials are a whole search,
  which is less than one NSGA-II generation of the usual size. ``brute`` (Optuna's
  ``BruteForceSampler``) draws every candidate of a small space once, in a random order, and
  stops the study when none is left: on a space of a few dozen candidates TPE soon proposes
  measured ones again, and the worker stops after :data:`MAX_REPEATS` of them in a row.
* A study remembers what it searches (:func:`study_config`: board, space, recipe, data slice,
  limits); resuming it with different settings is refused, so one study never mixes two searches.
"""

from __future__ import annotations

import os
import random
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.errors import CheckError, InputError, first_line
from search.trial import OBJECTIVES

__all__ = [
    "SAMPLERS",
    "HEARTBEAT_SECONDS",
    "GRACE_SECONDS",
    "default_storage",
    "redact",
    "open_storage",
    "make_sampler",
    "open_study",
    "run_worker",
    "count_states",
    "worker_seed",
]

SAMPLERS = ("tpe", "nsga2", "brute")
HEARTBEAT_SECONDS = 30
GRACE_SECONDS = 120
MAX_REPEATS = 20
_OPEN_ATTEMPTS = 3
CONFIG_KEY = "search_config"


def default_storage(out: Path) -> str:
    """``sqlite:///OUT/search.db`` (a path relative to the current folder stays relative)."""
    return f"sqlite:///{(out / 'search.db').as_posix()}"


def redact(url: str) -> str:
    """The storage URL without its password (for reports and messages)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url


def open_storage(url: str) -> Any:
    """An Optuna RDB storage with heartbeats (a dead worker's trial is failed and retried once).

    Raises:
        InputError: the URL is not an RDB URL Optuna can open (unknown scheme, missing driver,
            unreachable server, unwritable SQLite folder).
    """
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    if "://" not in url:
        raise InputError(f"--storage {redact(url)}: expected a database URL such as sqlite:///search.db or postgresql://host/db")
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise InputError(f"--storage {url}: cannot create {path.parent} ({err.strerror or err})") from None
        # Several local workers share one file: wait for the lock instead of failing at once.
        engine_kwargs["connect_args"] = {"timeout": 120}
    last: Exception | None = None
    for attempt in range(_OPEN_ATTEMPTS):
        try:
            return RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=HEARTBEAT_SECONDS,
                grace_period=GRACE_SECONDS,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
            )
        except (ImportError, ModuleNotFoundError) as err:
            hint = " (pip install '.[postgres]')" if url.startswith("postgresql") else ""
            raise InputError(f"--storage {redact(url)}: the database driver is not installed{hint}: {first_line(err)}") from None
        except Exception as err:  # sqlalchemy's own errors: bad URL, unreachable server, schema race
            # Workers that start together on an empty database race to create Optuna's tables;
            # the losers find them created on the next attempt.
            last = err
            time.sleep(1.0 + attempt)
    detail = f" ({first_line(last)})" if last is not None else ""
    raise InputError(f"--storage {redact(url)}: cannot open the study storage{detail}")


def make_sampler(name: str, *, startup_trials: int, seed: int | None) -> Any:
    """The sampler: multi-objective ``tpe`` or ``nsga2`` (both read the budgets from the trials'
    constraints), or ``brute`` (every candidate once, in an order drawn from ``seed``).

    Raises:
        InputError: unknown sampler.
    """
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if name == "tpe":
        return optuna.samplers.TPESampler(
            n_startup_trials=startup_trials,
            multivariate=True,
            group=True,
            constant_liar=True,
            seed=seed,
        )
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=max(2, startup_trials), seed=seed)
    if name == "brute":
        return optuna.samplers.BruteForceSampler(seed=seed)
    raise InputError(f"unknown sampler {name!r}: one of {', '.join(SAMPLERS)}")


def open_study(
    storage: Any, name: str, config: dict[str, Any], upgrade: Callable[[dict[str, Any]], dict[str, Any]] | None = None
) -> Any:
    """Create the study ``name``, or load it and check that it searches the same thing.

    Set its sampler afterwards (``study.sampler = make_sampler(...)``): the sampler's seed
    depends on the study (:func:`worker_seed`).

    Args:
        storage: from :func:`open_storage`.
        name: the study name.
        config: what the study searches (board, space, recipe, ...); stored on creation.
        upgrade: maps a stored config to today's form before the comparison (a study started by
            an older version lacks the fields added since, which mean their defaults).

    Returns:
        The ``optuna.Study``.

    Raises:
        InputError: the study exists with other settings, or other objectives.
    """
    import optuna

    # Errors only: a failed trial is reported by run_worker in one line, not with a traceback.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    directions = [direction for _, direction in OBJECTIVES]
    study = optuna.create_study(storage=storage, study_name=name, directions=directions, load_if_exists=True)
    if [d.name.lower() for d in study.directions] != directions:
        raise InputError(f"study {name!r} exists with other objectives; pick another --study-name")
    stored = study.user_attrs.get(CONFIG_KEY)
    if stored is None:
        study.set_user_attr(CONFIG_KEY, config)
        study.set_metric_names([key for key, _ in OBJECTIVES])
        return study
    if upgrade is not None:
        stored = upgrade(stored)
    changed = sorted(key for key in set(stored) | set(config) if stored.get(key) != config.get(key))
    if changed:
        raise InputError(
            f"study {name!r} was started with other settings ({', '.join(changed)} differ): "
            "resume it with the same options, or pick another --study-name"
        )
    return study


def count_states(study: Any) -> dict[str, int]:
    """Trials of the study per state name (``COMPLETE``, ``PRUNED``, ``FAIL``, ``RUNNING``, ...)."""
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


def run_worker(
    study: Any,
    objective: Callable[[Any], Any],
    *,
    trials: int,
    max_pruned: int,
    max_failures: int = 3,
    log: Callable[[str], None] = print,
) -> dict[str, int]:
    """Run trials until the study holds ``trials`` completed candidates (counting every worker's).

    A trial that met a candidate already measured (``duplicate_of``) completes with that
    candidate's figures but does not count: the study holds ``trials`` distinct candidates. When
    the sampler proposes :data:`MAX_REPEATS` measured candidates in a row, the space is taken as
    exhausted and the worker stops.

    Args:
        study: the study.
        objective: the trial function.
        trials: completed trials the study should reach.
        max_pruned: give up after this many pruned trials in this worker (the space hardly fits
            the board).
        max_failures: give up after this many failed trials in a row.
        log: prints one line.

    Returns:
        The study's trial counts per state at the end.

    Raises:
        InputError: ``max_pruned`` candidates in a row could not fit the board.
        CheckError: ``max_failures`` trials in a row failed.
    """
    from optuna.trial import TrialState

    def done() -> int:
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return sum(1 for trial in complete if "duplicate_of" not in trial.user_attrs)

    if done() >= trials:
        log(f"study {study.study_name!r} already has {done()} completed candidates (>= {trials}): no new trial")
        return count_states(study)
    tally = {"pruned": 0, "failed_in_a_row": 0, "repeats_in_a_row": 0, "stop": ""}

    def after(study_: Any, frozen: Any) -> None:
        if frozen.state == TrialState.PRUNED:
            tally["pruned"] += 1
        if frozen.state == TrialState.FAIL:
            tally["failed_in_a_row"] += 1
        elif frozen.state == TrialState.COMPLETE:
            tally["failed_in_a_row"] = 0
            repeat = "duplicate_of" in frozen.user_attrs
            tally["repeats_in_a_row"] = tally["repeats_in_a_row"] + 1 if repeat else 0
        if done() >= trials:
            study_.stop()
        elif tally["repeats_in_a_row"] >= MAX_REPEATS:
            log(f"the sampler proposed {MAX_REPEATS} measured candidates in a row: the space looks exhausted, stopping")
            study_.stop()
        elif tally["pruned"] >= max_pruned:
            tally["stop"] = "pruned"
            study_.stop()
        elif tally["failed_in_a_row"] >= max_failures:
            tally["stop"] = "failed"
            study_.stop()

    # A trial that raises is recorded as failed (Optuna keeps the first line of the error as its
    # fail_reason) and the worker goes on; max_failures in a row stop it.
    study.optimize(objective, n_trials=None, callbacks=[after], catch=(Exception,), gc_after_trial=True)
    if tally["stop"] == "pruned":
        raise InputError(
            f"gave up after {max_pruned} pruned candidates: the search space hardly fits this board "
            "(give a smaller --space, or raise --max-pruned)"
        )
    if tally["stop"] == "failed":
        raise CheckError(f"{max_failures} trials in a row failed; see the lines above")
    return count_states(study)


def worker_seed(seed: int, study: Any) -> int:
    """A sampler seed for this worker: the base seed, the study's size and the process id mixed,
    so restarted and parallel workers do not replay each other's random draws."""
    return random.Random(f"{seed}:{len(study.get_trials(deepcopy=False))}:{os.getpid()}").randrange(2**31)

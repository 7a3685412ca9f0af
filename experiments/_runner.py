r"""The experiment runner: run directories, checkpoints, resume, provenance and reports.

A run of experiment ``NAME`` lives in ``<out>/NAME/<UTC timestamp>/`` and holds

* ``config.json``: experiment name, seed, ``quick`` flag and the full config;
* ``status.json``: ``running`` / ``interrupted`` / ``failed`` / ``complete``, pid, the
  wall time of every session that worked on the run;
* ``checkpoints/`` and ``stages/``: what a resumed run picks up (see below);
* on completion ``metrics.json``, ``provenance.json``, ``report.md`` and the PNG figures.

**Resume.** Experiments make their progress durable through the :class:`RunContext`:
:meth:`RunContext.stage` caches a finished piece of work (e.g. one row of a table) as
JSON, and :meth:`RunContext.loop` runs a long iteration whose ``i``-th step uses the key
``fold_in(key, i)`` and checkpoints its state (any pytree of arrays) every ``every`` steps.
Because keys depend only on the step index, an interrupted run resumed from its last
checkpoint reproduces the metrics of an uninterrupted one exactly. A run resumes from
``--resume DIR``, or automatically: the latest unfinished run of the same experiment,
seed and config under ``<out>/NAME/`` whose process is no longer alive is continued
(``--fresh`` disables that).

**Safety.** Every file is written to a temporary name and renamed into place, a new run
never reuses an existing directory, and a completed run is never resumed or modified.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._config import ConfigError, apply_overrides, config_from_dict, config_to_dict
from ._provenance import provenance
from ._report import render_report, to_jsonable

__all__ = [
    "Checkpoint",
    "RunContext",
    "RunResult",
    "find_resumable",
    "run_experiment",
    "write_json_atomic",
]

#: Callables ``hook(checkpoint_name, step)`` called after every checkpoint save. A test
#: seam: the resume tests install one that raises ``KeyboardInterrupt`` to kill a run
#: right after a checkpoint, as a crash or Ctrl-C would.
CHECKPOINT_HOOKS: list[Callable[[str, int], None]] = []


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` through a temporary file and a rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False, allow_nan=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    with open(path) as f:
        return json.load(f)


class Checkpoint:
    """A pytree of arrays plus a step counter, saved atomically under the run directory.

    The file ``checkpoints/<name>.npz`` holds the leaves in ``jax.tree_util`` order; a
    restore needs a ``like`` pytree with the same structure, shapes and dtypes (the
    initial state), and refuses anything else with a clear error. Typed PRNG key arrays
    are stored as their key data and re-wrapped.
    """

    def __init__(self, directory: Path, name: str):
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"bad checkpoint name {name!r}")
        self.name = name
        self.path = Path(directory) / f"{name}.npz"

    def exists(self) -> bool:
        """Whether a checkpoint has been saved."""
        return self.path.exists()

    def save(self, step: int, tree: Any) -> None:
        """Save ``(step, tree)``; the previous checkpoint is replaced only once this is on disk."""
        import jax

        leaves = jax.tree_util.tree_leaves(tree)
        arrays = {}
        for i, leaf in enumerate(leaves):
            if _is_typed_key(leaf):
                leaf = jax.random.key_data(leaf)
            arrays[f"leaf_{i}"] = np.asarray(leaf)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.stem}.tmp{os.getpid()}.npz")
        np.savez(
            tmp, __step__=np.asarray(int(step)), __n_leaves__=np.asarray(len(leaves)), **arrays
        )
        os.replace(tmp, self.path)
        for hook in list(CHECKPOINT_HOOKS):
            hook(self.name, int(step))

    def restore(self, like: Any) -> tuple[int, Any] | None:
        """``(step, tree)`` from the last save, shaped like ``like``; ``None`` if never saved."""
        import jax
        import jax.numpy as jnp

        if not self.path.exists():
            return None
        leaves, treedef = jax.tree_util.tree_flatten(like)
        with np.load(self.path) as data:
            n = int(data["__n_leaves__"])
            if n != len(leaves):
                raise ValueError(
                    f"checkpoint {self.path} holds {n} leaves but the state has {len(leaves)}"
                )
            step = int(data["__step__"])
            restored = []
            for i, leaf in enumerate(leaves):
                arr = data[f"leaf_{i}"]
                if _is_typed_key(leaf):
                    ref = jax.random.key_data(leaf)
                    if arr.shape != ref.shape:
                        raise ValueError(f"checkpoint leaf {i}: shape {arr.shape} != {ref.shape}")
                    restored.append(jax.random.wrap_key_data(arr, impl=jax.random.key_impl(leaf)))
                    continue
                ref = np.asarray(leaf)
                if arr.shape != ref.shape or arr.dtype != ref.dtype:
                    raise ValueError(
                        f"checkpoint leaf {i}: {arr.shape} {arr.dtype} does not match the "
                        f"state's {ref.shape} {ref.dtype}"
                    )
                restored.append(jnp.asarray(arr) if isinstance(leaf, jax.Array) else arr)
        return step, jax.tree_util.tree_unflatten(treedef, restored)


def _is_typed_key(x: Any) -> bool:
    import jax

    dtype = getattr(x, "dtype", None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def uncached_stage(name: str, fn: Callable[[], Any]) -> Any:
    """The stage protocol of :meth:`RunContext.stage` without a cache, for a plain ``main()``.

    Returns ``fn()`` after the same JSON round trip, so a module sees the same values
    whether it runs under the runner or on its own.
    """
    del name
    return json.loads(json.dumps(to_jsonable(fn()), allow_nan=False))


@dataclasses.dataclass
class RunContext:
    """What an experiment's ``run(config, ctx)`` gets besides its config.

    Attributes:
        name: the experiment name.
        run_dir: the run directory (figures and checkpoints go here).
        seed: the run's seed; :attr:`key` is ``jax.random.PRNGKey(seed)``.
        quick: whether this is the ``--quick`` setting.
        progress: whether to show tqdm bars.
        resumed: whether this session continues an earlier, interrupted one.
        timings: ``{label: seconds}`` an experiment may fill; they go to
            ``provenance.json`` and the report, not to ``metrics.json`` (wall times differ
            from run to run, metrics must not).
    """

    name: str
    run_dir: Path
    seed: int
    quick: bool = False
    progress: bool = True
    resumed: bool = False
    figures: list[str] = dataclasses.field(default_factory=list)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def key(self):
        """The root PRNG key of the run (split or ``fold_in`` it; never reuse it)."""
        import jax.random as jr

        return jr.PRNGKey(self.seed)

    def log(self, message: str) -> None:
        """Print a progress message (goes to the terminal, not into results)."""
        print(f"[{self.name}] {message}", flush=True)

    def save_figure(self, fig: Any, name: str) -> Path:
        """Save a matplotlib figure as ``<run_dir>/<name>.png`` (atomically) and close it."""
        import matplotlib.pyplot as plt

        if not name.endswith(".png"):
            name = f"{name}.png"
        path = self.run_dir / name
        tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.png")
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
        plt.close(fig)
        os.replace(tmp, path)
        if name not in self.figures:
            self.figures.append(name)
        return path

    def checkpoint(self, name: str) -> Checkpoint:
        """The named :class:`Checkpoint` of this run."""
        return Checkpoint(self.run_dir / "checkpoints", name)

    def stage(self, name: str, fn: Callable[[], Any]) -> Any:
        """Run ``fn()`` once per run and cache its JSON-able result under ``stages/``.

        A resumed run returns the cached result without calling ``fn``. The returned value
        is always the JSON round trip, so a fresh and a resumed run see identical values.
        """
        path = self.run_dir / "stages" / f"{name}.json"
        if path.exists():
            return _read_json(path)
        value = uncached_stage(name, fn)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, value)
        return value

    def loop(
        self,
        key: Any,
        body_fn: Callable[[Any, Any, int], Any],
        state: Any,
        n_iters: int,
        *,
        name: str,
        every: int = 1,
        desc: str | None = None,
    ) -> Any:
        r"""Resumable ``for i in range(n_iters): state = body_fn(fold_in(key, i), state, i)``.

        The state is checkpointed every ``every`` iterations and after the last one; a
        resumed run restores the latest checkpoint and continues from its step. As the
        ``i``-th key depends only on ``i``, the result does not depend on where the run
        was interrupted. ``body_fn`` should be a jitted function of fixed shapes (one
        compile); a tqdm bar shows progress.
        """
        import jax.random as jr
        from tqdm.auto import tqdm

        n_iters = int(n_iters)
        if n_iters <= 0:
            raise ValueError(f"n_iters must be positive, got {n_iters}")
        if every <= 0:
            raise ValueError(f"every must be positive, got {every}")
        ckpt = self.checkpoint(name)
        start = 0
        restored = ckpt.restore(state)
        if restored is not None:
            start, state = restored
            if start > n_iters:
                raise ValueError(f"checkpoint {name} is at step {start} > n_iters={n_iters}")
        with tqdm(
            total=n_iters, initial=start, desc=desc or name, disable=not self.progress
        ) as bar:
            for i in range(start, n_iters):
                state = body_fn(jr.fold_in(key, i), state, i)
                bar.update(1)
                if (i + 1) % every == 0 or i + 1 == n_iters:
                    ckpt.save(i + 1, state)
        return state


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What :func:`run_experiment` returns: the run directory and the metrics written there."""

    run_dir: Path
    metrics: dict[str, Any]
    resumed: bool


def _timestamp() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def _new_run_dir(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    stamp = _timestamp()
    for i in range(1000):
        candidate = root / (stamp if i == 0 else f"{stamp}-{i}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise RuntimeError(f"could not create a fresh run directory under {root}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_live(status: Mapping[str, Any]) -> bool:
    """Whether another live process on this host is working on the run."""
    if status.get("state") != "running":
        return False
    if status.get("host") != socket.gethostname():
        return True
    pid = status.get("pid")
    return isinstance(pid, int) and pid != os.getpid() and _pid_alive(pid)


def find_resumable(root: Path, record: Mapping[str, Any]) -> Path | None:
    """The latest unfinished, not-running run under ``root`` whose ``config.json`` equals ``record``."""
    root = Path(root)
    if not root.is_dir():
        return None
    for run_dir in sorted((p for p in root.iterdir() if p.is_dir()), reverse=True):
        cfg_path, status_path = run_dir / "config.json", run_dir / "status.json"
        if not cfg_path.exists() or not status_path.exists():
            continue
        try:
            cfg, status = _read_json(cfg_path), _read_json(status_path)
        except (OSError, json.JSONDecodeError):
            continue
        if cfg != dict(record) or status.get("state") == "complete" or _is_live(status):
            continue
        return run_dir
    return None


def run_experiment(
    name: str,
    *,
    quick: bool = False,
    seed: int = 0,
    out: str | os.PathLike = "results",
    overrides: Sequence[str] = (),
    resume: str | os.PathLike | None = None,
    auto_resume: bool = True,
    progress: bool = True,
) -> RunResult:
    """Run (or resume) the registered experiment ``name`` and write its results.

    Args:
        name: a name from :func:`experiments.registry.names`.
        quick: use ``Config.quick()`` instead of ``Config()``.
        seed: the run's seed (recorded; the root key is ``PRNGKey(seed)``).
        out: the results root; the run goes to ``<out>/<name>/<timestamp>/``.
        overrides: ``key=value`` strings applied to the config, parsed by field type.
        resume: a run directory to continue; its stored config and seed are used.
        auto_resume: continue the latest unfinished run of the same config if one exists.
        progress: show tqdm bars.

    Returns:
        :class:`RunResult` with the run directory and the metrics.

    Raises:
        ConfigError: unknown experiment, bad override, or a ``resume`` directory that does
            not belong to this experiment or is already complete.
    """
    import jax

    from .registry import get

    spec = get(name)
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / "config.json").exists():
            raise ConfigError(f"--resume {run_dir}: no config.json there")
        record = _read_json(run_dir / "config.json")
        if record.get("experiment") != name:
            raise ConfigError(
                f"--resume {run_dir}: that run is of {record.get('experiment')!r}, not {name!r}"
            )
        status = _read_json(run_dir / "status.json") if (run_dir / "status.json").exists() else {}
        if status.get("state") == "complete":
            raise ConfigError(f"--resume {run_dir}: that run is complete; results are kept as is")
        if _is_live(status):
            raise ConfigError(f"--resume {run_dir}: process {status.get('pid')} is running it")
        if overrides:
            raise ConfigError("--resume takes the config from the run directory; drop overrides")
        config = config_from_dict(spec.config_cls, record["config"])
        seed, quick = int(record["seed"]), bool(record["quick"])
        resumed = True
    else:
        config = spec.config_cls.quick() if quick else spec.config_cls()
        config = apply_overrides(config, overrides)
        record = {
            "experiment": name,
            "seed": int(seed),
            "quick": bool(quick),
            "config": config_to_dict(config),
        }
        root = Path(out) / name
        found = find_resumable(root, record) if auto_resume else None
        if found is not None:
            run_dir, resumed = found, True
            status = _read_json(run_dir / "status.json")
        else:
            run_dir, resumed, status = _new_run_dir(root), False, {}
            write_json_atomic(run_dir / "config.json", record)

    sessions = list(status.get("sessions", []))
    started = _dt.datetime.now(_dt.UTC).isoformat()
    base_status = {"host": socket.gethostname(), "pid": os.getpid(), "sessions": sessions}
    write_json_atomic(
        run_dir / "status.json", {"state": "running", "started": started, **base_status}
    )
    if resumed and progress:
        print(f"[{name}] resuming {run_dir}", flush=True)

    jax.config.update("jax_enable_x64", True)
    ctx = RunContext(
        name=name, run_dir=run_dir, seed=int(seed), quick=quick, progress=progress, resumed=resumed
    )
    t0 = time.perf_counter()
    try:
        metrics = to_jsonable(spec.run_fn(config, ctx))
    except BaseException as err:
        state = "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
        sessions.append({"started": started, "wall_time_s": time.perf_counter() - t0, "end": state})
        write_json_atomic(
            run_dir / "status.json",
            {"state": state, "error": f"{type(err).__name__}: {err}", **base_status},
        )
        raise
    wall = time.perf_counter() - t0
    sessions.append({"started": started, "wall_time_s": wall, "end": "complete"})
    total = sum(float(s["wall_time_s"]) for s in sessions)
    prov = provenance()
    prov.update(
        {
            "experiment": name,
            "seed": int(seed),
            "quick": bool(quick),
            "wall_time_s": total,
            "sessions": sessions,
            "resumed": resumed,
            "finished": _dt.datetime.now(_dt.UTC).isoformat(),
            "figures": list(ctx.figures),
            "timings": dict(ctx.timings),
        }
    )
    if not isinstance(metrics, dict):
        raise TypeError(f"{name}.run must return a dict of metrics, got {type(metrics).__name__}")
    figures = sorted(p.name for p in run_dir.glob("*.png"))
    write_json_atomic(run_dir / "metrics.json", metrics)
    write_json_atomic(run_dir / "provenance.json", prov)
    run_info = {
        "seed": int(seed),
        "quick": bool(quick),
        "wall time (s)": round(total, 2),
        "resumed": resumed,
        "git commit": prov["git"]["commit"],
        "git dirty": prov["git"]["dirty"],
        "jax devices": ", ".join(prov["jax_devices"]),
        "finished": prov["finished"],
        **{f"time: {k}": round(float(v), 2) for k, v in ctx.timings.items()},
    }
    report = render_report(
        name=name,
        description=spec.description,
        record=record,
        metrics=metrics,
        run_info=run_info,
        figures=figures,
    )
    _write_text_atomic(run_dir / "report.md", report)
    write_json_atomic(run_dir / "status.json", {"state": "complete", **base_status})
    return RunResult(run_dir=run_dir, metrics=metrics, resumed=resumed)

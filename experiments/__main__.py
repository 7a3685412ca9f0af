"""Command line: ``python -m experiments run NAME [...]`` and ``python -m experiments list``.

Examples::

    python -m experiments list
    python -m experiments run headline                 # the full setting (make run)
    python -m experiments run headline --quick --seed 1 n_chains=64
    python -m experiments run headline --resume results/headline/20261123T110000Z
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._config import ConfigError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m experiments", description="Reproducible stochthermo experiments."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the registered experiments")
    show = sub.add_parser("show", help="print an experiment's config (after overrides)")
    show.add_argument("name")
    show.add_argument("--quick", action="store_true")
    show.add_argument("overrides", nargs="*", metavar="key=value")
    run = sub.add_parser("run", help="run an experiment")
    run.add_argument("name")
    run.add_argument("--quick", action="store_true", help="the small setting")
    run.add_argument("--seed", type=int, default=0, help="root seed (default 0)")
    run.add_argument("--out", default="results", help="results root (default results/)")
    run.add_argument("--resume", metavar="DIR", help="continue the run in DIR")
    run.add_argument(
        "--fresh",
        action="store_true",
        help="start a new run even if an unfinished run of the same config exists",
    )
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for a bad experiment name or override)."""
    parser = _parser()
    # Overrides may come before or after the options; argparse leaves the late ones over.
    args, extra = parser.parse_known_args(argv)
    late = [e for e in extra if "=" in e and not e.startswith("-")]
    if len(late) != len(extra) or (late and args.command not in {"run", "show"}):
        parser.error(f"unrecognized arguments: {' '.join(e for e in extra if e not in late)}")
    if late:
        args.overrides = [*args.overrides, *late]
    from . import registry

    if args.command == "run" and args.name in registry.ONE_CPU_THREAD:
        # before anything imports the experiment (a module-level array starts JAX)
        # (in a process that has run JAX already, e.g. a test calling main, the pool stays)
        from thermo.cpu import _backends_initialized, use_one_cpu_thread

        if not _backends_initialized():
            use_one_cpu_thread()

    try:
        if args.command == "list":
            for name in registry.names():
                try:
                    doc = registry.get(name).description.splitlines()
                    summary = doc[0] if doc else ""
                except ImportError as err:
                    summary = f"(cannot import: {err})"
                print(f"{name:28s} {summary}")
            return 0
        if args.command == "show":
            import dataclasses
            import json

            from ._config import apply_overrides, config_to_dict

            spec = registry.get(args.name)
            cfg = spec.config_cls.quick() if args.quick else spec.config_cls()
            cfg = apply_overrides(cfg, args.overrides)
            types = {f.name: str(f.type) for f in dataclasses.fields(cfg)}
            data = config_to_dict(cfg)
            print(
                json.dumps({k: {"value": v, "type": types[k]} for k, v in data.items()}, indent=2)
            )
            return 0
        from ._runner import run_experiment

        result = run_experiment(
            args.name,
            quick=args.quick,
            seed=args.seed,
            out=args.out,
            overrides=args.overrides,
            resume=args.resume,
            auto_resume=not args.fresh,
            progress=not args.no_progress,
        )
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print((result.run_dir / "report.md").read_text())
    print(f"results written to {result.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

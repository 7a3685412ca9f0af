"""Run the README's Python blocks as written: ``python -m experiments.readme_tour``.

Every fenced ``python`` block of ``README.md`` is written to a temporary file and run in
a fresh interpreter from the repository root, one block after another (each block is
self-contained, as a reader would paste it). A block that raises fails the check with
its traceback; the wall time of each block is printed. ``make tour`` runs it, and so
does ``.ci/run``, so the README's tour cannot drift from the code.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(text: str) -> list[str]:
    """The fenced ``python`` blocks of a Markdown text, in order."""
    return _BLOCK.findall(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", default=str(ROOT / "README.md"), help="Markdown file")
    args = parser.parse_args(argv)
    readme = Path(args.readme)
    if not readme.is_file():
        print(f"readme_tour: {readme} does not exist", file=sys.stderr)
        return 2
    blocks = python_blocks(readme.read_text())
    if not blocks:
        print(f"readme_tour: no ```python blocks in {readme}", file=sys.stderr)
        return 2
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, block in enumerate(blocks):
            path = Path(tmp) / f"block{i}.py"
            path.write_text(block)
            t0 = time.perf_counter()
            env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's packages
            proc = subprocess.run(
                [sys.executable, str(path)], cwd=ROOT, env=env, capture_output=True, text=True
            )
            dt = time.perf_counter() - t0
            first = block.strip().splitlines()[0]
            status = "ok" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
            print(f"block {i} ({len(block.splitlines())} lines, {first!r}): {status} in {dt:.0f} s")
            if proc.returncode != 0:
                failed += 1
                print(proc.stderr[-4000:], file=sys.stderr)
    print(f"readme_tour: {len(blocks) - failed}/{len(blocks)} blocks ran as written")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

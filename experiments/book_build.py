"""Build the book with warnings as errors, then check the HTML: ``python -m experiments.book_build``.

1. ``jupyter-book build -W -n --keep-going --all book``: every chapter (a MyST markdown
   notebook) is executed from scratch (``execute_notebooks: force``,
   ``allow_errors: false``), and any Sphinx warning — a broken reference, a missing
   citation, a failing cell — fails the build.
2. The built HTML is checked: every page in ``_toc.yml`` was rendered, every notebook
   chapter shows at least one PNG figure (``<img>`` tags whose PNG file exists in the
   build or whose source is inline ``data:image/png``), no referenced PNG is missing,
   and no cell output shows a traceback.
3. Every page is rendered in headless Chromium with the network off
   (:mod:`experiments.book_browser`): raw TeX left by MathJax, a MathJax error, an image
   that does not load, a Python traceback or any ``http(s)`` request fails the check, and
   a full-page screenshot of each page goes to ``book/_build/screenshots/``. Without
   Chromium the check fails (``--no-browser`` skips it explicitly).
4. The execution time of each chapter (from the build log) is printed and stored in
   ``book/_build/exec_times.json``; chapters over the two-minute budget are flagged.
5. Bibliography: Sphinx reads only ``book/references.bib``; each chapter author adds
   entries to ``book/bib/<name>.bib`` and the editor merges them, deduplicated by key,
   with ``--merge-bib`` (the build lists entries not merged yet; a citation of a missing
   key fails the build as an unresolved reference).

Other modes: ``--execute book/chapters/NN_name.md`` runs one chapter from scratch and
prints its time (no build); ``--check-only`` checks an existing build (HTML and browser).

The build needs no network and neither does the book: no intersphinx inventories and
no remote assets are fetched, and MathJax 3 is bundled from a dependency
(``sphinx-mathjax-offline`` copies it to ``_build/html/_static/mathjax``); the static
check fails on any page that loads a script or stylesheet from ``http(s)://``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from experiments._jax_cache import cache_environment

__all__ = [
    "bib_entries",
    "check_html",
    "execute_chapter",
    "main",
    "merge_bibliographies",
    "notebook_chapters",
    "toc_files",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
BOOK = REPO_ROOT / "book"
CHAPTER_BUDGET_S = 120.0

_IMG = re.compile(r"<img\b[^>]*?\bsrc=\"([^\"]+)\"", re.IGNORECASE)
# <script> and <link> tags; a remote URL is http(s) or scheme-relative (//host/...).
_TAG = re.compile(r"<(script|link)\b[^>]*>", re.IGNORECASE)
_ATTR = re.compile(r"\b(src|href|rel)=\"([^\"]*)\"", re.IGNORECASE)
_FETCHED_LINKS = {"stylesheet", "preload", "modulepreload", "icon", "manifest"}
# A local script: no scheme (http:, data:, ...) and not scheme-relative; the query is cut.
_LOCAL_SCRIPT = re.compile(
    r"<script\b[^>]*?\bsrc=\"(?![A-Za-z][A-Za-z0-9+.-]*:|//)([^\"?#]+)", re.IGNORECASE
)
_EXEC = re.compile(r"(\S+\.(?:md|ipynb)): Executed notebook in ([0-9.]+) seconds")


def toc_files(book: Path = BOOK) -> list[str]:
    """Every document of ``_toc.yml`` (root, chapters, sections), without extension."""
    import yaml

    toc = yaml.safe_load((book / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    walk(toc.get("chapters"))
    for part in toc.get("parts", []) or []:
        walk(part.get("chapters"))
    return [str(Path(f).with_suffix("")) for f in files]


def notebook_chapters(book: Path = BOOK) -> list[str]:
    """The toc documents that are MyST notebooks (front matter with a ``kernelspec``)."""
    found = []
    for doc in toc_files(book):
        path = book / f"{doc}.md"
        if path.exists():
            head = path.read_text().split("---", 2)
            if len(head) == 3 and "kernelspec:" in head[1]:
                found.append(doc)
    return found


def _remote_loads(text: str) -> list[str]:
    """The remote URLs a page fetches as it loads: ``<script src>`` and fetched ``<link>``."""
    urls = []
    for match in _TAG.finditer(text):
        attrs = {k.lower(): v for k, v in _ATTR.findall(match.group(0))}
        url = attrs.get("src") or attrs.get("href") or ""
        if not re.match(r"(?:https?:)?//", url, re.IGNORECASE):
            continue
        if match.group(1).lower() == "link" and not _FETCHED_LINKS & set(
            attrs.get("rel", "").lower().split()
        ):
            continue
        urls.append(url)
    return urls


def check_html(book: Path = BOOK) -> list[str]:
    """Problems with the built HTML (empty when every page and figure is there)."""
    html = book / "_build" / "html"
    problems = []
    notebooks = set(notebook_chapters(book))
    for doc in toc_files(book):
        page = html / f"{doc}.html"
        if not page.exists():
            problems.append(f"{doc}: page not rendered ({page} missing)")
            continue
        text = page.read_text(errors="replace")
        for url in _remote_loads(text):
            problems.append(f"{doc}: loads {url} from the network (the book must read offline)")
        for src in _LOCAL_SCRIPT.findall(text):
            if not (page.parent / src).resolve().exists():
                problems.append(f"{doc}: script {src} is referenced but missing")
        if doc not in notebooks:
            continue
        n_png = 0
        for src in _IMG.findall(text):
            if src.startswith("data:image/png"):
                n_png += 1
            elif src.lower().endswith(".png"):
                if (page.parent / src).resolve().exists():
                    n_png += 1
                else:
                    problems.append(f"{doc}: figure {src} is referenced but missing")
        if n_png == 0:
            problems.append(f"{doc}: no PNG figure in the rendered page")
        if "cell_output" in text and "Traceback (most recent call last)" in text:
            problems.append(f"{doc}: a cell output shows a traceback")
    return problems


_ENTRY_START = re.compile(r"^@(\w+)\s*\{\s*([^,\s]+)\s*,", re.MULTILINE)


def bib_entries(text: str) -> dict[str, str]:
    """The entries of a BibTeX file, ``key -> entry text`` (``@string``/comments skipped).

    Each entry runs from its ``@type{key,`` line to the brace that closes it.
    """
    entries: dict[str, str] = {}
    for match in _ENTRY_START.finditer(text):
        kind, key = match.group(1).lower(), match.group(2)
        if kind in ("string", "comment", "preamble"):
            continue
        depth, end = 0, None
        for i in range(text.index("{", match.start()), len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                end = i + 1
                break
        if end is None:
            raise ValueError(f"unbalanced braces in BibTeX entry {key!r}")
        entries.setdefault(key, text[match.start() : end])
    return entries


def _normalise(entry: str) -> str:
    return re.sub(r"\s+", " ", entry).strip().lower()


def merge_bibliographies(book: Path = BOOK, *, write: bool = True) -> dict[str, list[str]]:
    """Merge every ``book/bib/*.bib`` (one per chapter author) into ``book/references.bib``.

    ``references.bib`` is the only file Sphinx reads (``bibtex_bibfiles``), so a key cited
    by two chapters is defined once and sphinxcontrib-bibtex never warns about duplicates.
    Entries already present (same key) are kept as they are; a same-key entry whose text
    differs is reported in ``"conflicts"``. Returns ``{"added": [...], "conflicts": [...]}``.
    """
    main_path = book / "references.bib"
    text = main_path.read_text()
    known = bib_entries(text)
    added, conflicts, new_entries = [], [], []
    for path in sorted((book / "bib").glob("*.bib")):
        for key, entry in bib_entries(path.read_text()).items():
            if key in known:
                if _normalise(known[key]) != _normalise(entry):
                    conflicts.append(f"{key} ({path.name} differs from references.bib)")
                continue
            known[key] = entry
            added.append(key)
            new_entries.append(entry)
    if write and new_entries:
        main_path.write_text(text.rstrip("\n") + "\n\n" + "\n\n".join(new_entries) + "\n")
    return {"added": added, "conflicts": conflicts}


def execute_chapter(
    path: str | Path, *, timeout: int = 600, out: str | Path | None = None
) -> float:
    """Execute one MyST notebook chapter from scratch (jupytext + nbclient); return seconds.

    A quick check of a single chapter without building the whole book (``jupytext
    --execute`` needs nbconvert, which the book's environment does not install). Raises
    ``nbclient.exceptions.CellExecutionError`` with the failing cell's traceback.
    """
    import jupytext
    import nbclient
    import nbformat

    path = Path(path).resolve()
    nb = jupytext.read(path)
    client = nbclient.NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    t0 = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - t0
    if out is not None:
        nbformat.write(nb, str(out))
    return elapsed


def _build(book: Path) -> tuple[int, str]:
    exe = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(exe)] if exe.exists() else ["jupyter-book"]
    cmd += ["build", "-W", "-n", "--keep-going", "--all", str(book)]
    env = dict(os.environ)
    env.update(cache_environment(env))
    env.setdefault("JAX_PLATFORMS", "cpu")
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    print("$", " ".join(cmd), flush=True)
    proc = subprocess.Popen(
        cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        lines.append(line)
    return proc.wait(), "".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Build and check; exit status 0 only if the build is warning-free and the HTML is complete."""
    parser = argparse.ArgumentParser(prog="python -m experiments.book_build")
    parser.add_argument("--book", default=str(BOOK), help="book source folder")
    parser.add_argument("--check-only", action="store_true", help="only check an existing build")
    parser.add_argument(
        "--execute",
        nargs="+",
        metavar="CHAPTER",
        help="only execute these chapter files (no build) and print their run times",
    )
    parser.add_argument("--out", help="with --execute of one chapter: write the executed .ipynb")
    parser.add_argument(
        "--no-browser",
        action="store_true",
        help="skip the headless-Chromium rendering check (it fails when chromium is missing)",
    )
    parser.add_argument(
        "--merge-bib",
        action="store_true",
        help="merge book/bib/*.bib into book/references.bib (deduplicated by key) and exit",
    )
    args = parser.parse_args(argv)
    if args.merge_bib:
        result = merge_bibliographies(Path(args.book).resolve())
        print(f"added {len(result['added'])} entries: {', '.join(result['added']) or '-'}")
        for c in result["conflicts"]:
            print(f"kept the references.bib version of {c}")
        return 0
    if args.execute:
        for chapter in args.execute:
            secs = execute_chapter(chapter, out=args.out if len(args.execute) == 1 else None)
            flag = "  (over the 2-minute budget)" if secs > CHAPTER_BUDGET_S else ""
            print(f"{chapter}: executed in {secs:.1f} s{flag}", flush=True)
        return 0
    book = Path(args.book).resolve()
    status = 0
    t0 = time.perf_counter()
    missing = merge_bibliographies(book, write=False)["added"]
    if missing:
        # Not an error by itself: a chapter that cites a key missing from references.bib
        # fails the build anyway (an unresolved citation is a Sphinx warning).
        print(
            f"note: book/bib/*.bib entries not yet in references.bib: {', '.join(missing)} "
            "(merge them with python -m experiments.book_build --merge-bib)"
        )
    if not args.check_only:
        rc, log = _build(book)
        if rc != 0:
            print(f"book build failed (exit {rc}): warnings are errors", file=sys.stderr)
            status = 1
        times = {
            Path(p).name: float(s) for p, s in _EXEC.findall(re.sub(r"\x1b\[[0-9;]*m", "", log))
        }
        (book / "_build").mkdir(exist_ok=True)
        total = time.perf_counter() - t0
        (book / "_build" / "exec_times.json").write_text(
            json.dumps({"chapters_s": times, "build_total_s": total}, indent=2) + "\n"
        )
        print("\n| chapter | execution time (s) |\n| --- | --- |")
        for name, secs in times.items():
            flag = "  (over the 2-minute budget)" if secs > CHAPTER_BUDGET_S else ""
            print(f"| {name} | {secs:.1f}{flag} |")
        print(f"book build took {total:.0f} s in total")
    in_toc = set(toc_files(book))
    for path in sorted((book / "chapters").glob("*.md")):
        doc = f"chapters/{path.stem}"
        if doc not in in_toc:
            print(f"note: {doc} is not in _toc.yml, so it is neither built nor checked")
    problems = check_html(book)
    for p in problems:
        print(f"HTML check: {p}", file=sys.stderr)
    if problems:
        status = 1
    elif status == 0:
        n = len(notebook_chapters(book))
        print(
            f"HTML check passed: {len(toc_files(book))} pages, {n} executed chapters with figures"
        )
    if args.no_browser:
        print("note: --no-browser: the pages were not rendered in Chromium (no math check)")
    else:
        status = max(status, _browser_check(book))
    return status


def _browser_check(book: Path) -> int:
    """Render every built page in headless Chromium (offline); 0 when all read well."""
    from experiments.book_browser import find_chromium, render_and_check

    if find_chromium() is None:
        print(
            "browser check: chromium not found (Debian: apt-get install -y chromium; "
            "--no-browser skips the check)",
            file=sys.stderr,
        )
        return 1
    html = book / "_build" / "html"
    pages = {doc: html / f"{doc}.html" for doc in toc_files(book)}
    pages = {doc: path for doc, path in pages.items() if path.exists()}
    shots = book / "_build" / "screenshots"
    t0 = time.perf_counter()
    problems = render_and_check(pages, shots)
    secs = time.perf_counter() - t0
    times_path = book / "_build" / "exec_times.json"
    if times_path.exists():
        times = json.loads(times_path.read_text())
        times["browser_check_s"] = secs
        times_path.write_text(json.dumps(times, indent=2) + "\n")
    for p in problems:
        print(f"browser check: {p}", file=sys.stderr)
    if problems:
        return 1
    print(
        f"browser check passed in {secs:.0f} s: {len(pages)} pages rendered offline in "
        f"Chromium, math typeset, images loaded; screenshots in {shots}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

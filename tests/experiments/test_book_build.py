"""The built-HTML check of ``experiments.book_build`` on a fake book in ``tmp_path``."""

from __future__ import annotations

import pytest

from experiments.book_build import check_html

_NOTEBOOK = "---\nkernelspec:\n  name: python3\n---\n# {title}\n"
_PNG = b"\x89PNG\r\n\x1a\n"


def _fake_book(root):
    """A book with a root page and two notebook chapters, built: every page rendered,
    every chapter showing a PNG (one as a file, one inline)."""
    book = root / "book"
    (book / "chapters").mkdir(parents=True)
    (book / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nchapters:\n- file: chapters/01_a\n- file: chapters/02_b\n"
    )
    (book / "intro.md").write_text("# Intro\n")
    for name in ("01_a", "02_b"):
        (book / "chapters" / f"{name}.md").write_text(_NOTEBOOK.format(title=name))
    html = book / "_build" / "html"
    (html / "chapters").mkdir(parents=True)
    (html / "_images").mkdir()
    (html / "_images" / "fig_a.png").write_bytes(_PNG)
    (html / "intro.html").write_text("<html><body>intro</body></html>")
    (html / "chapters" / "01_a.html").write_text(
        '<div class="cell_output"><img alt="a" src="../_images/fig_a.png" /></div>'
    )
    (html / "chapters" / "02_b.html").write_text(
        '<div class="cell_output"><img src="data:image/png;base64,iVBORw0KGgo=" /></div>'
    )
    return book


def test_complete_build_passes(tmp_path):
    assert check_html(_fake_book(tmp_path)) == []


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("missing_png", "chapters/01_a: figure ../_images/fig_a.png is referenced but missing"),
        ("missing_page", "chapters/02_b: page not rendered"),
        ("no_figure", "chapters/02_b: no PNG figure in the rendered page"),
        ("traceback", "chapters/01_a: a cell output shows a traceback"),
    ],
)
def test_broken_chapter_is_reported(tmp_path, breakage, message):
    book = _fake_book(tmp_path)
    html = book / "_build" / "html"
    if breakage == "missing_png":
        (html / "_images" / "fig_a.png").unlink()
    elif breakage == "missing_page":
        (html / "chapters" / "02_b.html").unlink()
    elif breakage == "no_figure":
        (html / "chapters" / "02_b.html").write_text("<p>no figure</p>")
    else:
        page = html / "chapters" / "01_a.html"
        text = page.read_text() + '<div class="cell_output">Traceback (most recent call last):'
        page.write_text(text)
    problems = check_html(book)
    assert any(p.startswith(message) for p in problems), problems
    chapter = message.split(":")[0]
    assert all(p.startswith(f"{chapter}:") for p in problems), problems  # only that one

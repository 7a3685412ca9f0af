"""The built-book checks of ``experiments.book_build`` on fake books in ``tmp_path``.

The static HTML check and the analysis of a rendered DOM need no browser; the tests that
render pages in headless Chromium skip (with the reason) only when chromium is absent.
"""

from __future__ import annotations

import base64
import importlib.util
import shutil
import struct
import zlib
from pathlib import Path

import pytest

from experiments.book_browser import (
    RenderedPage,
    check_rendered_page,
    find_chromium,
    render_pages,
)
from experiments.book_build import check_html, main

_NOTEBOOK = "---\nkernelspec:\n  name: python3\n---\n# {title}\n"


def _png(width: int = 2, height: int = 2) -> bytes:
    """A valid grey RGB PNG (signature, IHDR, IDAT, IEND), so a browser decodes it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\0" + b"\x80" * (3 * width) for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


_PNG = _png()
_PNG_URI = "data:image/png;base64," + base64.b64encode(_PNG).decode()


def _fake_book(root):
    """A book with a root page and two notebook chapters, built: every page rendered,
    every chapter showing a PNG (one as a file, one inline)."""
    book = root / "book"
    (book / "chapters").mkdir(parents=True)
    (book / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nchapters:\n- file: chapters/01_a\n- file: chapters/02_b\n"
    )
    (book / "intro.md").write_text("# Intro\n")
    (book / "references.bib").write_text("")
    for name in ("01_a", "02_b"):
        (book / "chapters" / f"{name}.md").write_text(_NOTEBOOK.format(title=name))
    html = book / "_build" / "html"
    (html / "chapters").mkdir(parents=True)
    (html / "_images").mkdir()
    (html / "_static").mkdir()
    (html / "_images" / "fig_a.png").write_bytes(_PNG)
    (html / "_static" / "page.js").write_text("document.title = 'ok';\n")
    (html / "intro.html").write_text("<html><body>intro</body></html>")
    (html / "chapters" / "01_a.html").write_text(
        '<script src="../_static/page.js?v=1"></script>'
        '<div class="cell_output"><img alt="a" src="../_images/fig_a.png" /></div>'
    )
    (html / "chapters" / "02_b.html").write_text(
        f'<div class="cell_output"><img src="{_PNG_URI}" /></div>'
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
        ("cdn_script", "chapters/02_b: loads https://cdn.jsdelivr.net/npm/mathjax@3/es5/"),
        ("cdn_style", "chapters/02_b: loads //fonts.example.org/a.css from the network"),
        ("missing_script", "chapters/01_a: script ../_static/page.js is referenced but missing"),
    ],
)
def test_broken_chapter_is_reported(tmp_path, breakage, message):
    book = _fake_book(tmp_path)
    html = book / "_build" / "html"
    b_page = html / "chapters" / "02_b.html"
    if breakage == "missing_png":
        (html / "_images" / "fig_a.png").unlink()
    elif breakage == "missing_page":
        b_page.unlink()
    elif breakage == "no_figure":
        b_page.write_text("<p>no figure</p>")
    elif breakage == "cdn_script":
        b_page.write_text(
            b_page.read_text()
            + '<script defer="defer" src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/'
            'tex-mml-chtml.js"></script>'
            # a remote link that is not fetched (a hyperlink) is fine
             + '<link rel="canonical" href="https://example.org/b.html" />'
        )
    elif breakage == "cdn_style":
        b_page.write_text(
            b_page.read_text() + '<link href="//fonts.example.org/a.css" rel="stylesheet" />'
        )
    elif breakage == "missing_script":
        (html / "_static" / "page.js").unlink()
    else:
        page = html / "chapters" / "01_a.html"
        text = page.read_text() + '<div class="cell_output">Traceback (most recent call last):'
        page.write_text(text)
    problems = check_html(book)
    assert any(p.startswith(message) for p in problems), problems
    chapter = message.split(":")[0]
    assert all(p.startswith(f"{chapter}:") for p in problems), problems  # only that one


# The DOM of a page after MathJax 3 ran (abridged from a real build): the TeX sits in
# MathJax's <mjx-container> (glyphs and assistive MathML), none left in the prose.
_RENDERED = (
    "<html><head><script>var s = '\\\\(x\\\\)';</script><style>p::after{content:'$$'}</style>"
    "</head><body><p>The work "
    '<span class="math notranslate nohighlight"><mjx-container class="MathJax CtxtMenu_Attached_0"'
    ' jax="CHTML"><mjx-math class="MJX-TEX"><mjx-mi><mjx-c class="mjx-c1D44A TEX-I">'
    "</mjx-c></mjx-mi></mjx-math><mjx-assistive-mml><math><mi>W</mi></math>"
    "</mjx-assistive-mml></mjx-container></span> of a path.</p>"
    '<div class="math notranslate nohighlight"><mjx-container display="true">'
    "<mjx-math><mjx-mo>=</mjx-mo></mjx-math></mjx-container></div>"
    '<pre>plt.xlabel(r"$\\beta \\Delta F$")  # TeX in code is fine</pre>'
    "<p>It costs <code>\\(</code> to write; $5 is not math.</p>"
    "<img src='../_images/fig.png'><br></body></html>"
)


def test_rendered_page_passes():
    page = RenderedPage(dom=_RENDERED, images=[("../_images/fig.png", True)])
    assert check_rendered_page("ch", page) == []


@pytest.mark.parametrize(
    ("dom", "message"),
    [
        (
            '<p>Weights <span class="math notranslate nohighlight">\\(x\\)</span> here</p>',
            "raw TeX in the rendered page (MathJax did not render it) in 1 place(s): "
            "'Weights \\\\(x\\\\) here'",
        ),
        (
            '<div class="math notranslate nohighlight">\\[\\begin{aligned} a &amp;= b'
            "\\end{aligned}\\]</div>",
            "raw TeX in the rendered page",
        ),
        ("<p>$$\nW = 1\n$$</p>", "raw TeX in the rendered page"),
        ("<p>so that \\log w = \\frac{1}{2} holds</p>", "raw TeX in the rendered page"),
        (
            "<p><mjx-container><mjx-merror data-mjx-error='Undefined control sequence \\foo'>"
            "<mjx-mtext>\\foo</mjx-mtext></mjx-merror></mjx-container></p>",
            "MathJax could not typeset 1: 'Undefined control sequence \\\\foo'",
        ),
        (
            '<div class="cell_output"><pre>ValueError     Traceback (most recent call last)'
            "\n  File x</pre></div>",
            "the page shows a Python traceback",
        ),
    ],
)
def test_unreadable_page_is_reported(dom, message):
    problems = check_rendered_page("ch", RenderedPage(dom=f"<html><body>{dom}</body></html>"))
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"ch: {message}"), problems


def test_broken_image_and_network_are_reported():
    page = RenderedPage(
        dom=_RENDERED,
        images=[("../_images/fig.png", False), ("../_images/ok.png", True)],
        external=["https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"],
        errors=["MathJax did not finish typesetting"],
    )
    assert check_rendered_page("ch", page) == [
        "ch: MathJax did not finish typesetting",
        "ch: the page fetches https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js "
        "from the network (blocked offline)",
        "ch: image ../_images/fig.png is missing or broken (did not load)",
    ]


# --- in headless Chromium -------------------------------------------------------------

needs_chromium = pytest.mark.skipif(
    find_chromium() is None,
    reason="chromium is not installed (Debian: apt-get install -y chromium): the pages "
    "cannot be rendered; the DOM analysis is tested above without it",
)


def _bundled_mathjax() -> Path:
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    if spec is None or spec.origin is None:
        pytest.skip("sphinx-mathjax-offline (the book extra) is not installed")
    return Path(spec.origin).parent / "static" / "mathjax"


_MATH = (
    '<p>Work <span class="math notranslate nohighlight">\\(\\log w = \\frac{a}{b}\\)</span></p>'
    '<div class="math notranslate nohighlight">\\[\\begin{aligned} \\Delta F &amp;= '
    "-\\log \\langle e^{-W} \\rangle \\end{aligned}\\]</div>"
)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Fake built pages, rendered once in one browser: name -> RenderedPage."""
    root = tmp_path_factory.mktemp("site")
    shutil.copytree(_bundled_mathjax(), root / "_static" / "mathjax")
    (root / "fig.png").write_bytes(_PNG)
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    mathjax = '<script defer src="_static/mathjax/tex-chtml.js"></script>'
    pages = {
        "rendered": f"{mathjax}{_MATH}<img src='fig.png'><img src='{_PNG_URI}'>",
        "no_mathjax": _MATH,
        "cdn": '<script defer src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js">'
        f"</script>{_MATH}",
        "missing_image": f"{mathjax}{_MATH}<img src='fig.png'><img src='gone.png'>",
        "broken_image": "<p>no math</p><img src='broken.png'>",
        "traceback": '<div class="cell_output"><pre>---\nZeroDivisionError   '
        "Traceback (most recent call last)\nCell In[3], line 1</pre></div>",
    }
    paths = {}
    for name, body in pages.items():
        paths[name] = root / f"{name}.html"
        paths[name].write_text(f"<!DOCTYPE html><html><head></head><body>{body}</body></html>")
    return render_pages(paths, root / "screenshots", timeout=30), root


@needs_chromium
def test_browser_mathjax_renders_offline(rendered):
    pages, root = rendered
    page = pages["rendered"]
    assert check_rendered_page("rendered", page) == []
    assert page.dom.count("<mjx-container") == 2
    assert page.images == [("fig.png", True), (_PNG_URI, True)]
    shot = root / "screenshots" / "rendered.png"
    assert page.screenshot == shot
    assert shot.read_bytes().startswith(b"\x89PNG")


@needs_chromium
@pytest.mark.parametrize(
    ("name", "messages"),
    [
        ("no_mathjax", ["raw TeX in the rendered page", "the page has math but MathJax"]),
        ("cdn", ["raw TeX", "the page has math but", "the page fetches https://cdn.jsdelivr"]),
        ("missing_image", ["image gone.png is missing or broken"]),
        ("broken_image", ["image broken.png is missing or broken"]),
        ("traceback", ["the page shows a Python traceback"]),
    ],
)
def test_browser_reports_unreadable_page(rendered, name, messages):
    problems = check_rendered_page(name, rendered[0][name])
    assert len(problems) == len(messages), problems
    for message in messages:
        assert any(p.startswith(f"{name}: {message}") for p in problems), problems


@needs_chromium
def test_check_only_renders_every_page(tmp_path, capsys):
    book = _fake_book(tmp_path)
    assert main(["--book", str(book), "--check-only"]) == 0
    shots = sorted(p.name for p in (book / "_build" / "screenshots").iterdir())
    assert shots == ["chapters_01_a.png", "chapters_02_b.png", "intro.png"]
    page = book / "_build" / "html" / "chapters" / "02_b.html"
    page.write_text(page.read_text() + '<p><span class="math">\\(W\\)</span></p>')
    assert main(["--book", str(book), "--check-only"]) == 1
    assert "browser check: chapters/02_b: raw TeX" in capsys.readouterr().err

"""Render the built book in headless Chromium, offline, and check what a reader sees.

``python -m experiments.book_build`` calls :func:`render_and_check` after the static HTML
check. Each page of the book is opened from ``file://`` in one headless Chromium, driven
over the DevTools protocol on a pipe (``--remote-debugging-pipe``: JSON messages ended by
a NUL byte on file descriptors 3 and 4, so no Python browser package is needed). The
network is off three times over: the launch flags stop Chromium's own background traffic,
``Network.setBlockedURLs`` blocks every ``http(s)://`` request of the page, and each such
request is reported as a problem (a page that loads MathJax from a CDN fails). After the
load event the page script waits for MathJax's first typeset (``MathJax.startup.promise``)
and for every image, then returns the DOM as rendered and each image's load state; a
full-page screenshot goes to ``book/_build/screenshots/<page>.png``.

:func:`check_rendered_page` is the pure analysis of that DOM (no browser): raw TeX in the
visible text outside MathJax's ``<mjx-container>`` and outside code (``\\(``, ``\\[``,
``$$``, ``\\begin{``, ``\\frac``, ...), MathJax error boxes (``<mjx-merror>``), images that
did not load, and Python tracebacks.
"""

from __future__ import annotations

import base64
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

__all__ = [
    "CHROMIUM_FLAGS",
    "RenderedPage",
    "check_rendered_page",
    "find_chromium",
    "render_and_check",
    "render_pages",
    "visible_text",
]

# Headless, no sandbox (CI containers run as root), and no network traffic of Chromium's
# own (updates, sync, field trials, QUIC probes).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
)
WINDOW = (1280, 900)  # CSS pixels: a laptop screen, wide enough for the book's sidebar
MAX_SCREENSHOT_HEIGHT = 16000  # Chromium's compositor refuses taller captures

# Text that only appears when TeX was left for MathJax and MathJax never ran: the inline
# and display delimiters Sphinx writes, $$ (dollarmath), and TeX commands.
_RAW_TEX = re.compile(
    r"\\[()\[\]]"
    r"|\$\$"
    r"|\\(?:begin|end)\{"
    r"|\\(?:frac|mathrm|mathbb|mathcal|mathbf|operatorname|sum|int|prod|log|exp|left|right"
    r"|langle|rangle|partial|nabla|sqrt|alpha|beta|gamma|delta|sigma|theta|lambda|mu|pi"
    r"|cdot|times|approx|leq|geq|le|ge|ne|in|to|infty|quad|text|hat|bar|tilde|mathsf)"
    r"(?![A-Za-z])"
)
_TRACEBACK = re.compile(r"Traceback \(most recent call last\)")
# Elements whose text a reader does not see as prose: scripts and styles, MathJax's own
# output (rendered glyphs and assistive MathML), and code (where TeX in a string, e.g. a
# matplotlib label r"$\beta$", is legitimate).
_HIDDEN = {"script", "style", "noscript", "template", "head", "title"}
_NOT_PROSE = _HIDDEN | {"mjx-container", "pre", "code", "kbd", "samp", "textarea"}
_VOID = {
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
    "track", "wbr",
}  # fmt: skip


class _TextCollector(HTMLParser):
    """Collects the text of a DOM, split into prose (outside ``skip``) and all visible text."""

    def __init__(self, skip: set[str]):
        super().__init__(convert_charrefs=True)
        self.skip = skip
        self.stack: list[str] = []
        self.prose: list[str] = []
        self.visible: list[str] = []
        self.merrors: list[str] = []
        self._in_merror = 0

    def handle_starttag(self, tag, attrs):
        if tag in _VOID:
            return
        self.stack.append(tag)
        if tag == "mjx-merror":
            self._in_merror += 1
            self.merrors.append(dict(attrs).get("data-mjx-error", ""))

    def handle_endtag(self, tag):
        if tag in _VOID or tag not in self.stack:
            return
        while self.stack:
            top = self.stack.pop()
            if top == "mjx-merror":
                self._in_merror -= 1
            if top == tag:
                break

    def handle_data(self, data):
        if any(t in _HIDDEN for t in self.stack):
            return
        self.visible.append(data)
        if self._in_merror and self.merrors and not self.merrors[-1]:
            self.merrors[-1] = data.strip()
        if not any(t in self.skip for t in self.stack):
            self.prose.append(data)


def _collect(dom: str) -> _TextCollector:
    collector = _TextCollector(_NOT_PROSE)
    collector.feed(dom)
    collector.close()
    return collector


def visible_text(dom: str) -> tuple[str, str]:
    """``(prose, visible)``: the text outside math and code, and all text a reader sees."""
    collector = _collect(dom)
    return "".join(collector.prose), "".join(collector.visible)


def _excerpt(text: str, start: int, end: int, width: int = 30, most: int = 120) -> str:
    snippet = " ".join(text[max(0, start - width) : end + width].split())
    return snippet if len(snippet) <= most else snippet[: most - 3] + "..."


@dataclass
class RenderedPage:
    """A page as Chromium rendered it: the DOM after MathJax ran, and each image's state.

    ``images`` holds ``(src, loaded)`` pairs (``loaded``: ``complete`` and a non-zero
    natural width, i.e. the file exists and decodes); ``external`` the ``http(s)`` URLs the
    page tried to fetch (all blocked); ``errors`` what went wrong in the browser itself.
    """

    dom: str
    images: list[tuple[str, bool]] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    screenshot: Path | None = None


def check_rendered_page(name: str, page: RenderedPage) -> list[str]:
    """The problems a reader would see on one rendered page (empty when it reads well)."""
    problems = [f"{name}: {e}" for e in page.errors]
    for url in page.external:
        problems.append(f"{name}: the page fetches {url} from the network (blocked offline)")
    collector = _collect(page.dom)
    prose, visible = "".join(collector.prose), "".join(collector.visible)
    places: list[list[int]] = []  # matches closer than 10 characters are one place
    for m in _RAW_TEX.finditer(prose):
        if places and m.start() <= places[-1][1] + 10:
            places[-1][1] = m.end()
        else:
            places.append([m.start(), m.end()])
    if places:
        shown = "; ".join(repr(_excerpt(prose, a, b)) for a, b in places[:3])
        problems.append(
            f"{name}: raw TeX in the rendered page (MathJax did not render it) in "
            f"{len(places)} place(s): {shown}"
        )
    if collector.merrors:
        shown = "; ".join(repr(m) for m in collector.merrors[:3])
        problems.append(f"{name}: MathJax could not typeset {len(collector.merrors)}: {shown}")
    for src, loaded in page.images:
        if not loaded:
            problems.append(f"{name}: image {src} is missing or broken (did not load)")
    match = _TRACEBACK.search(visible)
    if match:
        shown = _excerpt(visible, match.start(), match.end())
        problems.append(f"{name}: the page shows a Python traceback: {shown!r}")
    return problems


def find_chromium() -> str | None:
    """The Chromium executable (``$CHROMIUM``, else ``chromium`` on the PATH), or None."""
    if os.environ.get("CHROMIUM"):
        return shutil.which(os.environ["CHROMIUM"])
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


# Run in the page after its load event: wait for MathJax's first typeset and for every
# image (lazy ones are made eager), give up after TIMEOUT ms, return what a reader sees.
_PAGE_SCRIPT = """
(async (timeoutMs) => {
  const errors = [];
  const timeout = (ms, what) => new Promise((resolve) =>
      setTimeout(() => { errors.push(what); resolve(); }, ms));
  // MathJax is loaded with `defer`, so after the load event it has started or never will.
  if (document.querySelector('.math, mjx-container, script[src*="mathjax" i]')) {
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
      await Promise.race([MathJax.startup.promise,
                          timeout(timeoutMs, 'MathJax did not finish typesetting')]);
    } else if (document.querySelector('.math')) {
      errors.push('the page has math but MathJax never started');
    }
  }
  const images = [...document.images];
  for (const img of images) { img.loading = 'eager'; }
  await Promise.race([
    Promise.all(images.map((img) => img.complete ? null : new Promise((r) => {
      img.addEventListener('load', r, {once: true});
      img.addEventListener('error', r, {once: true});
    }))),
    timeout(timeoutMs, 'images did not finish loading')]);
  if (document.fonts) { await document.fonts.ready; }
  return {
    dom: document.documentElement.outerHTML,
    images: images.map((img) => [img.getAttribute('src') || '',
                                 img.complete && img.naturalWidth > 0]),
    errors: errors,
    height: Math.ceil(Math.max(document.documentElement.scrollHeight,
                               document.body ? document.body.scrollHeight : 0)),
  };
})
"""


class _DevTools:
    """A minimal DevTools-protocol client over ``--remote-debugging-pipe``."""

    def __init__(self, chromium: str, timeout: float):
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="book-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # Chromium reads commands on fd 3 and writes replies on fd 4.
        self.proc = subprocess.Popen(
            [
                "bash",
                "-c",
                f'exec "$@" 3<&{to_browser_r} 4>&{from_browser_w}',
                "bash",
                chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={self.profile}",
                f"--window-size={WINDOW[0]},{WINDOW[1]}",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            pass_fds=(to_browser_r, from_browser_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send one command and wait for its reply (events that arrive meanwhile are kept)."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"DevTools {method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_event(self, method: str, session: str) -> dict:
        """Wait for an event of ``method`` in ``session`` (raise on the timeout)."""
        while True:
            for i, event in enumerate(self.events):
                if event["method"] == method and event.get("sessionId") == session:
                    return self.events.pop(i)
            event = self._read()
            if "method" in event:
                self.events.append(event)

    def _read(self) -> dict:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_browser], [], [], max(left, 0))
            if not ready:
                raise TimeoutError(f"Chromium did not answer within {self.timeout:.0f} s")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"Chromium exited (status {self.proc.poll()}): {err[-2000:]}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def close(self):
        try:
            self.send("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.proc.stderr:
            self.proc.stderr.close()
        shutil.rmtree(self.profile, ignore_errors=True)


def render_pages(
    pages: dict[str, Path],
    screenshots: Path | None,
    *,
    chromium: str | None = None,
    timeout: float = 60.0,
) -> dict[str, RenderedPage]:
    """Open each page (``name -> .html file``) in one headless Chromium, offline.

    Returns each page's :class:`RenderedPage`; with ``screenshots``, saves a full-page PNG
    (up to ``MAX_SCREENSHOT_HEIGHT`` px tall, ``WINDOW[0]`` wide) as
    ``screenshots/<name>.png`` (``/`` in the name becomes ``_``). ``timeout`` (s) bounds
    each wait: the page load, MathJax's typeset, the image loads.
    """
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError(
            "chromium not found: install it (Debian: apt-get install -y chromium) or set "
            "$CHROMIUM to the browser executable"
        )
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    if screenshots is not None:
        screenshots.mkdir(parents=True, exist_ok=True)
    browser = _DevTools(chromium, timeout)
    results: dict[str, RenderedPage] = {}
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for method, params in [
            ("Page.enable", {}),
            ("Runtime.enable", {}),
            ("Network.enable", {}),
            ("Network.setBlockedURLs", {"urls": ["http://*", "https://*", "ws://*", "wss://*"]}),
            (
                "Emulation.setDeviceMetricsOverride",
                {"width": WINDOW[0], "height": WINDOW[1], "deviceScaleFactor": 1, "mobile": False},
            ),
        ]:
            browser.send(method, params, session)
        for name, path in pages.items():
            browser.events.clear()
            url = Path(path).resolve().as_uri()
            nav = browser.send("Page.navigate", {"url": url}, session)
            if nav.get("errorText"):
                results[name] = RenderedPage(dom="", errors=[f"{url}: {nav['errorText']}"])
                continue
            browser.wait_event("Page.loadEventFired", session)
            value = browser.send(
                "Runtime.evaluate",
                {
                    "expression": f"{_PAGE_SCRIPT}({int(timeout * 1000)})",
                    "awaitPromise": True,
                    "returnByValue": True,
                },
                session,
            )
            if "exceptionDetails" in value:
                text = value["exceptionDetails"].get("exception", {}).get("description", "")
                results[name] = RenderedPage(dom="", errors=[f"page script failed: {text}"])
                continue
            found = value["result"]["value"]
            external = sorted(
                {
                    e["params"]["request"]["url"]
                    for e in browser.events
                    if e["method"] == "Network.requestWillBeSent"
                    and e.get("sessionId") == session
                    and re.match(r"(?:https?|wss?)://", e["params"]["request"]["url"])
                }
            )
            page = RenderedPage(
                dom=found["dom"],
                images=[(src, bool(ok)) for src, ok in found["images"]],
                external=external,
                errors=list(found["errors"]),
            )
            if screenshots is not None:
                height = max(1, min(int(found["height"]), MAX_SCREENSHOT_HEIGHT))
                shot = browser.send(
                    "Page.captureScreenshot",
                    {
                        "format": "png",
                        "captureBeyondViewport": True,
                        "clip": {"x": 0, "y": 0, "width": WINDOW[0], "height": height, "scale": 1},
                    },
                    session,
                )
                page.screenshot = screenshots / f"{name.replace('/', '_')}.png"
                page.screenshot.write_bytes(base64.b64decode(shot["data"]))
            results[name] = page
    finally:
        browser.close()
    return results


def render_and_check(
    pages: dict[str, Path], screenshots: Path | None, *, timeout: float = 60.0
) -> list[str]:
    """Render every page (:func:`render_pages`) and return the problems of all of them."""
    problems = []
    for name, page in render_pages(pages, screenshots, timeout=timeout).items():
        problems += check_rendered_page(name, page)
    return problems

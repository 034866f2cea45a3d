"""The explorer's page: one static HTML file and its script (package data), with plotly.js from the installed
plotly package; served as is, or made self-contained for ``export=`` (script, plotly.js and data inlined)."""
from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import plotly

STATIC = resources.files("attnlab.explore") / "static"
SCRIPTS = ("plotly.min.js", "explore.js")  # what the page loads, in order
DATA_SLOT = "<!-- export data -->"


def plotly_js() -> Path:
    """``plotly.min.js`` of the installed plotly package (the explore extra): never a CDN."""
    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def script(name: str) -> str:
    """The text of one of :data:`SCRIPTS`."""
    path = plotly_js() if name == "plotly.min.js" else STATIC / name
    return path.read_text(encoding="utf-8")


def page() -> str:
    """The page as served: it loads :data:`SCRIPTS` from the server and asks the API for the data."""
    return (STATIC / "explore.html").read_text(encoding="utf-8")


def inline(code: str) -> str:
    """JavaScript ``code`` safe inside a ``<script>`` element: no ``</script`` closes it early."""
    return re.sub(r"</(?=script)", r"<\\/", code, flags=re.IGNORECASE)


def exported(data: dict[str, Any]) -> str:
    """The page with its scripts and ``data`` (``{"models", "runs"}``, as the API answers) inlined: one file that
    opens from disk with no server and no network."""
    html = page()
    for name in SCRIPTS:
        html = html.replace(f'<script src="{name}"></script>', f"<script>{inline(script(name))}</script>")
    payload = json.dumps(data).replace("<", "\\u003c")  # the same string in JSON, and no tag inside <script>
    payload = f"<script>window.ATTNLAB_EXPORT = {payload};</script>"
    return html.replace(DATA_SLOT, payload)

"""Make Eurybia's HTML report self-contained: it opens without internet.

Eurybia 1.4.2 saves its Panel report with Panel's default CDN resources: BokehJS, Panel's JS,
plotly.js (the report's every figure), stylesheets and the Eurybia logo are fetched from public
CDNs when the page opens, so without internet the report is a blank page. The same files ship
in the installed ``bokeh`` and ``panel`` packages (the versions the report was drawn with), so
each CDN reference is replaced by the local file: a ``<script src=…>`` by the script itself,
any other reference (stylesheets in the page and in the embedded document, icons, the logo)
by a ``data:`` URL. ``external_resources`` lists what a browser would still fetch.
"""

from __future__ import annotations

import base64
import mimetypes
import re
from importlib import resources
from pathlib import Path

#: CDN URL prefixes and the installed folders holding the same files.
_CDN_PREFIXES: tuple[tuple[str, str, str], ...] = (
    # (regex of the URL prefix, package, folder inside the package)
    (r"https://cdn\.bokeh\.org/bokeh/release/", "bokeh", "server/static/js"),
    (r"https://cdn\.holoviz\.org/panel/[^/\"']+/dist/", "panel", "dist"),
)
#: Eurybia's header logo (not shipped in the package): Eurybia's own icon stands in.
_EURYBIA_LOGO = re.compile(r"https://eurybia\.readthedocs\.io/[^\"'\s<>&\\)]*")
_URL_TAIL = r"[^\"'\s<>&\\)]+"
_SCRIPT = re.compile(
    r"<script(?P<attrs>[^>]*?)\s+src=\"(?P<url>https?://[^\"]+)\"(?P<rest>[^>]*)>\s*</script>"
)
#: A browser fetches these when the page opens (attributes, CSS url(), Bokeh's stylesheet
#: models in the embedded document); plain text and hyperlinks are not counted.
_FETCHED = re.compile(
    r"(?:\b(?:src|href)\s*=\s*(?:\\?[\"']|&quot;|&amp;quot;)|url\(\s*[\"']?|\"url\"\s*:\s*\")"
    r"(https?://[^\"'\s<>&\\)]+)"
)


def _local_file(url: str) -> Path | None:
    """The installed file a CDN URL serves, or None."""
    path = url.split("?", 1)[0].split("#", 1)[0]
    for prefix, package, folder in _CDN_PREFIXES:
        match = re.match(prefix, path)
        if match:
            name = path[match.end() :]
            if package == "bokeh":  # the CDN names carry the version: bokeh-gl-3.9.2.min.js
                name = re.sub(r"-\d+\.\d+\.\d+(?:\.\w+)?(?=\.min\.js$)", "", name)
            candidate = Path(str(resources.files(package))) / folder / name
            return candidate if candidate.is_file() else None
    return None


def _data_url(path: Path) -> str:
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _eurybia_icon() -> str:
    return _data_url(Path(str(resources.files("eurybia.assets"))) / "favicon.png")


def self_contained(html: str) -> str:
    """``html`` with every CDN file it loads inlined from the installed packages."""

    def inline_script(match: re.Match) -> str:
        local = _local_file(match["url"])
        if local is None:
            return match[0]
        code = local.read_text(encoding="utf-8")
        if "</script" in code.lower():  # cannot be written between script tags as it is
            return f'<script{match["attrs"]} src="{_data_url(local)}"{match["rest"]}></script>'
        return f"<script{match['attrs']}{match['rest']}>{code}</script>"

    html = _SCRIPT.sub(inline_script, html)
    for prefix, _, _ in _CDN_PREFIXES:

        def inline_other(match: re.Match) -> str:
            local = _local_file(match[0])
            return _data_url(local) if local is not None else match[0]

        html = re.sub(prefix + _URL_TAIL, inline_other, html)
    if _EURYBIA_LOGO.search(html):
        html = _EURYBIA_LOGO.sub(_eurybia_icon(), html)
    return html


#: Code between script tags (URLs in its strings are not fetched on opening the page);
#: ``application/json`` blocks are kept: they hold the document and its stylesheet models.
_CODE = re.compile(
    r"(<script(?![^>]*type=\"(?:application/json|esms-options)\")[^>]*>).*?(</script>)",
    re.DOTALL | re.IGNORECASE,
)


def external_resources(html: str) -> list[str]:
    """URLs a browser would fetch from the network to show ``html`` (empty: works offline)."""
    return sorted(set(_FETCHED.findall(_CODE.sub(r"\1\2", html))))

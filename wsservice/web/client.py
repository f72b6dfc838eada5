"""
Where the bundled browser client lives.
"""

from __future__ import annotations

from pathlib import Path

import wsservice


def bundledClient() -> Path | None:
    """
    The directory of the browser client that ships with wsservice: inside the
    installed package (a wheel maps the top-level C{static/} there), or the
    top-level C{static/} of a source checkout.
    """
    package = Path(wsservice.__file__).resolve().parent
    for candidate in (package / "static", package.parent / "static"):
        if (candidate / "index.html").is_file():
            return candidate
    return None

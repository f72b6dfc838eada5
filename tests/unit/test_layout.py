"""
The rules of the package layout (stated in C{wsservice/__init__.py}), read
from the source: who may import whom, and where third-party internals may
be named.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "wsservice"


def modules(under: str = "") -> list[Path]:
    return sorted((PACKAGE / under).rglob("*.py"))


def imported(path: Path) -> set[str]:
    """
    Every module C{path} imports, at the top or inside a function.
    """
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def relative(path: Path) -> str:
    return path.relative_to(PACKAGE.parent).as_posix()


@pytest.mark.parametrize("path", modules("rooms"), ids=relative)
def test_rooms_never_import_the_websocket_or_web_layers(path):
    """
    The rooms get what they need injected: nothing under wsservice/rooms
    imports wsservice.websocket or wsservice.web.
    """
    bad = {m for m in imported(path) if m.startswith(("wsservice.websocket", "wsservice.web"))}
    assert not bad, f"{relative(path)} imports {sorted(bad)}"


HANDLER_MAY_IMPORT = ("wsservice.interfaces", "wsservice.closecodes", "wsservice.rooms.events",
                      "wsservice.rooms.names", "wsservice.timefmt")


@pytest.mark.parametrize("path", modules("handlers"), ids=relative)
def test_handlers_import_only_the_plugin_contracts(path):
    """
    A built-in handler is written like a plugin: of wsservice it imports
    only the interfaces, the room event helpers and the time format, and
    nothing of Autobahn.
    """
    bad = {m for m in imported(path)
           if (m.startswith("wsservice.") and not m.startswith(HANDLER_MAY_IMPORT)
               and not m.startswith("wsservice.handlers"))
           or m.startswith("autobahn")}
    assert not bad, f"{relative(path)} imports {sorted(bad)}"


#: Names outside Autobahn's and Twisted's public APIs (see the docstrings of
#: websocket/_autobahn.py and websocket/_twisted.py).
INTERNAL = re.compile(
    r"_tempDataBuffer|\bdataBuffer\b|transport\.socket\b|transport\.protocol\b|\.connected\b"
    r"|\.producer\b|_perMessageCompress|payloadHybi|doNotCompress|CONFIG_ATTRS|sendCloseFrame"
    r"|dropConnection|send_queue|_closeConnection|set_valid_events|STATE_OPEN|STATE_CLOSED"
    r"|STATE_CONNECTING|\.maxMessagePayloadSize|_wskey|http_request_|\bpformat\b|PreparedMessage"
    r"|\.state\b"
)
ALLOWED = {"websocket/_autobahn.py", "websocket/_twisted.py"}


@pytest.mark.parametrize("path", [p for p in modules()
                                  if p.relative_to(PACKAGE).as_posix() not in ALLOWED],
                         ids=relative)
def test_third_party_internals_are_named_in_one_module_per_library(path):
    """
    Only websocket/_autobahn.py and websocket/_twisted.py name Autobahn's
    and Twisted's non-public attributes.
    """
    found = [f"{relative(path)}:{n}: {line.strip()}"
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if INTERNAL.search(line.split("#", 1)[0])]
    assert not found, "\n".join(found)


def test_every_package_is_listed_in_setup_cfg():
    """
    A package missing from setup.cfg's packages is missing from the wheel,
    and only the packaging test (which builds one) would say so.
    """
    import configparser

    config = configparser.ConfigParser()
    config.read(PACKAGE.parent / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    present = {relative(init.parent).replace("/", ".") for init in PACKAGE.rglob("__init__.py")}
    assert present - listed == set()

"""
Handler plugins: a module dropped into a twisted/plugins directory on the
Python path is served at the next start, with no change to wsservice.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

from tests.support.processes import REPO
from tests.service.test_cli import twistd
from tests.support.wsclient import closeCode, open_, recvJSON, refusal


def pluginDir(tmp_path: Path, **modules: str) -> str:
    """
    Make C{tmp_path/twisted/plugins} holding C{modules} (name -> source) and
    return the directory to put on the Python path.
    """
    plugins = tmp_path / "twisted" / "plugins"
    plugins.mkdir(parents=True)
    for name, source in modules.items():
        (plugins / f"{name}.py").write_text(textwrap.dedent(source))
    return str(tmp_path)


def examplePluginDir(tmp_path: Path) -> str:
    plugins = tmp_path / "twisted" / "plugins"
    plugins.mkdir(parents=True)
    shutil.copy(REPO / "examples" / "twisted" / "plugins" / "shout.py", plugins)
    return str(tmp_path)


CRASHY = '''
    from twisted.plugin import IPlugin
    from zope.interface import implementer, provider
    from wsservice.interfaces import IHandler, IHandlerFactory

    @provider(IPlugin, IHandlerFactory)
    @implementer(IHandler)
    class Crashy:
        subprotocol = "crashy"
        description = "raises on request"

        def __init__(self, connection, context):
            self.connection, self.context = connection, context
            if connection.request.path == "/init":
                raise RuntimeError("boom in init")

        def onOpen(self):
            if self.connection.request.path == "/open":
                raise RuntimeError("boom in open")

        def onMessage(self, payload, isBinary):
            if payload == b"boom":
                raise RuntimeError("boom in message")
            if payload == b"later":
                self.context.callLater(0, self.explode)
                return
            self.connection.sendText("ok " + payload.decode())

        def explode(self):
            raise RuntimeError("boom in timer")

        def onClose(self, wasClean, code, reason):
            if self.connection.request.path == "/close":
                raise RuntimeError("boom in close")
'''


def test_example_plugin_is_served_listed_and_named(tmp_path, serviceFactory):
    """
    The example plugin copied into a plugin directory on the path is served,
    listed by --list-handlers and named in the 400 reason.
    """
    path = examplePluginDir(tmp_path)
    listed = twistd("--list-handlers", pythonpath=[path])
    assert listed.returncode == 0
    assert "shout\t" in listed.stdout
    service = serviceFactory(pythonpath=[path])
    assert "supported: chat, clock, echo, shout" in refusal(service.url(), "nope")[1]
    with open_(service.url("/yard"), "shout") as a, open_(service.url("/yard"), "shout") as b:
        a.send("hello")
        for ws in (a, b):
            assert recvJSON(ws)["message"] == "HELLO"
        a.send(b"\x00")
        assert closeCode(a) == (1003, "shout takes text only")


def test_two_plugins_claiming_one_subprotocol_fail_start_up(tmp_path):
    """
    Two plugins for one subprotocol stop start-up with a message naming both.
    """
    twin = CRASHY.replace('"crashy"', '"echo"')
    path = pluginDir(tmp_path, twin=twin)
    result = twistd("--port", "0", pythonpath=[path])
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "subprotocol 'echo' is claimed by both" in output
    assert "wsservice.handlers.echo.EchoHandler" in output
    assert "twisted.plugins.twin.Crashy" in output


def test_broken_plugin_module_is_logged_and_others_load(tmp_path, serviceFactory):
    """
    A plugin module that fails to import is logged with its name, and the
    other handlers are still served.
    """
    path = pluginDir(tmp_path, broken="import no_such_module_here\n")
    service = serviceFactory(pythonpath=[path])
    service.waitForLog(r"plugin module twisted\.plugins\.broken failed to import")
    assert "No module named 'no_such_module_here'" in service.log()
    with open_(service.url(), "echo") as ws:
        ws.send("still here")
        assert ws.recv(timeout=10) == "still here"


def test_handler_exceptions_close_only_that_connection(tmp_path, serviceFactory):
    """
    An exception in a handler's constructor, open, message, timer or close
    path closes only that connection with 4000 and is logged with its
    traceback; other connections carry on.
    """
    service = serviceFactory(pythonpath=[pluginDir(tmp_path, crashy=CRASHY)])
    with open_(service.url("/ok"), "crashy") as bystander:
        for path in ("/init", "/open"):
            with open_(service.url(path), "crashy") as ws:
                assert closeCode(ws) == (4000, "internal error")
        for trigger in ("boom", "later"):
            with open_(service.url("/msg"), "crashy") as ws:
                ws.send(trigger)
                assert closeCode(ws) == (4000, "internal error")
        with open_(service.url("/close"), "crashy") as ws:
            ws.send("x")
            ws.recv(timeout=10)
        bystander.send("still")
        assert bystander.recv(timeout=10) == "ok still"
    for where in ("init", "open", "message", "timer", "close"):
        service.waitForLog(f"RuntimeError: boom in {where}")
    assert "Traceback" in service.log()


def importsIn(modules: str) -> set[str]:
    """
    The modules a fresh interpreter has loaded after importing C{modules}.
    """
    import subprocess
    import sys

    code = f"import sys, {modules}; print(' '.join(sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=str(REPO), capture_output=True,
                            text=True, check=True)
    return set(result.stdout.split())


def test_plugin_needs_no_autobahn_or_reactor_import():
    """
    Importing the interfaces and the built-in handlers imports neither
    Autobahn nor the reactor.
    """
    loaded = importsIn("wsservice.interfaces, wsservice.handlers.chat, "
                       "wsservice.handlers.echo, wsservice.handlers.clock")
    assert not {m for m in loaded if m.startswith("autobahn")}
    assert "twisted.internet.reactor" not in loaded


def test_no_module_imports_the_reactor():
    """
    No wsservice module imports the global reactor when it is imported.
    """
    loaded = importsIn("wsservice.tap, wsservice.registry, wsservice.service, "
                       "wsservice.web.frontdoor, wsservice.web.resources, "
                       "wsservice.websocket.protocol, wsservice.websocket.factory, "
                       "wsservice.rooms.redis.hub, wsservice.workers.supervisor, "
                       "wsservice.workers.worker, wsservice.testing")
    assert "twisted.internet.reactor" not in loaded

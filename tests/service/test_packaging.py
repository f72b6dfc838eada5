"""
The way users install: a wheel built from this checkout, installed into a
fresh virtual environment, gives a working twistd wsservice that serves the
client page from any working directory.
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
import urllib.request
import venv
import zipfile
from pathlib import Path

import pytest

from tests.support.processes import REPO, ServiceProcess
from tests.support.wsclient import open_


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(REPO)],
        check=True, cwd=str(out),
    )
    (built,) = out.glob("wsservice-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """
    A fresh venv with the wheel installed; its dependencies come from the
    test environment through a .pth file, so no download is needed.
    """
    root = tmp_path_factory.mktemp("venv")
    venv.create(root, with_pip=True)
    python = root / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
                   check=True)
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "test-dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return python


def test_wheel_holds_the_plugin_and_the_client_but_no_cache(wheel):
    """
    The wheel ships the twisted/plugins drop-ins and the static client with
    its modules in static/js/, and neither an __init__.py under twisted/ nor
    a dropin.cache.
    """
    names = zipfile.ZipFile(wheel).namelist()
    assert "twisted/plugins/wsservice_tap.py" in names
    assert "twisted/plugins/wsservice_handlers.py" in names
    assert "wsservice/static/index.html" in names
    modules = {f"wsservice/static/js/{m.name}" for m in (REPO / "static" / "js").glob("*.js")}
    assert "wsservice/static/js/main.js" in modules and modules <= set(names)
    assert not [n for n in names if n.startswith("twisted/") and n.endswith("__init__.py")]
    assert not [n for n in names if n.endswith("dropin.cache")]


def test_installed_twistd_lists_and_serves_from_any_directory(installed, tmp_path):
    """
    In the fresh venv, twistd --help lists wsservice, and the service started
    outside the checkout serves the client page and WebSockets.
    """
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    twistd = [str(installed), "-c", "from twisted.scripts.twistd import run; run()"]
    listing = subprocess.run([*twistd, "--help"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert "wsservice" in listing.stdout

    class InstalledService(ServiceProcess):
        def command(self) -> list[str]:
            return [*twistd, "-n", "--pidfile=", "wsservice", *self.args]

    service = InstalledService("--port", "0", "--interface", "127.0.0.1", cwd=str(tmp_path))
    service.pythonpath = []
    service.start()
    try:
        with urllib.request.urlopen(service.url("/", "http"), timeout=10) as response:
            assert response.status == 200
            page = response.read()
        assert page == (REPO / "static" / "index.html").read_bytes()
        with open_(service.url(), "echo") as ws:
            ws.send("installed")
            assert ws.recv(timeout=10) == "installed"
        assert str(REPO) not in service.log()
    finally:
        service.stop()

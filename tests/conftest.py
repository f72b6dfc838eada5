from tests.support import serviceFactory  # noqa: F401  (a fixture)

import pytest


@pytest.fixture(scope="module")
def service_default():
    """
    One service with default options, shared by a module's tests.
    """
    from tests.support import ServiceProcess

    proc = ServiceProcess("--port", "0", "--interface", "127.0.0.1").start()
    yield proc
    proc.stop()

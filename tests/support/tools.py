"""
External programs a test needs: required under CI, optional on a
developer's machine.
"""

from __future__ import annotations

import os
import shutil

import pytest


def requireTool(name: str, path: str | None = None) -> str:
    """
    The path of an external program the test needs: a missing one skips the
    test on a developer's machine and fails it under C{CI=true}.
    """
    found = shutil.which(path or name)
    if found is None:
        message = f"{name} is not installed (.ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found

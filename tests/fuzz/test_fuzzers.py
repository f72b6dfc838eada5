"""
The short run of every fuzz target that C{make test} makes: a few seconds
each, from the committed seeds, with libFuzzer's seed fixed so a run
explores the same inputs each time.  A finding fails the test with the
crashing input, how the target reads it and the traceback.  C{make fuzz}
runs them longer, from a growing corpus.
"""

from __future__ import annotations

import os

import pytest

from tests.fuzz import run

#: Seconds per target; the four take about 30 s together with their start-up.
SECONDS = float(os.environ.get("FUZZ_TEST_SECONDS", "5"))


def requireAtheris() -> None:
    """
    Skip without atheris on a developer's machine, fail under C{CI=true}.
    """
    try:
        import atheris  # noqa: F401
    except ImportError:
        message = ("atheris is not installed (the test extras install it on x86-64 Linux: "
                   "pip install '.[test]')")
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.mark.parametrize("target", run.TARGETS)
def test_fuzz_target_finds_nothing_in_a_short_run(target, tmp_path):
    """
    The target runs for a few seconds without a failure: no exception
    escapes the code under test and its properties hold.
    """
    requireAtheris()
    result = run.runTarget(target, SECONDS, corpus=tmp_path / "corpus", seed=1,
                           artifacts=tmp_path / "artifacts")
    if not result.ok:
        pytest.fail(result.report(), pytrace=False)

"""
The short run of every fuzz target that C{make test} makes: a fixed
number of inputs each (3 to 5 s on a quiet machine), from the committed
seeds, with libFuzzer's seed fixed, so every run tries much the same
inputs.  A finding fails the test with the crashing input, how the target
reads it and the traceback.  C{make fuzz} runs the targets longer, from a
growing corpus.
"""

from __future__ import annotations

import os

import pytest

from tests.fuzz import run

#: A cap on each short run, for a machine much slower than this one.
CAP_SECONDS = 60


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
    The target runs its share of inputs without a failure: no exception
    escapes the code under test and its properties hold.
    """
    requireAtheris()
    result = run.runTarget(target, CAP_SECONDS, corpus=tmp_path / "corpus", seed=1,
                           runs=run.SHORT_RUNS[target], artifacts=tmp_path / "artifacts")
    if not result.ok:
        pytest.fail(result.report(), pytrace=False)

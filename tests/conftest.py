import os

import pytest
from hypothesis import settings

from roofline.cli.app import main

#: CI runs the same hypothesis examples every time (a red build is reproducible, never a coin toss);
#: HYPOTHESIS_PROFILE=explore draws new examples, as a fuzz campaign does (tests/cli/test_fuzz.py --seed)
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


@pytest.fixture
def run_cli(capsys):
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""
    def run(*args: str):
        code = main(list(args))
        cap = capsys.readouterr()
        return code, cap.out, cap.err
    return run

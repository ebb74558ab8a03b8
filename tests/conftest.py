import pytest

from roofline.cli.app import main


@pytest.fixture
def run_cli(capsys):
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""
    def run(*args: str):
        code = main(list(args))
        cap = capsys.readouterr()
        return code, cap.out, cap.err
    return run

"""The layout refactor changed no output: `analyze --format json`, `sweep --format csv` and
`capacity --format json` for a few configurations are byte-identical to files captured before the move
(tests/golden/, commands in tests/golden/cases.txt, run from that folder)."""
import shlex
from pathlib import Path

import pytest

from roofline.cli.app import main

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
CASES = [line.split("\t") for line in (GOLDEN / "cases.txt").read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("name,command", CASES, ids=[c[0] for c in CASES])
def test_output_is_byte_identical_to_before_the_move(name, command, capsys, monkeypatch):
    monkeypatch.chdir(GOLDEN)
    assert main(shlex.split(command)) == 0
    assert capsys.readouterr().out == (GOLDEN / name).read_text()

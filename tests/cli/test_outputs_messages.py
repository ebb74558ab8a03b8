"""Issue 16, classes 6 and 7: outputs go through one safe writer (never through a link or onto a device, no
clobbering, a full disk is one error line), huge grids are refused with their row count, and messages speak the
user's words (flags and files, hints everywhere, no numpy warnings, no empty --gpu, no warning about a flag the
user never gave)."""
import ast
import errno
import gc
import json
import os
import shutil
import sys
import warnings
from pathlib import Path

import pytest

from roofline import outfile
from roofline.errors import RooflineError

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "profiles" / "cpu-quick-vm.json"
WORKLOAD = ROOT / "examples" / "workload-chat.json"


def _one_error(err: str) -> str:
    """The single `Error:` line of a failed command, after checking there is no traceback, exactly one Error
    and one Hint line, and no temporary file named."""
    assert "Traceback" not in err and "Exception ignored" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and sum(line.startswith("Hint: ") for line in err.splitlines()) == 1, err
    assert ".tmp" not in err, err
    return errors[0]


# ------------------------------------------------------------------------------------------- class 6: outputs

def test_a_symlink_target_is_refused_and_what_it_points_to_is_untouched(tmp_path, run_cli):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "plot.png"
    link.symlink_to(victim)
    code, _, err = run_cli("plot", "memory", "-o", str(link))
    assert code == 2 and f"{link}" in _one_error(err) and "symbolic link" in err
    assert link.is_symlink() and victim.read_text() == "keep me"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_target_is_refused_without_opening_it(tmp_path, run_cli):
    """A FIFO stands in for /dev/null-like special files: opening it for writing would block; replacing it
    (as `bench -o /dev/null` did as root) would destroy it. Refused before anything is opened or measured."""
    fifo = tmp_path / "out.json"
    os.mkfifo(fifo)
    code, _, err = run_cli("spreadsheet", "-o", str(tmp_path / "x.xlsx"))  # a normal write still works
    assert code == 0, err
    for args in (["plot", "regime", "-o", str(tmp_path / "fifo.png")], ["bench", "--device", "cpu", "-o", str(fifo)]):
        if args[0] == "plot":
            os.mkfifo(tmp_path / "fifo.png")
        if args[0] == "bench":
            pytest.importorskip("torch")
        code, _, err = run_cli(*args)
        assert code == 2 and "named pipe (FIFO)" in _one_error(err), err
    assert (fifo.stat().st_mode & 0o170000) == 0o010000  # still a FIFO


def test_a_directory_target_is_refused(tmp_path, run_cli):
    (tmp_path / "d.svg").mkdir()
    code, _, err = run_cli("plot", "memory", "-o", str(tmp_path / "d.svg"))
    assert code == 2 and "is a directory" in _one_error(err)


def test_bench_never_clobbers_an_existing_profile_without_force(tmp_path, run_cli, monkeypatch):
    pytest.importorskip("torch")
    import roofline.cli.bench as cli_bench
    from roofline.measure.bench import default_output

    calls = []

    def fake_bench(dev, quick, out, *a, **kw):  # stands in for minutes of measuring: the shipped profile
        calls.append(out)
        return Path(shutil.copy(PROFILE, out))
    monkeypatch.setattr(cli_bench, "run_bench", fake_bench)
    existing = tmp_path / "mine.json"
    existing.write_text("{}")
    code, _, err = run_cli("bench", "--device", "cpu", "--quick", "-o", str(existing), "--no-progress")
    line = _one_error(err)
    assert code == 2 and str(existing) in line and "already exists" in line and "--force" in err
    assert existing.read_text() == "{}" and calls == []  # refused before measuring anything
    # the default path (a tracked file under profiles/) is protected the same way
    monkeypatch.chdir(tmp_path)
    default = default_output("cpu", True)
    default.parent.mkdir()
    default.write_text("{}")
    code, _, err = run_cli("bench", "--device", "cpu", "--quick", "--no-progress")
    assert code == 2 and str(default) in _one_error(err) and calls == []
    code, out, err = run_cli("bench", "--device", "cpu", "--quick", "--no-progress", "--force")
    assert code == 0 and calls == [default], err


def test_report_regenerates_its_own_files_but_not_through_a_link(tmp_path, run_cli):
    code, _, err = run_cli("report", "--out-dir", str(tmp_path), "--name", "r")
    assert code == 0, err
    html = tmp_path / "r" / "index.html"
    html.write_text("old")
    assert run_cli("report", "--out-dir", str(tmp_path), "--name", "r")[0] == 0
    assert html.read_text() != "old"  # regenerated, as --help says
    victim = tmp_path / "victim.md"
    victim.write_text("keep me")
    (tmp_path / "r" / "report.md").unlink()
    (tmp_path / "r" / "report.md").symlink_to(victim)
    code, _, err = run_cli("report", "--out-dir", str(tmp_path), "--name", "r")
    assert code == 2 and "symbolic link" in _one_error(err) and victim.read_text() == "keep me"
    assert not [p for p in (tmp_path / "r").iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("command", [["spreadsheet", "-o", "{d}/c.xlsx"], ["report", "--out-dir", "{d}"],
                                     ["plot", "roofline", "-o", "{d}/r.svg"]])
@pytest.mark.parametrize("code_errno", [errno.ENOSPC, errno.EACCES])
def test_disk_full_or_no_permission_is_one_error_line(tmp_path, run_cli, monkeypatch, command, code_errno):
    """A full disk (or a permission error) while the file is written: one Error naming the user's path and a
    hint, no traceback now or later (the workbook's ZipFile used to print one from its destructor), no
    temporary file left behind, nothing at the target."""
    def fail(fd):
        raise OSError(code_errno, os.strerror(code_errno))
    monkeypatch.setattr(outfile.os, "fsync", fail)
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    code, _, err = run_cli(*[a.format(d=tmp_path / "out") for a in command])
    gc.collect()
    line = _one_error(err)
    assert code == 1 and os.strerror(code_errno) in line and str(tmp_path / "out") in line
    assert ("disk is full" in err) == (code_errno == errno.ENOSPC)
    assert unraisable == []
    left = [p for p in (tmp_path / "out").rglob("*") if p.is_file()] if (tmp_path / "out").exists() else []
    assert left == []


def test_check_target_and_write_text(tmp_path):
    p = tmp_path / "a" / "b.txt"
    assert outfile.write_text(p, "one", overwrite=False) == p and p.read_text() == "one"
    with pytest.raises(RooflineError, match="already exists") as e:
        outfile.write_text(p, "two", overwrite=False)
    assert e.value.hint and "`force`" in e.value.hint and p.read_text() == "one"
    p.chmod(0o640)
    outfile.write_text(p, "three", overwrite=True)
    assert p.read_text() == "three" and (p.stat().st_mode & 0o777) == 0o640  # permissions kept
    with pytest.raises(RooflineError, match="path is empty"):
        outfile.check_target("", True)


def test_a_huge_sweep_is_refused_with_its_row_count(run_cli):
    batches = ",".join(str(b) for b in range(1, 1001))  # 1,000 batches x 3 contexts = 3,000 rows
    code, out, err = run_cli("sweep", "--batch", batches)
    line = _one_error(err)
    assert code == 2 and out == "" and "3,000 rows" in line and "1,000 batches x 3 contexts" in line
    assert "--limit 3000" in err
    code, out, err = run_cli("sweep", "--batch", batches, "--format", "csv")  # CSV: up to 100,000 by default
    assert code == 0 and len(out.splitlines()) == 3_000 + 1, err
    code, out, err = run_cli("sweep", "--batch", "1,2", "--context", "512", "--limit", "1", "--format", "json")
    assert code == 2 and "2 rows" in _one_error(err)
    code, out, _ = run_cli("sweep", "--batch", batches, "--limit", "3000", "--format", "json")
    assert code == 0 and len(json.loads(out)) == 3_000


# ------------------------------------------------------------------------------------------ class 7: messages

def _calls_without_hint(root: Path) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None))
                    == "RooflineError"):
                continue
            hint = next((k.value for k in node.keywords if k.arg == "hint"), node.args[1] if len(node.args) > 1
                        else None)
            if any(k.arg is None for k in node.keywords):  # **kwargs: cannot tell
                continue
            if hint is None or (isinstance(hint, ast.Constant) and not hint.value):
                bad.append(f"{path.relative_to(root.parent)}:{node.lineno}")
    return bad


def test_every_roofline_error_has_a_hint():
    """Every `RooflineError(...)` written in roofline/ passes a hint (the CLI prints it as `Hint:`)."""
    bad = _calls_without_hint(ROOT / "roofline")
    assert bad == [], "RooflineError without hint= at " + ", ".join(bad)


def test_the_hint_check_can_fail(tmp_path):
    pkg = tmp_path / "roofline"
    pkg.mkdir()
    (pkg / "m.py").write_text("from roofline.errors import RooflineError\n"
                              "def f():\n    raise RooflineError('x must be 1', exit_code=2)\n"
                              "def g():\n    raise RooflineError('y', hint='do z')\n")
    assert _calls_without_hint(pkg) == ["roofline/m.py:3"]


COMMON = [
    ["analyze"], ["analyze", "--model", "deepseek-v3", "--tp", "8"], ["sweep", "--tp", "1,2,4"],
    ["analyze", "--profile", str(PROFILE), "--weights", "fp32", "--activations", "fp32", "--kv", "fp32"],
    ["capacity", "--model", "llama-3.1-8b", "--rate", "1", "--profile", str(PROFILE), "--precision", "fp32"],
    ["capacity", "--model", "llama-3.1-70b", "--workload", str(WORKLOAD), "--gpu", "h100-sxm"],
    ["simulate", "--workload", str(WORKLOAD), "--requests", "500"],
]


@pytest.mark.parametrize("args", COMMON, ids=[" ".join(a[:3]) for a in COMMON])
def test_no_numpy_runtime_warning_on_common_commands(run_cli, args):
    """A CPU profile has no link between devices: TP > 1 used to compute 0 x inf and inf - inf (NaN) and print
    numpy's RuntimeWarnings on stderr of a successful run."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, _, err = run_cli(*args)
    assert code == 0, err
    runtime = [f"{w.filename}:{w.lineno}: {w.message}" for w in caught if issubclass(w.category, RuntimeWarning)]
    assert runtime == [] and "RuntimeWarning" not in err


@pytest.mark.parametrize("args", [["analyze", "--gpu", ""], ["sweep", "--gpu", " "],
                                  ["simulate", "--gpu", "", "--rate", "1"], ["capacity", "--gpu", "", "--rate", "1"],
                                  ["report", "--gpu", ""]])
def test_an_empty_gpu_is_an_error_not_the_default(run_cli, args):
    code, out, err = run_cli(*args)
    assert code == 2 and "--gpu is empty" in _one_error(err) and out == ""


def test_no_warning_about_a_gpu_the_user_never_gave(run_cli):
    for args in (["capacity", "--model", "llama-3.1-8b", "--rate", "1", "--precision", "fp32"],
                 ["simulate", "--rate", "1", "--precision", "fp32", "--requests", "200"]):
        _, _, err = run_cli(*args, "--profile", str(PROFILE))
        assert "ignored" not in err, err
    # a --gpu the user did give is still warned about (the check can fail)
    _, _, err = run_cli("simulate", "--rate", "1", "--precision", "fp32", "--requests", "200",
                        "--profile", str(PROFILE), "--gpu", "h100-sxm")
    assert "--gpu h100-sxm ignored" in err


def test_capacity_with_a_profile_has_one_candidate_device(run_cli):
    """Without --gpu the profile's device is the candidate once (not once per default GPU it replaced)."""
    code, out, err = run_cli("capacity", "--model", "llama-3.1-8b", "--rate", "1", "--precision", "fp32",
                             "--tp", "1", "--profile", str(PROFILE), "--format", "json")
    assert code == 0, err
    assert [c["gpu"] for c in json.loads(out)["candidates"]] == ["cpu"]


@pytest.mark.parametrize("flag", ["--slo-tpot-ms", "--slo-ttft-ms"])
def test_a_value_that_underflows_names_the_flag_not_the_field(run_cli, tmp_path, flag):
    """5e-324 ms is > 0 but 0 s: the error is about the flag the user wrote, not `traffic slo_tpot_s`."""
    code, _, err = run_cli("spreadsheet", flag, "5e-324", "-o", str(tmp_path / "c.xlsx"))
    line = _one_error(err)
    assert code == 2 and flag in line and "slo_" not in line and "traffic" not in line


def test_a_histogram_header_after_a_comment_is_a_header(tmp_path):
    from roofline.specs.workload import read_histogram_csv
    p = tmp_path / "h.csv"
    p.write_text("# output lengths\ntokens,count\n100,3\n200,1\n")
    assert read_histogram_csv(p) == ((100, 200), (3.0, 1.0))
    p.write_text("tokens,count\n100,3\ntokens,count\n")  # a second header is an error, and says where
    with pytest.raises(RooflineError, match="line 3"):
        read_histogram_csv(p)


def test_a_published_entry_error_names_the_field_not_a_flag(tmp_path, run_cli):
    from roofline.measure.published import default_path
    data = json.loads(Path(default_path()).read_text())
    data["measurements"] = [dict(data["measurements"][0], num_gpus=3)]
    p = tmp_path / "m.json"
    p.write_text(json.dumps(data))
    code, _, err = run_cli("published", "--data", str(p))
    line = _one_error(err)
    assert code == 2 and str(p) in line and "entry" in line and "'num_gpus'" in line
    assert "--replicas" not in err and "'replicas'" in err

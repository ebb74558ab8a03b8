"""Property-based fuzzing of the whole CLI (issue 16): random argument vectors and corrupted copies of the shipped
spec, model, workload, fleet, histogram and profile files, run in-process.

Every case must exit 0, 1 or 2; print no traceback; print an `Error:` line when it fails; print no NaN or
infinity and no negative time on success; emit no RuntimeWarning; and finish within a time bound.

In CI a few hundred derandomized examples run. A long campaign runs locally:

    ROOFLINE_FUZZ_EXAMPLES=20000 python -m pytest -q tests/cli/test_fuzz.py      # stops at the first failure
    python tests/cli/test_fuzz.py --cases 20000 --seed 1                          # counts every failure by class

The commands that start processes or measure hardware (bench, bench-collectives, search) are left out: their
argument checking is covered by their own tests.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("ROOFLINE_FUZZ_EXAMPLES", "0") or 0)
CASE_TIMEOUT_S = int(os.environ.get("ROOFLINE_FUZZ_TIMEOUT_S", "60"))
SKIP_COMMANDS = {"bench", "bench-collectives", "search"}
#: commands that render plots or write workbooks take seconds: drawn less often
SLOW_COMMANDS = {"report", "spreadsheet", "plot"}

SOURCES = {  # kind -> a shipped file to corrupt
    "spec": ROOT / "hardware_specs" / "h100-sxm.json",
    "model": ROOT / "roofline" / "specs" / "model_catalog" / "llama-3.1-8b.json",
    "workload": ROOT / "examples" / "workload-chat.json",
    "fleet": ROOT / "examples" / "fleet.json",
    "profile": ROOT / "profiles" / "cpu-quick-vm.json",
    "published": ROOT / "roofline" / "measure" / "data" / "published_measurements.json",
    "histogram": ROOT / "examples" / "output-lengths.csv",
}
ODD_NUMBERS = ["0", "-1", "1", "2", "3", "7", "64", "0.5", "-0.5", "nan", "inf", "-inf", "NaN", "1e308", "1e-400",
               "5e-324", "2147483648", "9223372036854775807", "9223372036854775808", "1" + "0" * 40, "abc", "",
               " ", "1,2", "1,,2", ",", "0x10", "1_000", "8,64,256"]
ODD_STRINGS = ["", " ", "none", "fp8", "int4", "bf16", "fp4", "fp32", "tf32", "int8", "fp8,int4", "bf16/fp8/fp8",
               "h100-sxm", "a100-sxm-80gb", "h200-sxm", "cpu", "H100", "llama-3.1-8b", "llama-3.1-70b",
               "deepseek-v3", "mixtral-8x7b", "lognormal:inf:0", "lognormal:600:0.8", "uniform:1:99999999999999999999",
               "uniform:128:2048", "uniform:0:0", "fixed:-1", "\x00", "é", "../roofline-fuzz-escape", "a" * 300]
FILE_OPTIONS = {"--model": "model", "--gpu": "spec", "--gpus": "spec", "--prefill-gpu": "spec",
                "--decode-gpu": "spec", "--workload": "workload", "--fleet": "fleet", "--profile": "profile",
                "--data": "published"}
ARGUMENT_KINDS = {("validate", "profile"): "profile", ("gpus", "name"): "spec", ("models", "name"): "model"}
OUTPUT_OPTIONS = {"--out", "--out-dir"}  # (--output is output tokens in every fuzzed command)
ODD_JSON = [None, -1, 0, 1e308, -1e308, "x", "", [], {}, True, 2 ** 70, -(2 ** 70), float("nan"), float("inf"),
            [[[[]]]], 0.5, 1]
TIME_KEY = re.compile(r'"(\w*_s)":\s*(-[0-9.eE+-]+)')


def _commands() -> dict[str, tuple[list, list]]:
    """command -> (its options as (flag, is_flag), its positional argument names), read from the app itself so
    that new options are fuzzed too."""
    import typer.main
    from roofline.cli.app import app
    cmd = typer.main.get_command(app)
    found = {}
    for name, sub in sorted(cmd.commands.items()):
        if name in SKIP_COMMANDS:
            continue
        options = [(p.opts[0], bool(getattr(p, "is_flag", False))) for p in sub.params
                   if p.param_type_name == "option" and p.opts[0] != "--help"]
        arguments = [p.name for p in sub.params if p.param_type_name == "argument"]
        found[name] = (options, arguments)
    return found


def _leaves(x, path=()):
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _leaves(v, path + (i,))
    yield path


def _set(x, path, value):
    if not path:
        return value
    target = x
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    return x


def _delete(x, path):
    target = x
    for p in path[:-1]:
        target = target[p]
    if isinstance(target, dict):
        target.pop(path[-1], None)
    elif isinstance(target, list) and target:
        target.pop(path[-1])
    return x


def corrupt(kind: str, rng: random.Random, workdir: Path) -> str:
    """A corrupted copy of a shipped file of `kind` (or an odd path), written under workdir."""
    choice = rng.random()
    if choice < 0.06:
        return rng.choice(["", "/nonexistent/file.json", str(workdir), "/dev/null", "/dev/zero", str(_fifo(workdir))])
    src = SOURCES[kind]
    raw = src.read_bytes()
    dst = workdir / f"{kind}-{rng.randrange(10 ** 9)}{src.suffix}"
    if kind == "histogram" or choice < 0.3:  # byte-level damage
        how = rng.randrange(5)
        if how == 0:
            raw = raw[:rng.randrange(len(raw) + 1)]
        elif how == 1:
            i = rng.randrange(len(raw))
            raw = raw[:i] + bytes([rng.randrange(256)]) + raw[i + 1:]
        elif how == 2:
            raw = b"\xff\xfe" + raw
        elif how == 3:
            raw = b"[" * rng.choice([10, 1000, 100000]) + raw
        else:
            raw = raw.replace(b"1", rng.choice([b"nan", b"inf", b"-1", b"99999999999999999999999", b"\xe9"]))
        dst.write_bytes(raw)
    else:  # JSON-level damage: one leaf replaced or removed
        data = json.loads(raw)
        paths = [p for p in _leaves(data) if p]
        path = rng.choice(paths)
        data = _delete(data, path) if rng.random() < 0.25 else _set(data, path, rng.choice(ODD_JSON))
        dst.write_text(json.dumps(data, allow_nan=True))
    if kind == "workload" and not (workdir / "output-lengths.csv").exists():  # the file the workload names
        shutil.copy(SOURCES["histogram"], workdir / "output-lengths.csv")
    return str(dst)


def _fifo(workdir: Path) -> Path:
    p = workdir / "a-fifo"
    if not p.exists():
        os.mkfifo(p)
    return p


def make_case(rng: random.Random, commands: dict, workdir: Path) -> list[str]:
    names = sorted(commands)
    while True:
        name = rng.choice(names)
        if name not in SLOW_COMMANDS or rng.random() < 0.15:
            break
    options, arguments = commands[name]
    argv = [name]
    for arg in arguments:
        if rng.random() < 0.6:
            kind = ARGUMENT_KINDS.get((name, arg))
            argv.append(corrupt(kind, rng, workdir) if kind and rng.random() < 0.5
                        else rng.choice(ODD_STRINGS + ODD_NUMBERS))
    for flag, is_flag in rng.sample(options, k=min(len(options), rng.randrange(1, 5))):
        if is_flag:
            argv.append(flag)
            continue
        if flag in OUTPUT_OPTIONS:  # only ever under workdir: never a device or a real file
            value = str(workdir / rng.choice(["out", "out.png", "out.xlsx", "out.json", "sub/dir/out.png", ""]))
        elif flag == "--format":
            value = rng.choice(["table", "json", "csv", "xml", ""])
        elif flag in FILE_OPTIONS and rng.random() < 0.5:
            value = corrupt(FILE_OPTIONS[flag], rng, workdir)
        elif flag in ("--prompt", "--output") and rng.random() < 0.3:
            value = corrupt("histogram", rng, workdir) if rng.random() < 0.3 else rng.choice(ODD_STRINGS)
        else:
            value = rng.choice(ODD_NUMBERS + ODD_STRINGS)
        argv += [flag, value]
    if "--format" not in argv and rng.random() < 0.5:
        argv += ["--format", "json"]
    return argv


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def run_case(argv: list[str], workdir: Path) -> str | None:
    """None when the case behaves; otherwise the class of failure and a short reason. Runs in workdir, so
    that default output paths land there."""
    from roofline.cli.app import main
    out, err = io.StringIO(), io.StringIO()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_TIMEOUT_S)
    cwd = os.getcwd()
    try:
        os.chdir(workdir)
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err):
            warnings.simplefilter("always")
            code = main(list(argv))
    except _Timeout:
        return f"hang: over {CASE_TIMEOUT_S} s"
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException as e:  # noqa: BLE001 - the point is to find exactly these
        import traceback
        tb = traceback.extract_tb(e.__traceback__)[-1]
        return f"traceback: {type(e).__name__} at {Path(tb.filename).name}:{tb.lineno}: {str(e)[:120]}"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        os.chdir(cwd)
    stdout, stderr = out.getvalue(), err.getvalue()
    if "Traceback" in stderr:
        return "traceback: printed on stderr"
    if code not in (0, 1, 2):
        return f"exit code {code}"
    if code != 0:
        if not any(line.startswith("Error:") for line in stderr.splitlines()):
            return f"no Error: line (exit {code}): {stderr[:120]!r}"
        return None
    runtime = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    if runtime:
        return f"RuntimeWarning on success: {runtime[0].message}"
    if re.search(r"\b(nan|NaN|-?inf|-?Infinity)\b", stdout):
        return "NaN/inf in output on success"
    negative = TIME_KEY.search(stdout)
    if negative:
        return f"negative time on success: {negative.group(1)} = {negative.group(2)}"
    return None


@pytest.fixture(scope="module")
def commands():
    return _commands()


@pytest.mark.slow
@settings(max_examples=EXAMPLES or 300, deadline=None, derandomize=not EXAMPLES, database=None,
          suppress_health_check=list(HealthCheck))
@given(rng=st.randoms(use_true_random=False))
def test_cli_fuzz(commands, rng):
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        argv = make_case(rng, commands, work)
        failure = run_case(argv, work)
        assert failure is None, f"roofline {' '.join(map(repr, argv))}: {failure}"


#: cases the campaigns found (each crashed or warned before its fix); they stay fixed
FOUND = [
    ["spreadsheet", "--requests-per-s", "1e308"],  # OverflowError: ceil(inf) replicas
    ["train", "--budget-flops", "5e-324", "--mtbf-h", "64"],  # ZeroDivisionError: a 0-parameter model
    ["analyze", "--prompt", "lognormal:100:1e400"],  # the printer turned ":100:" into an emoji
    ["models", "/dev/zero"],  # MemoryError: read to the end of an endless device
    ["capacity", "--rate", "5e-324"],
    ["simulate", "--think-time-s", "inf", "--turns", "3"],
    ["train", "--tp", "0"],  # ZeroDivisionError: --gpus % (tp x pp x cp) before the layout was checked
    ["train", "--pp", "0", "--gpus", "8"],
    ["simulate", "--rate", "1", "--requests", "50", "--seed", "-1"],  # ValueError: numpy takes no negative seed
    ["capacity", "--model", "llama-3.2-1b", "--rate", "1", "--disaggregated", "--tp", "1", "--precision", "bf16",
     "--profile", str(ROOT / "profiles" / "cpu-quick-vm.json")],  # "inf" KV transfer: a CPU has no network
]


@pytest.mark.parametrize("argv", FOUND, ids=lambda a: " ".join(a)[:40])
def test_found_cases_stay_fixed(argv, tmp_path):
    assert run_case(argv, tmp_path) is None


def test_a_corrupted_spec_with_a_huge_memory_is_refused(tmp_path):
    """memory_bytes 1e308 used to pass, then warn (invalid cast) and print a nonsense batch."""
    spec = json.loads(SOURCES["spec"].read_text())
    spec["memory_bytes"]["value"] = 1e308
    path = tmp_path / "big.json"
    path.write_text(json.dumps(spec))
    assert run_case(["analyze", "--gpu", str(path)], tmp_path) is None
    from roofline.cli.app import main
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(["analyze", "--gpu", str(path)]) == 1
    assert "memory_bytes" in err.getvalue() and "1e21" in err.getvalue()


def campaign(cases: int, seed: int) -> int:
    """Run `cases` random cases and print how many failed, by class and by place."""
    commands = _commands()
    rng = random.Random(seed)
    counts: dict[str, int] = {}
    examples: dict[str, list[str]] = {}
    t0 = time.perf_counter()
    for _ in range(cases):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp) / "work"
            work.mkdir()
            argv = make_case(rng, commands, work)
            failure = run_case(argv, work)
        if failure:
            key = re.sub(r"\d+(\.\d+)? s$", "", failure)[:160]
            counts[key] = counts.get(key, 0) + 1
            examples.setdefault(key, argv)
    elapsed = time.perf_counter() - t0
    failed = sum(counts.values())
    print(f"{cases} cases in {elapsed:.0f} s: {failed} failed, "
          f"{sum(v for k, v in counts.items() if k.startswith('traceback'))} tracebacks, "
          f"{sum(v for k, v in counts.items() if k.startswith('hang'))} hangs, {len(counts)} distinct")
    for key, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"{n:6d}  {key}\n        roofline {' '.join(map(repr, examples[key]))}")
    return 1 if failed else 0


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(description="A long CLI fuzz campaign that counts failures.")
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    a = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    sys.exit(campaign(a.cases, a.seed))

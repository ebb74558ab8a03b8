"""Library errors speak the library's language; the CLI shows them in flags.

roofline.specs, .model, .plan and .measure name their own arguments in a RooflineError: `param` and the first
word of the message ("tp must be >= 1"), or `name` / `name=value` in backquotes. No message or hint there
spells a command-line flag ("--tp"); the CLI (cli.common.flag_text, used by cli.app.main) writes them as
flags. Naming a command (`roofline bench`) is not a flag and is allowed."""
import ast
import re
from pathlib import Path

import pytest

from roofline.cli.common import FLAGS, flag_text
from roofline.errors import RooflineError

PKG = Path(__file__).resolve().parent.parent / "roofline"
LIBRARY = ("specs", "model", "plan", "measure")
FLAG = re.compile(r"--([a-z]|$)")  # "--tp", or an f-string's "--" before its {placeholder}


def _name(func: ast.expr) -> str | None:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def _strings(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _error_texts(tree: ast.Module) -> tuple[int, list[str]]:
    """(calls found, the strings they are built from): calls of RooflineError, of this module's subclasses of
    it and of its functions that build or raise one (found to a fixed point), their arguments' string constants
    and those of the names the arguments use, wherever the module assigns them or loops over them."""
    builders = {"RooflineError"} | {c.name for c in ast.walk(tree) if isinstance(c, ast.ClassDef)
                                    and any(_name(b) == "RooflineError" for b in c.bases)}
    funcs = [f for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))]
    while True:
        more = {f.name for f in funcs if f.name not in builders and any(
            isinstance(c, ast.Call) and _name(c.func) in builders for c in ast.walk(f))}
        if not more:
            break
        builders |= more
    calls = [c for c in ast.walk(tree) if isinstance(c, ast.Call) and _name(c.func) in builders]
    args = [a for c in calls for a in (*c.args, *(k.value for k in c.keywords))]
    used = {n.id for a in args for n in ast.walk(a) if isinstance(n, ast.Name)}
    def binds_used(targets) -> bool:
        return any(isinstance(n, ast.Name) and n.id in used for t in targets for n in ast.walk(t))

    assigned = [n.value for n in ast.walk(tree) if isinstance(n, (ast.Assign, ast.AugAssign, ast.AnnAssign))
                and n.value is not None and binds_used(n.targets if isinstance(n, ast.Assign) else [n.target])]
    assigned += [n.iter for n in ast.walk(tree) if isinstance(n, (ast.For, ast.comprehension))
                 and binds_used([n.target])]
    return len(calls), [s for node in (*args, *assigned) for s in _strings(node)]


def test_library_errors_name_no_flags():
    found, bad = 0, []
    for layer in LIBRARY:
        for path in sorted((PKG / layer).rglob("*.py")):
            n, texts = _error_texts(ast.parse(path.read_text()))
            found += n
            bad += [f"{path.relative_to(PKG.parent)}: {t!r}" for t in texts if FLAG.search(t)]
    assert found > 50  # the scan sees the library's errors
    assert not bad, "library errors that spell CLI flags (name the argument instead):\n" + "\n".join(bad)


def test_the_scan_catches_a_flag_in_a_message_a_helper_or_a_hint_variable():
    src = '''
def _positive(flag, v):
    raise RooflineError(f"{flag} must be >= 1, got {v}")
def check(batch):
    _positive("--batch", batch)
def peak(w):
    hint = "computes in bf16"
    hint += f"; try --weights {w}"
    raise RooflineError("no peak", hint=hint)
def slo(ttft, metric):
    for flag, v in (("--ttft", ttft),):
        raise RooflineError(f"{flag} must be > 0, got {v}")
    raise RooflineError(f"--{metric}-p99-s is below")
'''
    _, texts = _error_texts(ast.parse(src))
    assert [t for t in texts if FLAG.search(t)] == ["--batch", "--", "; try --weights ", "--ttft"]


@pytest.mark.parametrize("text, param, shown", [
    ("tp must be >= 1, got 0", "tp", "--tp must be >= 1, got 0"),
    ("tp=3 does not divide the 32 attention heads of llama-3.1-8b", "tp",
     "--tp 3 does not divide the 32 attention heads of llama-3.1-8b"),
    ("memory_utilization must be in (0, 1], got 1.5", "memory_utilization",
     "--memory-utilization must be in (0, 1], got 1.5"),
    ("ttft_p99_s=0.2 is below the workload's p50 target of 0.5 s", "ttft_p99_s",
     "--ttft-p99-s 0.2 is below the workload's p50 target of 0.5 s"),
    ("tpot_p50_slo not met even at the lowest load", "tp", "tpot_p50_slo not met even at the lowest load"),
    ("use `device=cpu` to measure this machine's CPU", None, "use --device cpu to measure this machine's CPU"),
    ("drop `gpu_spec`, or run with `device=cuda`", None, "drop --gpu, or run with --device cuda"),
    ("weight-only quantisation is `weights=int4` `activations=bf16`", None,
     "weight-only quantisation is --weights int4 --activations bf16"),
    ("Run `roofline gpus` to list them", None, "Run `roofline gpus` to list them"),  # a command, not an argument
    ("unknown weights precision 'fp7'", "weights", "unknown weights precision 'fp7'"),  # param not leading
])
def test_the_cli_shows_arguments_as_flags(text, param, shown):
    assert flag_text(text, param) == shown


def test_every_flag_is_a_flag():
    assert all(re.fullmatch(r"--[a-z0-9-]+", f) for f in FLAGS.values())


@pytest.mark.parametrize("args, lines", [
    (["analyze", "--tp", "0"], ["Error: --tp must be >= 1, got 0", "Hint: valid TP degrees: 1, 2, 4, 8, 16, 32"]),
    (["analyze", "--gpu", "a100-sxm-80gb", "--weights", "int4", "--activations", "fp8"],
     ["Error: NVIDIA A100 SXM4 80GB has no fp8 matrix throughput",
      "Hint: a100-sxm-80gb computes in: bf16, fp16, fp32, fp64, int8, tf32; weight-only quantisation is "
      "--weights int4 --activations bf16"]),
    (["capacity", "--rate", "5", "--turns", "0"], ["Error: --turns must be >= 1, got 0",
                                                   "Hint: turns per conversation"]),
    (["capacity", "--rate", "-1"], ["Error: --rate must be between 1e-06 and 1e+07, got -1.0", "Hint: requests per second"]),
    (["simulate"], ["Error: no workload given", "Hint: pass --workload FILE, or --rate N with --prompt and --output"]),
])
def test_cli_errors_read_in_flags(run_cli, args, lines):
    code, out, err = run_cli(*args)
    assert code == 2 and out == "" and err.splitlines() == lines


def test_a_candidate_row_names_the_flag(run_cli):
    import json
    code, out, _ = run_cli("capacity", "--model", "llama-3.1-8b", "--rate", "5", "--gpu", "h100-sxm", "--tp", "3,1",
                           "--precision", "bf16", "--format", "json")
    reasons = {r["tp"]: r.get("reason") for r in json.loads(out)["candidates"]}
    assert code == 0 and reasons[3] == "--tp 3 does not divide the 32 attention heads of llama-3.1-8b"


def test_param_is_optional():
    e = RooflineError("x")
    assert (e.message, e.hint, e.exit_code, e.param) == ("x", None, 1, None)

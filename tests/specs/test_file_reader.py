"""The one validating file reader (roofline/jsonfile.py) and the content checks of the files it feeds (issue 16,
classes 3 and 5): a file that is not what it claims (a FIFO, /dev/zero, a directory, an empty path, bytes that
are not UTF-8, JSON nested 100,000 deep, an oversize file) and a file whose fields are wrong (NaN or 1e308 in a
config.json, `"gpus": 5` in a fleet file, `"distribution": []` or 2**64 in a workload file) each end in one
RooflineError naming the file, through the library and through the CLI (exit 1 or 2, `Error:` and `Hint:`, no
traceback), and never hang."""
import copy
import json
import os
import signal
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from roofline.errors import RooflineError
from roofline.jsonfile import MAX_FILE_BYTES, MAX_JSON_DEPTH, _too_deep, parse_json, read_json, read_text
from roofline.measure.profile import load_profile
from roofline.measure.published import load_measurements
from roofline.specs.fleet import MAX_GPUS, load_fleet, parse_fleet
from roofline.specs.hardware import load_gpu
from roofline.specs.models import load_model, parse_config
from roofline.specs.workload import MAX_TOKENS, load_workload, parse_length_flag, parse_workload

ROOT = Path(__file__).resolve().parents[2]
WORKLOAD = ROOT / "examples" / "workload-chat.json"
CATALOG = ROOT / "roofline" / "specs" / "model_catalog"


@contextmanager
def deadline(seconds: float = 5.0):
    """Fail (instead of hanging the suite) when the body blocks longer than `seconds`, e.g. opening a FIFO."""
    def expired(signum, frame):
        raise TimeoutError(f"blocked for more than {seconds} s")
    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _cli_fails_cleanly(run_cli, *args: str) -> str:
    with deadline():
        code, out, err = run_cli(*args)
    assert code in (1, 2), (args, code, err)
    assert err.startswith("Error: ") and "\nHint: " in err and "Traceback" not in err, (args, err)
    return err


# ------------------------------------------------------------------------ paths that are not a regular file

@pytest.fixture
def fifo(tmp_path) -> Path:
    p = tmp_path / "config.json"  # a name that looks right: only its kind is wrong
    os.mkfifo(p)
    return p


LOADERS = [(load_model, "model config"), (load_gpu, "GPU spec file"), (load_workload, "workload file"),
           (load_fleet, "fleet file"), (load_measurements, "measurements file"), (load_profile, "profile")]


@pytest.mark.parametrize("load, what", LOADERS)
def test_a_fifo_is_refused_without_blocking(fifo, load, what):
    with deadline(), pytest.raises(RooflineError) as e:
        load(str(fifo))
    assert e.value.message == f"{what} {fifo} is a named pipe (FIFO), not a regular file"
    assert e.value.exit_code == 2 and "regular file" in e.value.hint


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
@pytest.mark.parametrize("load, what", LOADERS)
def test_dev_zero_is_refused_before_reading(load, what):
    with deadline(), pytest.raises(RooflineError) as e:
        load("/dev/zero")
    assert e.value.message == f"{what} /dev/zero is a character device, not a regular file"


def test_a_directory_is_refused_by_name(tmp_path):
    with pytest.raises(RooflineError) as e:
        load_workload(tmp_path)
    assert e.value.message == f"workload file {tmp_path} is a directory, not a regular file"
    assert e.value.exit_code == 2 and "examples/workload-chat.json" in e.value.hint
    with pytest.raises(RooflineError, match="directory has no config.json"):  # a model directory: its config
        load_model(tmp_path)


@pytest.mark.parametrize("load", [read_text, read_json])
@pytest.mark.parametrize("path", ["", "   "])
def test_an_empty_path_is_refused_not_read_as_the_current_directory(load, path):
    with pytest.raises(RooflineError) as e:
        load(path, "fleet file", "examples/fleet.json")
    assert e.value.message == "fleet file: the path is empty" and e.value.exit_code == 2


def test_an_empty_model_is_refused_even_where_a_config_json_is_in_the_current_directory(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text((CATALOG / "llama-3.2-1b.json").read_text())
    monkeypatch.chdir(tmp_path)  # Path("") is ".", and ./config.json exists: it must not be loaded
    with pytest.raises(RooflineError) as e:
        load_model("")
    assert e.value.message.startswith("model is empty") and e.value.param == "model" and e.value.exit_code == 2


def test_a_missing_file_is_a_usage_error(tmp_path):
    with pytest.raises(RooflineError) as e:
        read_json(tmp_path / "none.json", "workload file", "examples/workload-chat.json")
    assert e.value.message == f"workload file {tmp_path / 'none.json'} not found" and e.value.exit_code == 2


# ------------------------------------------------------------------------ contents that are not what they claim

def test_bytes_that_are_not_utf8_name_the_offset(tmp_path):
    p = tmp_path / "w.json"
    p.write_bytes(b'{"name": "caf\xe9"}')  # Latin-1 e-acute: byte 13 is 0xe9 ({"name": "caf is 13 bytes)
    with pytest.raises(RooflineError) as e:
        load_workload(p)
    assert e.value.message == (f"workload file {p} is not UTF-8 text: byte 0xe9 at byte offset 13 (line 1, "
                               "column 14) cannot be decoded")
    assert e.value.exit_code == 1 and "UTF-8" in e.value.hint


def test_a_byte_order_mark_is_dropped(tmp_path):
    p = tmp_path / "f.json"
    p.write_bytes(b'\xef\xbb\xbf{"regions": {"r": {"h100-sxm": 8}}}')
    assert load_fleet(p).supply == {("r", "h100-sxm"): (8, None)}


@pytest.mark.parametrize("load", [load_model, load_gpu, load_workload, load_fleet, load_measurements, load_profile])
def test_json_nested_100000_deep_is_refused_before_parsing(tmp_path, load):
    p = tmp_path / "deep.json"
    p.write_text("[" * 100_000)
    with deadline(), pytest.raises(RooflineError) as e:
        load(str(p))
    # the 101st '[' (column 101) is the first beyond the 100 levels allowed
    assert e.value.message == f"{p}: JSON nested more than 100 levels deep (at line 1 column 101)"


def test_nesting_is_counted_outside_strings_only():
    inside = json.dumps(["[" * 500 + '\\"{{' + "{" * 500])  # brackets, an escaped quote and a backslash in a string
    assert parse_json(inside, "x", "e") == ["[" * 500 + '\\"{{' + "{" * 500]
    at_limit = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert parse_json(at_limit, "x", "e") is not None
    with pytest.raises(RooflineError, match="nested more than 100 levels"):
        parse_json("[" + at_limit + "]", "x", "e")


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab\n'),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(alphabet='[{"\\x'), inner,
                                                                                    max_size=3),
                     max_leaves=40)


def _depth(x) -> int:
    if isinstance(x, list):
        return 1 + max((_depth(v) for v in x), default=0)
    if isinstance(x, dict):
        return 1 + max((_depth(v) for v in x.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(doc=_JSON, limit=st.integers(0, 8))
def test_the_depth_scan_agrees_with_the_real_nesting(doc, limit):
    text = json.dumps(doc)
    assert (_too_deep(text, limit) is None) == (_depth(doc) <= limit)


@pytest.mark.parametrize("text, problem", [
    ('{"a": NaN}', "NaN is not a JSON number"),
    ('{"a": -Infinity}', "-Infinity is not a JSON number"),
    ('{"a": 1e999}', "the number 1e999 is beyond the range of a 64-bit float"),
    ('{"a": 1, "a": 2}', "duplicate key 'a'"),
    ("[" + "9" * 5000 + "]", "a number has more than 4300 digits"),
])
def test_what_json_does_not_allow_is_refused(text, problem):
    with pytest.raises(RooflineError) as e:
        parse_json(text, "f.json", "examples/fleet.json")
    assert e.value.message.startswith("f.json: ") and problem in e.value.message and e.value.hint


def test_an_oversize_file_is_refused_from_its_size_without_reading_it(tmp_path):
    p = tmp_path / "config.json"
    with open(p, "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: no disk space, no memory
    with pytest.raises(RooflineError) as e:
        load_model(p)
    assert e.value.message == f"model config {p} is {MAX_FILE_BYTES + 1:,} bytes, more than the 67,108,864 bytes " \
                              "a model config may have"


def test_the_size_limit_holds_while_reading(tmp_path):
    p = tmp_path / "h.csv"
    p.write_text("tokens,count\n" + "10,1\n" * 100)  # 13 + 5 x 100 = 513 bytes
    assert len(read_text(p, "histogram file", "e", max_bytes=513)) == 513
    with pytest.raises(RooflineError, match="is 513 bytes, more than the 512 bytes"):
        read_text(p, "histogram file", "e", max_bytes=512)


# ------------------------------------------------------------------------ class 5: fields, typed and ranged

def _catalog(name: str) -> dict:
    return json.loads((CATALOG / f"{name}.json").read_text())


@pytest.mark.parametrize("model, field, value, expected", [
    ("llama-3.1-8b", "partial_rotary_factor", float("nan"), "a number from 0 to 1"),
    ("llama-3.1-8b", "partial_rotary_factor", float("inf"), "a number from 0 to 1"),
    ("llama-3.1-8b", "partial_rotary_factor", 1e308, "a number from 0 to 1"),
    ("llama-3.1-8b", "partial_rotary_factor", "0.5", "a number from 0 to 1"),
    ("pythia-6.9b", "rotary_pct", float("nan"), "a number from 0 to 1"),
    ("pythia-6.9b", "rotary_pct", -0.5, "a number from 0 to 1"),
    ("deepseek-v3", "kv_lora_rank", 1e308, "a whole number from 1 to 16,777,216"),
    ("deepseek-v3", "kv_lora_rank", float("nan"), "a whole number from 1 to 16,777,216"),
    ("deepseek-v3", "kv_lora_rank", 0, "a whole number from 1 to 16,777,216"),
    ("llama-3.1-8b", "hidden_size", True, "a whole number from 1 to 16,777,216"),  # bool is not int
    ("llama-3.1-8b", "hidden_size", 2**70, "a whole number from 1 to 16,777,216"),
    ("llama-3.1-8b", "max_position_embeddings", 2**63, "a whole number from 1 to 2,147,483,647"),
    ("llama-3.1-8b", "num_hidden_layers", 32.5, "a whole number"),
    ("llama-3.1-8b", "tie_word_embeddings", "false", "true or false"),
    ("llama-3.1-8b", "hidden_act", ["silu"], "a string"),
    ("gpt-j-6b", "rotary_dim", 4096, "rotary_dim (4096) exceeds the head dimension (256)"),  # 4096 / 16 heads
    ("mistral-7b", "sliding_window", -1, "a whole number from 0 to 2,147,483,647"),
])
def test_config_fields_are_typed_and_ranged(model, field, value, expected):
    config = {**_catalog(model), field: value}
    with pytest.raises(RooflineError) as e:
        parse_config(config, model, source="cfg.json")
    assert e.value.message.startswith("cfg.json: ") and expected in e.value.message and e.value.hint
    if "exceeds" not in expected:
        assert f"'{field}'" in e.value.message


@pytest.mark.parametrize("meta, field", [({"published_parameters": "8B"}, "_roofline.published_parameters"),
                                         ({"published_parameters": 1.5}, "_roofline.published_parameters"),
                                         ({"display_name": 3}, "_roofline.display_name")])
def test_the_roofline_block_is_typed(meta, field):
    with pytest.raises(RooflineError, match=f"field '{field}'"):
        parse_config({**_catalog("llama-3.2-1b"), "_roofline": meta}, "m", source="cfg.json")


def test_layer_types_must_list_every_layer():
    config = {**_catalog("mistral-7b"), "layer_types": ["sliding_attention"] * 99, "sliding_window": 4096}
    with pytest.raises(RooflineError, match="field 'layer_types' must be a list of 32 attention types"):
        parse_config(config, "m", source="cfg.json")


def test_every_catalog_model_still_parses():
    for path in sorted(CATALOG.glob("*.json")):
        assert load_model(path.stem).parameters() > 0


@pytest.mark.parametrize("doc, field", [
    ({"gpus": 5, "regions": {"r": {"a": 1}}}, "gpus"),
    ({"gpus": {"a": {"price_per_gpu_hour": "2.5"}}, "regions": {"r": {"a": 1}}}, "gpus.a.price_per_gpu_hour"),
    ({"gpus": {"a": {"price_per_gpu_hour": 1e300}}, "regions": {"r": {"a": 1}}}, "gpus.a.price_per_gpu_hour"),
    ({"gpus": {"a": {"price_per_gpu_hour": 2, "region": "x"}}, "regions": {"r": {"a": 1}}}, "gpus.a.region"),
    ({"regions": 5}, "regions"),
    ({"regions": {"r": {"a": "8"}}}, "regions.r.a"),
    ({"regions": {"r": {"a": 2**64 + 1}}}, "regions.r.a"),
    ({"regions": {"r": {"a": MAX_GPUS + 1}}}, "regions.r.a"),
    ({"regions": {"r": {"a": {"available": 8, "price_per_gpu_hour": None, "spot": 1}}}}, "regions.r.a.spot"),
    ({"regions": {"r": {"a": 1}}, "description": ["x"]}, "description"),
])
def test_fleet_fields_are_typed_and_ranged(doc, field):
    with pytest.raises(RooflineError) as e:
        parse_fleet(doc, "fleet.json")
    assert e.value.message.startswith("fleet.json: ") and f"'{field}'" in e.value.message and e.value.hint


GOOD_WORKLOAD = {"arrival": {"rate_per_s": 5}, "prompt_tokens": 100, "output_tokens": 50}


def _set(doc: dict, path: str, value) -> dict:
    doc = copy.deepcopy(doc)
    *parents, last = path.split(".")
    d = doc
    for k in parents:
        d = d.setdefault(k, {})
    d[last] = value
    return doc


@pytest.mark.parametrize("field, value", [
    ("prompt_tokens.distribution", []),
    ("prompt_tokens.distribution", {"x": 1}),
    ("prompt_tokens", float("nan")),
    ("prompt_tokens", 2**64 + 1),
    ("output_tokens", True),
    ("arrival.rate_per_s", float("nan")),
    ("arrival.rate_per_s", 2**64),
    ("arrival.rate_per_s", "5"),
    ("arrival.daily_curve", [1.0] * 23 + [float("inf")]),
    ("arrival.daily_curve", [1.0] * 23 + [10**400]),
    ("arrival.daily_curve", [1e7] * 24),  # 5 requests/s x 1e7 is beyond MAX_RATE_PER_S
    ("conversation.turns", 2**64),
    ("conversation.turns", 1001),
    ("conversation.think_time_s", float("inf")),
    ("conversation.prefix_reuse", "yes"),
    ("slo.ttft_p99_s", float("nan")),
    ("name", 7),
])
def test_workload_fields_are_typed_and_ranged(field, value):
    base = {**GOOD_WORKLOAD, "prompt_tokens": {"distribution": "fixed", "value": 100}}
    doc = _set(base, field, value)
    with pytest.raises(RooflineError) as e:
        parse_workload(doc, "w.json")
    named = field if field != "arrival.daily_curve" or value[0] == 1e7 else "arrival.daily_curve[23]"
    assert e.value.message.startswith(f"w.json: field '{named}") and e.value.hint


def test_lognormal_lengths_are_ranged():
    for d in ({"distribution": "lognormal", "median": 1e300, "sigma": 1},
              {"distribution": "lognormal", "median": 100, "sigma": 1e300},
              {"distribution": "uniform", "min": 1, "max": 2**64}):
        with pytest.raises(RooflineError, match="w.json: field 'prompt_tokens."):
            parse_workload({**GOOD_WORKLOAD, "prompt_tokens": d}, "w.json")
    for spec in ("uniform:1:99999999999999999999", "lognormal:inf:0", "lognormal:100:nan", str(MAX_TOKENS + 1)):
        with pytest.raises(RooflineError) as e:
            parse_length_flag(spec, "prompt")
        assert e.value.exit_code == 2 and e.value.param == "prompt"


@pytest.mark.parametrize("rows, problem", [
    ("10,nan\n", "found 10,nan"),
    ("10,inf\n", "found 10,inf"),
    ("nan,1\n", "found nan,1"),
    ("99999999999999999999,1\n", "found 99999999999999999999,1"),
    ("10.5,1\n", "found 10.5,1"),
    ("10,-1\n", "found 10,-1"),
    ("tokens,count\n", "expected two numbers 'tokens,count', found 'tokens,count'"),
])
def test_histogram_rows_are_typed_and_ranged(tmp_path, rows, problem):
    p = tmp_path / "h.csv"
    p.write_text("tokens,count\n" + rows)
    with pytest.raises(RooflineError) as e:
        parse_workload({**GOOD_WORKLOAD, "prompt_tokens": {"distribution": "empirical", "csv": "h.csv"}}, "w.json",
                       tmp_path)
    assert e.value.message.startswith(f"{p}: line 2") and problem in e.value.message


def test_a_histogram_is_read_by_the_reader(tmp_path, fifo):
    (tmp_path / "h.csv").write_bytes(b"tokens,count\n10,1\xff\n")
    with pytest.raises(RooflineError, match=r"histogram file .*h.csv is not UTF-8 text: byte 0xff at byte offset 17"):
        parse_length_flag(f"csv:{tmp_path / 'h.csv'}", "prompt")
    with deadline(), pytest.raises(RooflineError, match="is a named pipe"):
        parse_length_flag(f"csv:{fifo}", "prompt")


# ------------------------------------------------------------------------ the same through the CLI

def _bad_files(tmp_path: Path) -> dict[str, Path]:
    files = {"fifo": tmp_path / "pipe.json", "deep": tmp_path / "deep.json", "latin1": tmp_path / "latin1.json",
             "oversize": tmp_path / "big.json", "dir": tmp_path / "folder"}
    os.mkfifo(files["fifo"])
    files["deep"].write_text("[" * 100_000)
    files["latin1"].write_bytes(b'{"name": "caf\xe9"}')
    with open(files["oversize"], "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)
    files["dir"].mkdir()
    return files


COMMANDS = [("models", "{f}"), ("analyze", "--model", "{f}"), ("gpus", "{f}"),
            ("capacity", "--model", "llama-3.2-1b", "--workload", "{f}"),
            ("capacity", "--model", "llama-3.2-1b", "--workload", str(WORKLOAD), "--fleet", "{f}"),
            ("published", "--data", "{f}"), ("validate", "{f}")]


@pytest.mark.parametrize("kind", ["fifo", "deep", "latin1", "oversize", "dir", "devzero"])
def test_cli_refuses_each_kind_of_bad_file_cleanly(run_cli, tmp_path, kind):
    if kind == "devzero" and not Path("/dev/zero").exists():
        pytest.skip("needs /dev/zero")
    f = "/dev/zero" if kind == "devzero" else str(_bad_files(tmp_path)[kind])
    for command in COMMANDS:
        err = _cli_fails_cleanly(run_cli, *(a.format(f=f) for a in command))
        assert f in err.splitlines()[0], err  # the error names the file


def test_cli_empty_paths(run_cli):
    err = _cli_fails_cleanly(run_cli, "analyze", "--model", "")
    assert err.startswith("Error: --model is empty")
    _cli_fails_cleanly(run_cli, "capacity", "--model", "llama-3.2-1b", "--workload", "")
    _cli_fails_cleanly(run_cli, "published", "--data", "")


def test_cli_bad_fields(run_cli, tmp_path):
    nan_config = tmp_path / "nan-config.json"
    nan_config.write_text(json.dumps(_catalog("pythia-6.9b")).replace('"rotary_pct": 0.25', '"rotary_pct": NaN'))
    big_rank = tmp_path / "ds.json"
    big_rank.write_text(json.dumps({**_catalog("deepseek-v3"), "kv_lora_rank": 1e308}))
    fleet = tmp_path / "fleet.json"
    fleet.write_text(json.dumps({"gpus": 5, "regions": {"us": {"h100-sxm": 4}}}))
    workload = tmp_path / "w.json"
    workload.write_text(json.dumps({**GOOD_WORKLOAD, "prompt_tokens": {"distribution": []}}))
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps({**GOOD_WORKLOAD, "output_tokens": {"distribution": "fixed", "value": 2**64 + 1}}))
    cases = [(("models", str(nan_config)), "NaN is not a JSON number"),
             (("analyze", "--model", str(big_rank)), "field 'kv_lora_rank' must be a whole number"),
             (("capacity", "--model", "llama-3.2-1b", "--workload", str(WORKLOAD), "--fleet", str(fleet)),
              "field 'gpus' must be an object"),
             (("capacity", "--model", "llama-3.2-1b", "--workload", str(workload)),
              "field 'prompt_tokens.distribution' must be one of"),
             (("capacity", "--model", "llama-3.2-1b", "--workload", str(huge)), "field 'output_tokens.value'")]
    for args, text in cases:
        err = _cli_fails_cleanly(run_cli, *args)
        assert text in err.splitlines()[0], err

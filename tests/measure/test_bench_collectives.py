"""The collectives benchmark for real: torchrun with 2 gloo ranks on this CPU, 8 B to 64 KiB, 3 samples per size
(about 15 s); the profile's structure, nccl-tests' busbw factors, the fit and `roofline validate` on it, the
error paths. The NCCL run needs two GPUs and is skipped without them."""
import contextlib
import io
import json
import math

import numpy as np
import pytest

from roofline.cli.app import main
from roofline.errors import RooflineError
from roofline.measure import collectives as C

torch = pytest.importorskip("torch")
MAX_BYTES = 65536


@pytest.fixture(scope="module")
def profile_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("coll") / "collectives-cpu.json"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["bench-collectives", "--nproc", "2", "--device", "cpu", "--output", str(path),
                     "--max-bytes", str(MAX_BYTES), "--iters", "3", "--no-progress"])
    assert code == 0, err.getvalue()
    assert out.getvalue().strip() == str(path)
    return path


@pytest.fixture(scope="module")
def profile(profile_path):
    return json.loads(profile_path.read_text())


pytestmark = pytest.mark.slow


def test_profile_structure(profile):
    assert (profile["schema"], profile["kind"], profile["schema_version"], profile["complete"]) == \
        (C.SCHEMA, "collectives", C.VERSION, True)
    prov = profile["provenance"]
    assert prov["backend"] == "gloo" and prov["world_size"] == 2 and len(prov["device_names"]) == 2
    assert prov["hosts"] and prov["torch_version"] == torch.__version__
    assert all(not v["available"] and v["reason"] for v in prov["nvlink"].values())
    assert prov["settings"]["max_bytes"] == MAX_BYTES and prov["settings"]["iters"] == 3
    rows = profile["results"]
    assert {r["collective"] for r in rows} == set(C.OPS) and {r["group"] for r in rows} == {2}
    for op in C.OPS:
        ok = [r for r in rows if r["collective"] == op and r["status"] == "ok"]
        assert [r["size"] for r in ok] == C.sizes(8, MAX_BYTES)  # 8 B doubling to 64 KiB
        for r in ok:
            assert set(r["samples_s"]) == {"0", "1"} and all(len(s) == 3 for s in r["samples_s"].values())
            assert r["time_s"] == max(r["rank_time_s"]) > 0  # the slowest rank


@pytest.mark.parametrize("op, factor", [("all_reduce", 1.0), ("reduce_scatter", 0.5), ("all_gather", 0.5),
                                        ("all_to_all", 0.5), ("broadcast", 1.0), ("send_recv", 1.0)])
def test_busbw_is_algbw_times_the_nccl_tests_factor(profile, op, factor):
    rows = [r for r in profile["results"] if r["collective"] == op]
    assert rows
    for r in rows:
        assert r["busbw_factor"] == factor == C.factor(op, 2)
        assert r["algbw_bytes_per_s"] == pytest.approx(r["bytes"] / r["time_s"])
        assert r["busbw_bytes_per_s"] == pytest.approx(r["algbw_bytes_per_s"] * factor)


def test_fit_has_finite_held_out_errors(profile):
    for op in C.OPS:
        f = profile["fit"][op]["2"]
        bw = f["bandwidth_bytes_per_s"]  # None (JSON for inf): the time does not grow with the size up to 64 KiB
        assert f["latency_s"] >= 0 and (bw is None or bw > 0)
        assert math.isfinite(f["held_out_median_abs_error"]) and math.isfinite(f["held_out_p90_abs_error"])
        assert not set(f["fit_sizes"]) & set(f["held_out_sizes"])


def test_validate_exits_0(profile_path):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert main(["validate", str(profile_path)]) == 0
        assert main(["validate", str(profile_path), "--format", "json"]) == 0
    text = out.getvalue()
    assert "collective" in text and "all_reduce" in text
    result = json.loads(text[text.index("\n{") + 1:])
    fam = result["families"]["collective"]
    assert fam["held_out"] == 6 * 7 and math.isfinite(fam["median_abs_error"])


def test_fit_recovers_latency_and_bandwidth():
    s = np.array(C.sizes(8, 2**24), dtype=float)
    lat, bw = C.fit_curve(s, C.predict(50e-6, 2e9, s, 1.0), 1.0)
    assert lat == pytest.approx(50e-6) and bw == pytest.approx(2e9)


def test_groups_and_sizes():
    assert C.groups(2) == [2] and C.groups(6) == [2, 4, 6] and C.groups(16) == [2, 4, 8, 16]
    assert C.sizes(8, 64) == [8, 16, 32, 64] and C.sizes(8, 100) == [8, 16, 32, 64]


def test_bad_nproc_is_one_error_line(run_cli):
    code, out, err = run_cli("bench-collectives", "--nproc", "0")
    assert code == 2 and out == ""
    assert [line for line in err.splitlines() if line.startswith("Error:")] == [err.splitlines()[0]]
    with pytest.raises(RooflineError) as e:
        C.spawn(1)
    assert e.value.param == "nproc" and e.value.exit_code == 2


def test_a_failed_run_propagates_torchrun_exit_code(run_cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, out, err = run_cli("bench-collectives", "--nproc", "2", "--device", "cpu", "--max-bytes", "8",
                             "--iters", "1", "--no-progress", "--output", str(blocker / "p.json"))
    assert code != 0 and out == ""
    assert err.startswith("Error: the collectives benchmark failed: torchrun exited with code")
    assert sum(line.startswith("Error:") for line in err.splitlines()) == 1


def test_run_rank_needs_torchrun(monkeypatch, tmp_path):
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(RooflineError) as e:
        C.run_rank(tmp_path / "p.json")
    assert e.value.exit_code == 2


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")
def test_nccl_two_gpus(tmp_path):
    path = C.spawn(2, tmp_path / "g.json", max_bytes=2**20, iters=3, device="cuda")
    doc = json.loads(path.read_text())
    assert doc["provenance"]["backend"] == "nccl" and all(r["status"] == "ok" for r in doc["results"])


def _synthetic_profile(path, latency_s=20e-6, busbw=100e9):
    """A collectives profile whose all-reduce over 2 ranks follows t = latency + S x 1 / busbw exactly
    (2 ranks: busbw factor 2 (2-1)/2 = 1)."""
    from roofline.measure.collectives import build_profile
    rows = []
    for k in range(10, 26):
        size = 2 ** k
        t = latency_s + size / busbw
        rows += [{"collective": "all_reduce", "group": 2, "size": size, "bytes": size, "elements": size // 4,
                  "status": "ok", "rank": r, "samples_s": [t, t, t]} for r in (0, 1)]
    ranks = [{"rank": r, "host": "h", "device": "cpu", "nvlink": {"available": False}} for r in (0, 1)]
    doc = build_profile(ranks, rows, "gloo", 2, "2.13.0", ["test"], {"max_bytes": 2 ** 25})
    path.write_text(json.dumps(doc))
    return path


def test_profile_replaces_the_modelled_collective(tmp_path, run_cli):
    """`analyze --profile COLLECTIVES.json` keeps the datasheet GPU and times every 2-rank all-reduce by the
    fit: Llama-3.1-8B TP 2, batch 1 decode: message 1 token x 4096 x 2 B = 8192 B, so one all-reduce takes
    20 us + 8192 / 100e9 = 20.08 us, 32 of them per layer type."""
    path = _synthetic_profile(tmp_path / "coll.json")
    code, out, err = run_cli("analyze", "--tp", "2", "--profile", str(path), "--format", "json")
    assert code == 0, err
    r = json.loads(out)
    assert r["gpu"] == "h100-sxm"
    ar = [c for c in r["decode"]["communication"] if c["name"] == "allreduce_attn"][0]
    assert ar["algorithm"] == "measured" and ar["message_bytes"] == 8192
    assert ar["time_s"] == pytest.approx(32 * (20e-6 + 8192 / 100e9), rel=1e-6)
    # TP 4 was not measured: the communication model's own time
    code, out, _ = run_cli("analyze", "--tp", "4", "--profile", str(path), "--format", "json")
    ar4 = [c for c in json.loads(out)["decode"]["communication"] if c["name"] == "allreduce_attn"][0]
    assert ar4["algorithm"] != "measured"

"""Disaggregated serving (roofline.plan.disagg): the KV transfer, the two pools sized apart for their own SLOs,
infeasible pairs with a reason, and `roofline capacity --disaggregated` / `roofline.capacity(disaggregated=True)`."""
import dataclasses
import json
import math

import pytest

import roofline
from roofline.cli.app import main
from roofline.model.memory import MemorySettings
from roofline.plan.capacity import Candidate, candidate_setup, replica_capacity
from roofline.plan.disagg import cheapest, disaggregated_table, kv_transfer_bytes, kv_transfer_s
from roofline.plan.options import DISAGGREGATED_COLUMNS, MODE_COLUMNS
from roofline.specs.hardware import load_gpu
from roofline.specs.models import load_model
from roofline.specs.workload import SLO, LengthDist, Workload

H100, H200 = load_gpu("h100-sxm"), load_gpu("h200-sxm")
L8B, L70B = load_model("llama-3.1-8b"), load_model("llama-3.1-70b")
CHAT = Workload(40.0, LengthDist("fixed", value=1000), LengthDist("fixed", value=200),
                slo=SLO(ttft_p99_s=1.0, tpot_p99_s=0.04))
PRICES = {"h100-sxm": 2.5, "h200-sxm": 3.5}


def _pair(w=CHAT, pre=(H100, 1, "bf16"), dec=(H100, 1, "bf16"), model=L8B, prices=PRICES) -> dict:
    (row,) = disaggregated_table([Candidate(*pre)], [Candidate(*dec)], model, w, prices, MemorySettings())
    return row


def test_kv_transfer_time_by_hand():
    # llama-3.1-70b: 80 layers x 2 (K, V) x 8 KV heads x 128 = 163,840 elements per token, bf16 2 bytes
    # -> 327,680 B per token; 1000 tokens = 327.68e6 B. Four lanes (the smaller replica: tp4) of 81.92e6 B each
    # on a 50 GB/s NIC at the 0.94 achieved send/recv fraction: 81.92e6 / 47e9 = 1.74298e-3 s, plus the
    # network launch 6.6 us and one step 2.7 us = 1.75228e-3 s.
    size = kv_transfer_bytes(L70B, 2.0, 1000)
    assert float(size) == pytest.approx(327.68e6)
    assert float(kv_transfer_s(H100, H100, size, 4)) == pytest.approx(81.92e6 / (50e9 * 0.94) + 6.6e-6 + 2.7e-6,
                                                                      rel=1e-9)
    # the slower pool's NIC sets each lane's rate, whichever side it is on
    slow = dataclasses.replace(H200, scaleout_bandwidth_bytes_per_s=25e9)
    for a, b in ((H100, slow), (slow, H100)):
        assert float(kv_transfer_s(a, b, size, 4)) == pytest.approx(81.92e6 / (25e9 * 0.94) + 9.3e-6, rel=1e-9)


def test_pools_are_sized_from_their_rates():
    r = _pair()
    assert r["feasible"] and r["mode"] == "disaggregated"
    assert r["prefill_replicas"] == math.ceil(CHAT.peak_rate_per_s / r["prefill_max_request_rate_per_replica"])
    assert r["decode_replicas"] == math.ceil(CHAT.peak_rate_per_s / r["decode_max_request_rate_per_replica"])
    assert r["gpus"] == r["prefill_replicas"] + r["decode_replicas"]  # tp1 on both sides
    assert r["cost_per_hour"] == pytest.approx(2.5 * r["gpus"])
    # $/1M output tokens: cost per hour over the output tokens of an hour (40 req/s x 200 tokens)
    assert r["cost_per_million_output_tokens"] == pytest.approx(r["cost_per_hour"] / (40 * 200 * 3600) * 1e6)
    # the TTFT includes the transfer; the SLOs hold at the pools' operating points
    assert r["kv_transfer_s"] > 0 and r["ttft_p99_s"] <= 1.0 and r["tpot_p99_s"] <= 0.04
    assert set(DISAGGREGATED_COLUMNS) <= set(r) | {"reason"}


def test_the_transfer_is_part_of_the_prefill_ttft():
    s = candidate_setup(Candidate(H100, 1, "bf16"), L8B)
    bare = replica_capacity(s, CHAT, MemorySettings(), pool="prefill")
    slowed = replica_capacity(s, CHAT, MemorySettings(), pool="prefill", ttft_offset_s=(0.3, 0.3))
    assert bare["tpot_p99_s"] is None and bare["batch"] == 0.0  # no decoding on a prefill replica
    assert slowed["max_request_rate_per_replica"] < bare["max_request_rate_per_replica"]


def test_tighter_ttft_slo_needs_more_prefill_replicas():
    loose, tight = (_pair(dataclasses.replace(CHAT, slo=SLO(ttft_p99_s=t, tpot_p99_s=0.04))) for t in (1.0, 0.1))
    assert tight["feasible"] and tight["prefill_replicas"] > loose["prefill_replicas"]
    assert tight["decode_replicas"] == loose["decode_replicas"]  # the decode pool does not see the TTFT SLO


def test_tighter_tpot_slo_needs_more_decode_replicas():
    loose, tight = (_pair(dataclasses.replace(CHAT, slo=SLO(ttft_p99_s=1.0, tpot_p99_s=t))) for t in (0.04, 0.012))
    assert tight["feasible"] and tight["decode_replicas"] > loose["decode_replicas"]
    assert tight["prefill_replicas"] == loose["prefill_replicas"]


def test_decode_pool_on_another_gpu_type():
    same, other = _pair(), _pair(dec=(H200, 1, "bf16"))
    assert other["feasible"] and other["decode_gpu"] == "h200-sxm" and other["prefill_gpu"] == "h100-sxm"
    # more HBM bandwidth and capacity: at least the H100's rate per decode replica; prefill pool unchanged
    assert other["decode_max_request_rate_per_replica"] >= same["decode_max_request_rate_per_replica"]
    assert other["prefill_replicas"] == same["prefill_replicas"]
    assert other["cost_per_hour"] == pytest.approx(2.5 * other["prefill_gpus"] + 3.5 * other["decode_gpus"])
    # an unpriced pool leaves the pair without a cost, not without a size
    unpriced = _pair(dec=(H200, 1, "bf16"), prices={"h100-sxm": 2.5})
    assert unpriced["feasible"] and unpriced["cost_per_hour"] is None


@pytest.mark.parametrize("pre, dec, model, words", [
    ((H100, 3, "bf16"), (H100, 1, "bf16"), L8B, "prefill pool: tp=3"),            # TP does not divide the heads
    ((H100, 1, "bf16"), (H100, 1, "bf16"), L70B, "do not fit"),                   # 141 GB of weights on one H100
    ((H100, 1, "fp8"), (H100, 1, "bf16"), L8B, "as stored"),                      # KV formats differ
    ((dataclasses.replace(H100, scaleout_bandwidth_bytes_per_s=0.0), 1, "bf16"), (H100, 1, "bf16"), L8B,
     "no scale-out network"),
])
def test_infeasible_pairs_come_with_a_reason(pre, dec, model, words):
    r = _pair(pre=pre, dec=dec, model=model)
    assert not r["feasible"] and words in r["reason"]
    assert r.get("gpus") is None
    if words == "no scale-out network":  # no time at all, never inf (the table and CSV printed "inf")
        assert r["kv_transfer_s"] is None and r["kv_transfer_p50_s"] is None


def test_a_transfer_longer_than_the_ttft_slo_names_the_network():
    slow = dataclasses.replace(H100, scaleout_bandwidth_bytes_per_s=1e8)  # 0.1 GB/s: 131 MB takes ~1.4 s
    r = _pair(pre=(slow, 1, "bf16"))
    assert not r["feasible"] and r["prefill_limited_by"] == "kv_transfer" and r["prefill_bottleneck"] == "network"


def test_cheapest_of_both_kinds():
    colo = [{"feasible": True, "gpus": 8, "cost_per_million_output_tokens": 2.0}]
    dis = [{"mode": "disaggregated", "feasible": True, "gpus": 6, "cost_per_million_output_tokens": 1.5},
           {"mode": "disaggregated", "feasible": False}]
    assert cheapest(colo, dis)["gpus"] == 6
    assert cheapest(colo, dis[1:])["mode"] == "colocated"
    assert cheapest([], dis[1:]) is None


def _run(capsys, *args):
    code = main(["capacity", "--model", "llama-3.1-8b", "--rate", "40", "--prompt", "1000", "--output", "200",
                 "--gpu", "h100-sxm", "--tp", "1", "--precision", "bf16", "--price", "h100-sxm=2.5",
                 "--price", "h200-sxm=3.5", *args])
    return code, capsys.readouterr()


def test_cli_json_has_the_disaggregated_rows(capsys):
    code, cap = _run(capsys, "--disaggregated", "--decode-gpu", "h100-sxm", "--decode-gpu", "h200-sxm",
                     "--format", "json")
    doc = json.loads(cap.out)
    assert code == 0 and len(doc["disaggregated"]) == 2
    assert {r["decode_gpu"] for r in doc["disaggregated"]} == {"h100-sxm", "h200-sxm"}
    assert doc["cheapest"]["mode"] in ("colocated", "disaggregated") and doc["best"]["gpu"] == "h100-sxm"
    code, cap = _run(capsys, "--format", "json")
    assert code == 0 and "disaggregated" not in json.loads(cap.out) and "cheapest" not in json.loads(cap.out)


def test_cli_csv_and_table(capsys):
    code, cap = _run(capsys, "--disaggregated", "--format", "csv")
    lines = cap.out.splitlines()
    assert code == 0 and lines[0].split(",") == list(MODE_COLUMNS)
    assert [ln.split(",")[0] for ln in lines[1:]] == ["colocated", "disaggregated"]
    code, cap = _run(capsys, "--prefill-gpu", "h200-sxm")  # a pool's GPU implies --disaggregated
    assert code == 0 and "Disaggregated" in cap.out and "Cheapest of all" in cap.out


def test_cli_unknown_pool_gpu_is_an_error(capsys):
    code, cap = _run(capsys, "--decode-gpu", "no-such-gpu")
    assert code != 0 and "no-such-gpu" in cap.err and "Traceback" not in cap.err


def test_api_rows_have_a_mode():
    df = roofline.capacity(model="llama-3.1-8b", rate_per_s=40, prompt=1000, output=200, gpus="h100-sxm", tp=1,
                           precision="bf16", prices=PRICES, decode_gpus=["h100-sxm", "h200-sxm"])
    assert list(df.columns) == list(MODE_COLUMNS)
    assert list(df["mode"]) == ["colocated", "disaggregated", "disaggregated"]
    plain = roofline.capacity(model="llama-3.1-8b", rate_per_s=40, prompt=1000, output=200, gpus="h100-sxm",
                              tp=1, precision="bf16")
    assert "mode" not in plain.columns
    with pytest.raises(roofline.RooflineError) as e:
        roofline.capacity(model="llama-3.1-8b", rate_per_s=40, gpus="h100-sxm", tp=1, precision="bf16",
                          prefill_gpus=[])
    assert e.value.param == "prefill_gpus"

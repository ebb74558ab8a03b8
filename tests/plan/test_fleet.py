"""The fleet solver (roofline/plan/fleet.py): the cheapest mix of replicas that meets a load, and the load left
unserved when the fleet runs out. Tiny examples that can be solved by hand."""
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roofline.errors import RooflineError
from roofline.plan.fleet import plan_fleet
from roofline.specs.fleet import parse_fleet


def _rows():
    # A: 10 req/s on 1 GPU; B: 25 req/s on 2 GPUs
    return [{"gpu": "a", "tp": 1, "precision": "bf16", "feasible": True, "max_request_rate_per_replica": 10.0},
            {"gpu": "b", "tp": 2, "precision": "bf16", "feasible": True, "max_request_rate_per_replica": 25.0}]


def test_fleet_cheapest_mix():
    fleet = parse_fleet({"gpus": {"a": {"price_per_gpu_hour": 1.0}, "b": {"price_per_gpu_hour": 1.0}},
                         "regions": {"r1": {"a": 100, "b": 100}}})
    plan = plan_fleet(_rows(), fleet, 50.0, 1000.0)
    # 2 B replicas = 4 GPUs ($4/h) beat 5 A replicas ($5/h)
    assert plan["cost_per_hour"] == 4.0 and plan["gpus"] == 4 and not plan["at_capacity"]
    assert plan["mix"][0]["gpu"] == "b" and plan["mix"][0]["replicas"] == 2
    # 1000 output tokens/s x 3600 s = 3.6 M tokens per hour for $4: $1.11 per million
    assert plan["cost_per_million_output_tokens"] == pytest.approx(4.0 / 3.6)
    assert plan["headroom"] == 0.0 and plan["warnings"] == []  # 2 x 25 = exactly 50 req/s


def test_fleet_at_capacity_reports_unserved():
    fleet = parse_fleet({"gpus": {"a": {"price_per_gpu_hour": 1.0}},
                         "regions": {"r1": {"a": 3}, "r2": {"a": {"available": 2, "price_per_gpu_hour": 5}}}})
    plan = plan_fleet(_rows(), fleet, 80.0, 1000.0)
    # 5 A GPUs serve 50 of 80 req/s
    assert plan["at_capacity"] and plan["unserved_rate_per_s"] == pytest.approx(30.0)
    assert plan["served_rate_per_s"] == pytest.approx(50.0)
    assert plan["cost_per_hour"] == pytest.approx(3 * 1.0 + 2 * 5.0)


def test_the_cheap_region_fills_first():
    fleet = parse_fleet({"gpus": {"a": {"price_per_gpu_hour": 1.0}},
                         "regions": {"cheap": {"a": 2}, "dear": {"a": {"available": 10, "price_per_gpu_hour": 3.0}}}})
    plan = plan_fleet(_rows()[:1], fleet, 35.0, 100.0)
    # 35 req/s needs 4 A replicas (40 req/s): both cheap GPUs ($2) + 2 dear ones ($6) = $8/h
    by_region = {m["region"]: m for m in plan["mix"]}
    assert by_region["cheap"]["replicas"] == 2 and by_region["dear"]["replicas"] == 2
    assert plan["cost_per_hour"] == pytest.approx(8.0) and plan["replicas"] == 4
    assert by_region["dear"]["cost_per_hour"] == pytest.approx(6.0)
    assert plan["headroom"] == pytest.approx(0.125)  # 1 - 35 / 40


def test_a_tp_group_stays_inside_one_region():
    # 3 B GPUs in each region hold one TP-2 replica each (3 // 2 = 1): 2 x 25 = 50 req/s at most
    fleet = parse_fleet({"gpus": {"b": {"price_per_gpu_hour": 1.0}}, "regions": {"r1": {"b": 3}, "r2": {"b": 3}}})
    plan = plan_fleet(_rows(), fleet, 60.0, 100.0)
    assert plan["replicas"] == 2 and plan["gpus"] == 4
    assert plan["unserved_rate_per_s"] == pytest.approx(10.0) and plan["at_capacity"]


def test_without_prices_the_fewest_gpus_and_a_warning():
    fleet = parse_fleet({"regions": {"r1": {"a": 100, "b": 100}}})
    plan = plan_fleet(_rows(), fleet, 50.0, 1000.0)
    # 5 A replicas = 5 GPUs, 2 B replicas = 4 GPUs: the optimiser minimises GPUs
    assert plan["gpus"] == 4 and plan["cost_per_hour"] is None and plan["cost_per_million_output_tokens"] is None
    assert plan["mix"][0]["cost_per_hour"] is None
    assert len(plan["warnings"]) == 1 and "no price for a, b" in plan["warnings"][0]


def test_zero_demand_needs_nothing():
    fleet = parse_fleet({"gpus": {"a": {"price_per_gpu_hour": 1.0}}, "regions": {"r1": {"a": 4}}})
    plan = plan_fleet(_rows(), fleet, 0.0, 0.0)
    assert plan["replicas"] == 0 and plan["gpus"] == 0 and plan["cost_per_hour"] == 0.0 and plan["mix"] == []
    assert not plan["at_capacity"] and plan["unserved_rate_per_s"] == 0.0


@pytest.mark.parametrize("rows, regions", [
    ([{**_rows()[0], "feasible": False}], {"r1": {"a": 8}}),  # the only candidate does not fit the model
    (_rows()[1:], {"r1": {"b": 1}}),  # a TP-2 replica never fits 1 GPU
    (_rows(), {"r1": {"c": 8}}),  # the fleet has none of the candidates' GPUs
])
def test_no_feasible_candidate_is_an_error(rows, regions):
    with pytest.raises(RooflineError, match="no feasible candidate runs on the fleet's GPUs") as e:
        plan_fleet(rows, parse_fleet({"regions": regions}), 10.0, 100.0)
    assert re.search(r"fleet's GPU names match .*gpu.* names", e.value.hint)  # `gpu` (API) / --gpu (CLI)


@settings(max_examples=40, deadline=None)
@given(n_a=st.lists(st.integers(0, 6), min_size=1, max_size=3), n_b=st.lists(st.integers(0, 6), min_size=1, max_size=3),
       demand=st.floats(1.0, 300.0), price_a=st.floats(0.5, 4.0), price_b=st.floats(0.5, 4.0))
def test_supply_bounds_and_unserved_load(n_a, n_b, demand, price_a, price_b):
    regions = {f"r{i}": {"a": a} for i, a in enumerate(n_a)}
    for i, b in enumerate(n_b):
        regions.setdefault(f"r{i}", {})["b"] = b
    # most the fleet can serve: every A GPU a replica (10 req/s), every pair of B GPUs in a region one (25 req/s)
    most = 10.0 * sum(n_a) + 25.0 * sum(b // 2 for b in n_b)
    if most == 0:
        return  # nothing fits: covered by test_no_feasible_candidate_is_an_error
    fleet = parse_fleet({"gpus": {"a": {"price_per_gpu_hour": price_a}, "b": {"price_per_gpu_hour": price_b}},
                         "regions": regions})
    plan = plan_fleet(_rows(), fleet, demand, 100.0)
    assert plan["served_rate_per_s"] + plan["unserved_rate_per_s"] == pytest.approx(demand)
    assert plan["unserved_rate_per_s"] == pytest.approx(max(0.0, demand - most), abs=1e-6)
    for m in plan["mix"]:  # never more GPUs than a region has
        assert m["gpus"] <= regions[m["region"]][m["gpu"]]
    assert plan["cost_per_hour"] == pytest.approx(sum(m["cost_per_hour"] for m in plan["mix"]))

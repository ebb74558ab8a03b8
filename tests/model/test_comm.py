"""The communication model: hand-checked times (arithmetic in the comments), nccl-tests' busbw factors,
vectorization, and invariants with hypothesis.

Facts used below (roofline/specs/data/collectives.json): NVLink fraction 0.80, PCIe 0.60, network 0.94; launch
6.6 us; step 0.6 us (NVLink), 1.0 us (PCIe), 2.7 us (network); NVLS algbw 0.60 of the link, 25 us, from 5
GPUs; custom all-reduce 10 us per stage, one-shot below 256 KiB at 8 GPUs; all-to-all 0.78 (NVLink), 0.86
(network); send/recv 0.80 (NVLink), 0.94 (network). H100 SXM: NVLink 450 GB/s, NIC 50 GB/s per GPU, 8 per node.
"""
import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roofline.errors import RooflineError
from roofline.model.comm import (
    ALGORITHMS,
    COLLECTIVES,
    LINKS,
    CommTime,
    algbw_bytes_per_s,
    busbw_factor,
    collective_time,
    group_link,
)
from roofline.specs.hardware import list_gpus, load_gpu

GiB, MiB, KiB = 2**30, 2**20, 2**10
H100 = load_gpu("h100-sxm")
H100_NO_NVLS = dataclasses.replace(H100, nvlink_sharp=False)
NVLINK_RATE = 450e9 * 0.80  # 3.6e11 B/s achieved per direction on H100 NVLink


def _one(gpu, collective, size, group, span=None, custom_allreduce=True):
    r = collective_time(gpu, collective, size, group, span, custom_allreduce)
    return float(r.time_s), str(r.algorithm), str(r.link)


# ---------------------------------------------------------------- hand-checked times


def test_ring_all_reduce_large_message_on_8_h100():
    # ring: 6.6 + 2 x 7 x 0.6 = 15.0 us latency; 2 x 7/8 x 1 GiB / 3.6e11 = 1.75 x 1073741824 / 3.6e11 = 5.2196 ms
    t, alg, link = _one(H100_NO_NVLS, "all_reduce", GiB, 8)
    assert (alg, link) == ("ring", "nvlink")
    assert t == pytest.approx(15.0e-6 + 1.75 * GiB / NVLINK_RATE, rel=1e-9)
    assert t == pytest.approx(5.2346e-3, rel=1e-4)


def test_nvls_beats_the_ring_for_large_messages_at_8_gpus():
    # NVLS: 25 us + 1 GiB / (450e9 x 0.60 = 2.7e11) = 25 us + 3.9768 ms = 4.0018 ms < ring 5.2346 ms
    t, alg, _ = _one(H100, "all_reduce", GiB, 8)
    assert alg == "nvls" and t == pytest.approx(25e-6 + GiB / 2.7e11, rel=1e-9)
    # 64 MiB: ring 15 + 1.75 x 67108864 / 3.6e11 = 341.2 us; NVLS 25 + 67108864 / 2.7e11 = 273.6 us
    assert _one(H100, "all_reduce", 64 * MiB, 8)[1] == "nvls"
    # 1 MiB without the custom all-reduce: ring 15 + 5.1 = 20.1 us; NVLS 25 + 3.9 = 28.9 us -> ring
    t, alg, _ = _one(H100, "all_reduce", MiB, 8, custom_allreduce=False)
    assert alg == "ring" and t == pytest.approx(15.0e-6 + 1.75 * MiB / NVLINK_RATE, rel=1e-9)
    # below NCCL's NVLS group (5) the ring runs: 4 GPUs, 1 GiB: 6.6 + 6 x 0.6 + 1.5 x 1 GiB / 3.6e11
    t, alg, _ = _one(H100, "all_reduce", GiB, 4)
    assert alg == "ring" and t == pytest.approx(10.2e-6 + 1.5 * GiB / NVLINK_RATE, rel=1e-9)
    # no NVLS on A100 (NVSwitch gen2): ring at 8 GPUs, 1 GiB: 15 us + 1.75 x 1 GiB / (300e9 x 0.8)
    t, alg, _ = _one(load_gpu("a100-sxm-80gb"), "all_reduce", GiB, 8)
    assert alg == "ring" and t == pytest.approx(15.0e-6 + 1.75 * GiB / 240e9, rel=1e-9)


def test_small_decode_message_is_latency_bound():
    # vLLM one-shot at 8 GPUs below 256 KiB: 10 us + 7 x 16384 / 3.6e11 = 10 + 0.3186 = 10.32 us
    t, alg, link = _one(H100, "all_reduce", 16 * KiB, 8)
    assert (alg, link) == ("one_shot", "nvlink") and t == pytest.approx(10.3186e-6, rel=1e-4)
    # NCCL ring/LL: 15.0 + 1.75 x 16384 / 3.6e11 = 15.0 + 0.0796 = 15.08 us
    t, alg, _ = _one(H100, "all_reduce", 16 * KiB, 8, custom_allreduce=False)
    assert alg == "ring" and t == pytest.approx(15.0796e-6, rel=1e-4)
    r = collective_time(H100, "all_reduce", 16 * KiB, 8)
    assert float(r.latency_s) / float(r.time_s) > 0.95  # latency-bound


def test_custom_allreduce_follows_the_engine_rule():
    # two-shot at 8 GPUs from 256 KiB: 2 x 10 + 1.75 x 1 MiB / 3.6e11 = 20 + 5.097 = 25.10 us, although the
    # NCCL ring would take 20.1 us: the engine's rule decides
    t, alg, _ = _one(H100, "all_reduce", MiB, 8)
    assert alg == "two_shot" and t == pytest.approx(25.097e-6, rel=1e-4)
    assert _one(H100, "all_reduce", 256 * KiB - 16, 8)[1] == "one_shot"
    assert _one(H100, "all_reduce", 256 * KiB, 8)[1] == "two_shot"
    # up to 4 GPUs the one-shot threshold is 512 KiB; at 2 GPUs always one-shot (below the 8 MiB maximum)
    assert _one(H100, "all_reduce", 384 * KiB, 4)[1] == "one_shot"
    assert _one(H100, "all_reduce", 512 * KiB, 4)[1] == "two_shot"
    t, alg, _ = _one(H100, "all_reduce", 4 * MiB, 2)
    assert alg == "one_shot" and t == pytest.approx(10e-6 + 4 * MiB / NVLINK_RATE, rel=1e-9)
    # at 8 MiB and above, across nodes, over PCIe or at an unsupported world size (3): NCCL
    assert _one(H100, "all_reduce", 8 * MiB, 2)[1] == "ring"
    assert _one(H100, "all_reduce", 16 * KiB, 3)[1] == "ring"
    assert _one(H100, "all_reduce", 16 * KiB, 16)[2] == "network"
    assert _one(load_gpu("l40s"), "all_reduce", 16 * KiB, 2)[1] == "ring"


def test_pcie():
    # L40S has no NVLink: 4 GPUs, 1 GiB: 6.6 + 6 x 1.0 = 12.6 us + 1.5 x 1 GiB / (32e9 x 0.6 = 1.92e10) = 83.886 ms
    t, alg, link = _one(load_gpu("l40s"), "all_reduce", GiB, 4)
    assert (alg, link) == ("ring", "pcie")
    assert t == pytest.approx(12.6e-6 + 1.5 * GiB / 1.92e10, rel=1e-9)
    # H100 PCIe: a bridged pair is NVLink, four cards are PCIe (64e9 x 0.6)
    h = load_gpu("h100-pcie")
    assert _one(h, "all_reduce", GiB, 2)[2] == "nvlink"
    t, _, link = _one(h, "all_reduce", GiB, 4)
    assert link == "pcie" and t == pytest.approx(12.6e-6 + 1.5 * GiB / 3.84e10, rel=1e-9)


def test_all_reduce_across_two_nodes():
    # 16 ranks on 2 x 8 H100: bus = min(NVLink 3.6e11, 8 NICs x 5e10 x 0.94 = 3.76e11) = 3.6e11
    # ring: 6.6 + 2 x (15 - 1) x 0.6 + 2 x 1 x 2.7 = 28.8 us + 2 x 15/16 x 1 GiB / 3.6e11 = 5.5924 ms
    # hierarchical: 6.6 + 2 x 7 x 0.6 + 2 x 2.7 = 20.4 us + 2 x 7/8 x 1 GiB / 3.6e11 (5.2196 ms)
    #   + 2 x 1/2 x (1 GiB / 8) / (5e10 x 0.94) (2.8557 ms) = 8.0957 ms -> the ring
    t, alg, link = _one(H100, "all_reduce", GiB, 16)
    assert (alg, link) == ("ring", "network")
    assert t == pytest.approx(28.8e-6 + 1.875 * GiB / 3.6e11, rel=1e-9)
    # 16 KiB: hierarchical 20.4 + 0.0796 + 2048 / 4.7e10 (0.0436) = 20.52 us < ring 28.8 + 0.085 = 28.89 us
    t, alg, _ = _one(H100, "all_reduce", 16 * KiB, 16)
    assert alg == "hierarchical"
    assert t == pytest.approx(20.4e-6 + 1.75 * 16 * KiB / 3.6e11 + 16 * KiB / 8 / 4.7e10, rel=1e-9)
    # DGX A100, 16 ranks: bus = min(300e9 x 0.8 = 2.4e11, 8 x 2.5e10 x 0.94 = 1.88e11): the NICs limit
    # (measured 192 GB/s busbw, NVIDIA/nccl #1576)
    t, alg, _ = _one(load_gpu("a100-sxm-80gb"), "all_reduce", GiB, 16)
    assert alg == "ring" and t == pytest.approx(28.8e-6 + 1.875 * GiB / 1.88e11, rel=1e-9)


def test_reduce_scatter_and_all_gather_take_the_total_array():
    # S = the total array: ring, 6.6 + 7 x 0.6 = 10.8 us + 7/8 x 1 GiB / 3.6e11 = 2.6099 ms
    for c in ("reduce_scatter", "all_gather"):
        t, alg, _ = _one(H100, c, GiB, 8)
        assert alg == "ring" and t == pytest.approx(10.8e-6 + 0.875 * GiB / NVLINK_RATE, rel=1e-9)
    # 2 nodes: 15 steps of which 1 crosses the network: 6.6 + 14 x 0.6 + 2.7 = 17.7 us + 15/16 x 1 GiB / 3.6e11
    t, _, link = _one(H100, "reduce_scatter", GiB, 16)
    assert link == "network" and t == pytest.approx(17.7e-6 + 0.9375 * GiB / 3.6e11, rel=1e-9)


def test_all_to_all():
    # 8 x H100, 16 MiB per rank: 6.6 + 0.6 = 7.2 us + 7/8 x 16 MiB / (450e9 x 0.78 = 3.51e11) = 41.82 us
    t, alg, link = _one(H100, "all_to_all", 16 * MiB, 8)
    assert (alg, link) == ("direct", "nvlink")
    assert t == pytest.approx(7.2e-6 + 0.875 * 16 * MiB / 3.51e11, rel=1e-9)
    # EP16 on 2 nodes: 7/16 of S to the node's peers, 8/16 over the NIC (5e10 x 0.86 = 4.3e10):
    # 6.6 + max(0.6, 2.7) = 9.3 us + max(7/16 x S / 3.51e11 = 20.9 us, 8/16 x S / 4.3e10 = 195.1 us)
    t, _, link = _one(H100, "all_to_all", 16 * MiB, 16)
    assert link == "network" and t == pytest.approx(9.3e-6 + 0.5 * 16 * MiB / 4.3e10, rel=1e-9)


def test_send_recv_at_a_pipeline_boundary():
    # two TP-8 stages: the pair spans 16 GPUs, so the activations cross the network:
    # 6.6 + 2.7 = 9.3 us + 8 MiB / (5e10 x 0.94 = 4.7e10) = 178.48 us
    t, alg, link = _one(H100, "send_recv", 8 * MiB, 2, 16)
    assert (alg, link) == ("direct", "network")
    assert t == pytest.approx(9.3e-6 + 8 * MiB / 4.7e10, rel=1e-9)
    # the same pair inside a node: 6.6 + 0.6 = 7.2 us + 8 MiB / (450e9 x 0.80)
    t, _, link = _one(H100, "send_recv", 8 * MiB, 2, 2)
    assert link == "nvlink" and t == pytest.approx(7.2e-6 + 8 * MiB / NVLINK_RATE, rel=1e-9)


def test_mesh_scaleup_gives_a_pair_one_link():
    # MI300X: 7 point-to-point links of 64 GB/s; 2 GPUs use one: 448e9 / 7 x 0.8 = 5.12e10
    # 1 GiB (above the custom all-reduce's 8 MiB): 6.6 + 2 x 0.6 = 7.8 us + 1 GiB / 5.12e10 = 20.97 ms
    m = load_gpu("mi300x")
    t, alg, _ = _one(m, "all_reduce", GiB, 2)
    assert alg == "ring" and t == pytest.approx(7.8e-6 + GiB / 5.12e10, rel=1e-9)
    # all 8 use all 7 links: 15 us + 1.75 x 1 GiB / (448e9 x 0.8)
    assert _one(m, "all_reduce", GiB, 8)[0] == pytest.approx(15e-6 + 1.75 * GiB / 358.4e9, rel=1e-9)


def test_group_of_one_or_empty_message_takes_nothing():
    r = collective_time(H100, "all_reduce", [0, 4096, 4096, 0], [8, 1, 0, 1])
    assert r.time_s.tolist() == [0, 0, 0, 0] and r.latency_s.tolist() == [0, 0, 0, 0]
    assert r.algorithm.tolist() == ["none"] * 4 and r.link.tolist() == ["none"] * 4


def test_no_network_means_no_second_node():
    # a user's spec without scale-out bandwidth (default 0): a group beyond the node cannot communicate
    single = dataclasses.replace(H100, scaleout_bandwidth_bytes_per_s=0.0)
    t, _, link = _one(single, "all_reduce", MiB, 16)
    assert link == "network" and t == np.inf
    assert _one(single, "all_reduce", MiB, 8)[0] == _one(H100, "all_reduce", MiB, 8)[0]


# ---------------------------------------------------------------- links, factors, API


def test_group_link():
    assert group_link(H100, [1, 2, 8, 9, 16]).tolist() == ["nvlink", "nvlink", "nvlink", "network", "network"]
    assert group_link(load_gpu("h100-nvl"), [2, 4, 8, 16]).tolist() == ["nvlink", "pcie", "pcie", "network"]
    assert group_link(load_gpu("l40s"), [2, 8, 9]).tolist() == ["pcie", "pcie", "network"]
    assert group_link(H100, 16).dtype == object


@pytest.mark.parametrize("collective, n, factor", [
    ("all_reduce", 8, 1.75), ("all_reduce", 2, 1.0), ("all_reduce", 1, 0.0),  # 2(n-1)/n
    ("reduce_scatter", 8, 0.875), ("all_gather", 4, 0.75), ("all_to_all", 16, 0.9375),  # (n-1)/n
    ("send_recv", 2, 1.0), ("send_recv", 8, 1.0),  # 1
])
def test_busbw_factor_is_nccl_tests(collective, n, factor):
    assert busbw_factor(collective, n) == pytest.approx(factor)


def test_busbw_of_a_ring_is_the_achieved_link_rate():
    # the nccl-tests identity: busbw = S / t x factor -> 0.80 x 450 GB/s for a large ring all-reduce
    r = collective_time(H100_NO_NVLS, "all_reduce", 16 * GiB, 8)
    busbw = algbw_bytes_per_s(16 * GiB, r.time_s) * busbw_factor("all_reduce", 8)
    assert busbw == pytest.approx(360e9, rel=1e-3)


def test_algbw():
    assert algbw_bytes_per_s(1e9, 0.01) == 1e11
    assert np.isnan(algbw_bytes_per_s(1e9, 0.0))


def test_names_and_errors():
    assert COLLECTIVES == ("all_reduce", "reduce_scatter", "all_gather", "all_to_all", "send_recv")
    assert LINKS == ("nvlink", "pcie", "network")
    r = collective_time(H100, "all_reduce", 4096, 8)
    assert isinstance(r, CommTime) and r.algorithm.dtype == object and r.algorithm.shape == ()
    assert str(r.algorithm) in ALGORITHMS
    with pytest.raises(RooflineError) as e:
        collective_time(H100, "broadcast", 4096, 8)
    assert e.value.param == "collective" and e.value.message.startswith("collective ")
    for kwargs, param in (({"size_bytes": -1}, "size_bytes"), ({"group": 2.5}, "group"),
                          ({"span_gpus": 4}, "span_gpus")):
        args = {"size_bytes": 4096, "group": 8, **kwargs}
        with pytest.raises(RooflineError) as e:
            collective_time(H100, "all_reduce", **args)
        assert e.value.param == param and e.value.message.startswith(param)


# ---------------------------------------------------------------- vectorization


def test_a_large_grid_is_one_call_equal_to_row_by_row():
    rng = np.random.default_rng(7)
    rows = 100_000
    size = rng.integers(0, 2 * GiB, rows).astype(float)
    group = rng.choice([1, 2, 3, 4, 6, 8, 16, 32], rows)
    span = group * rng.choice([1, 2], rows)
    for collective in COLLECTIVES:
        grid = collective_time(H100, collective, size, group, span)
        assert grid.time_s.shape == (rows,)
        for i in rng.choice(rows, 60, replace=False):
            one = collective_time(H100, collective, size[i], group[i], span[i])
            assert float(one.time_s) == grid.time_s[i]
            assert float(one.latency_s) == grid.latency_s[i]
            assert (str(one.algorithm), str(one.link)) == (grid.algorithm[i], grid.link[i])


def test_arguments_broadcast():
    r = collective_time(H100, "all_reduce", np.array([[KiB], [GiB]]), np.array([2, 4, 8]))
    assert r.time_s.shape == r.algorithm.shape == r.link.shape == (2, 3)


# ---------------------------------------------------------------- invariants

GPUS = [load_gpu(n) for n in list_gpus()]
_gpu = st.sampled_from(GPUS)
_collective = st.sampled_from(COLLECTIVES)
_group = st.sampled_from([1, 2, 3, 4, 6, 8, 12, 16, 32, 64])
_size = st.integers(0, 8 * GiB)


@settings(max_examples=300, deadline=None)
@given(_gpu, _collective, _group, st.integers(1, 4), _size, _size)
def test_larger_messages_never_take_less_time(gpu, collective, group, spread, a, b):
    small, large = min(a, b), max(a, b)
    t = collective_time(gpu, collective, [small, large], group, group * spread, custom_allreduce=False).time_s
    assert t[0] <= t[1]


_LIMIT = 8 * MiB  # the custom all-reduce's largest message (below it)
_one_side = st.one_of(st.tuples(st.integers(0, _LIMIT - 1), st.integers(0, _LIMIT - 1)),
                      st.tuples(st.integers(_LIMIT, 8 * GiB), st.integers(_LIMIT, 8 * GiB)))


@settings(max_examples=300, deadline=None)
@given(_gpu, _group, _one_side)
def test_larger_messages_never_take_less_time_on_one_side_of_the_engines_limit(gpu, group, sizes):
    # the engine's custom all-reduce hands over to NCCL at 8 MiB, where the time may drop (the engines' own
    # benchmarks show NCCL faster than two-shot there); on each side of that size it only grows
    small, large = sorted(sizes)
    t = collective_time(gpu, "all_reduce", [small, large], group).time_s
    assert t[0] <= t[1]


@settings(max_examples=300, deadline=None)
@given(_gpu, _collective, _group, st.integers(1, 4), _size, st.floats(1.0, 16.0), st.booleans())
def test_more_bandwidth_never_more_time(gpu, collective, group, spread, size, k, custom):
    faster = dataclasses.replace(gpu, scaleup_bandwidth_bytes_per_s=gpu.scaleup_bandwidth_bytes_per_s * k,
                                 pcie_bandwidth_bytes_per_s=gpu.pcie_bandwidth_bytes_per_s * k,
                                 scaleout_bandwidth_bytes_per_s=gpu.scaleout_bandwidth_bytes_per_s * k)
    before = collective_time(gpu, collective, size, group, group * spread, custom)
    after = collective_time(faster, collective, size, group, group * spread, custom)
    assert after.time_s <= before.time_s


@settings(max_examples=300, deadline=None)
@given(_gpu, _collective, _group.filter(lambda n: n > 1), st.integers(1, 4), st.integers(1, 8 * GiB),
       st.booleans())
def test_time_covers_a_positive_latency(gpu, collective, group, spread, size, custom):
    r = collective_time(gpu, collective, size, group, group * spread, custom)
    assert r.time_s >= r.latency_s > 0
    assert str(r.link) in LINKS and str(r.algorithm) in ALGORITHMS[1:]

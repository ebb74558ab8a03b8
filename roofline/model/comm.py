"""The time of one GPU collective: all-reduce, reduce-scatter, all-gather, all-to-all and send/recv over NVLink
(or Infinity Fabric), PCIe or the scale-out network, vectorized (every argument broadcasts; a grid of a
million rows is one call).

Sizes follow nccl-tests (doc/PERFORMANCE.md): `size_bytes` S is the per-rank buffer of an all-reduce, the
TOTAL array (n x the per-rank chunk) of an all-gather or reduce-scatter, the per-rank send buffer of an
all-to-all and the message of a send/recv. algbw = S / t, and busbw = algbw x `busbw_factor` with the factor
2(n-1)/n (all-reduce), (n-1)/n (reduce-scatter, all-gather, all-to-all) or 1 (send/recv): busbw is the rate
each GPU's link carries in a ring, so it is compared with the per-direction link rate.

Every algorithm's time is a latency term plus a bandwidth term,

    t = launch + steps x step_latency + S x busbw_factor / (link bandwidth x achieved fraction),

with the link's per-direction bandwidth from the GPU spec file (`scaleup_bandwidth_bytes_per_s`,
`pcie_bandwidth_bytes_per_s`, `scaleout_bandwidth_bytes_per_s`, the NIC per GPU) and the achieved fractions
and latencies from `roofline/specs/data/collectives.json` (NCCL's cost-model latencies for Ring/LL, ring
busbw / link rate measured with nccl-tests; each value's source is in the file).

Which link (`group_link`): a group whose placement covers `span_gpus` consecutive GPUs uses the scale-up
link while the span fits in the scale-up domain (NVSwitch, Infinity Fabric, an NVLink bridge), PCIe while it
fits in one node (`gpus_per_node`), else the network. On a "mesh" scale-up topology (point-to-point links,
no switch) a group of n GPUs in a domain of D uses n-1 of the D-1 links: n-1 / (D-1) of the per-GPU rate.

Inside one node (nvlink or pcie), with n ranks:

- ring all-reduce: 2(n-1) steps, t = launch + 2(n-1) a + S 2(n-1)/n / (B f).
- ring reduce-scatter / all-gather: n-1 steps, t = launch + (n-1) a + S (n-1)/n / (B f).
- NVLS all-reduce (NVLink SHARP: the switch reduces, data crosses each link once), only on a scale-up switch
  with `nvlink_sharp` and n >= the smallest NVLS group: t = nvls latency + S / (B x nvls algbw fraction).
  NCCL's intra-node tree is a chain with the ring's 2(n-1) steps and less bandwidth, so it never beats the
  ring here and is not a candidate; NCCL picks the fastest of ring and NVLS for the size, and so do we.
- custom all-reduce (`custom_allreduce=True`; vLLM's rules, used instead of NCCL when they apply): only over
  NVLink, for world sizes 2/4/6/8 and S below 8 MiB. One-shot at world 2, below 512 KiB at world <= 4 and
  below 256 KiB at world <= 8 (each GPU reads its n-1 peers' buffers): t = L + (n-1) S / (B f); two-shot
  otherwise (reduce-scatter + all-gather): t = 2 L + 2(n-1)/n S / (B f); L is one kernel stage's latency.
  The engine's rule decides, not the faster of the two.
- all-to-all ("direct": every pair at once): t = launch + a + S (n-1)/n / (B f_a2a).
- send/recv ("direct"): t = launch + a + S / (B f_sr).

Across nodes (the span exceeds a node; N = the nodes it covers, g = ceil(n / N) ranks per node, each GPU with
its own NIC of bandwidth B_net):

- ring (NCCL's multi-node ring, one channel per NIC): the busbw is the slower of the intra-node link and the
  node's g NICs, bus = min(B_intra f_intra, g B_net f_net) (measured: DGX A100 192 GB/s on 8 x 25 GB/s,
  4 x 8 H200 365 GB/s on 8 x 50 GB/s); all-reduce t = launch + (2(n-1) - 2(N-1)) a_intra + 2(N-1) a_net
  + S 2(n-1)/n / bus; reduce-scatter / all-gather: n-1 steps of which N-1 cross the network.
- hierarchical all-reduce (intra-node reduce-scatter, all-reduce of each GPU's 1/g chunk over its own NIC
  across the N nodes, intra-node all-gather; phases not overlapped): t = launch + 2(g-1) a_intra
  + 2(N-1) a_net + 2 S (g-1)/g / (B_intra f_intra) + 2(N-1)/N (S/g) / (B_net f_net). Fewer latency steps than
  the ring (small messages), more time on the wire (large ones); the faster of the two is taken.
- all-to-all: the S (g-1)/n bytes to the node's peers and S (n-g)/n to other nodes go at once:
  t = launch + the slower step latency + max(S (g-1)/n / (B_intra f_a2a), S (n-g)/n / (B_net f_a2a_net)).
- send/recv: t = launch + a_net + S / (B_net f_sr_net).

A group that spans nodes on a GPU whose spec has no network (`scaleout_bandwidth_bytes_per_s` 0) takes
infinite time. group <= 1 or size 0 takes 0 s, algorithm and link "none". LL/LL128/Simple protocol switching
is not modelled: the ring has LL's latency and the large-message bandwidth, so mid-size messages (64 KiB to
a few MiB) come out somewhat optimistic.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from roofline.errors import RooflineError
from roofline.specs.collectives import LINKS, CollectiveFacts, load_collectives
from roofline.specs.hardware import GPUSpec

COLLECTIVES = ("all_reduce", "reduce_scatter", "all_gather", "all_to_all", "send_recv")
ALGORITHMS = ("none", "ring", "tree", "nvls", "one_shot", "two_shot", "direct", "hierarchical", "measured")
_NVLINK, _PCIE, _NETWORK = range(3)  # indices into LINKS


@dataclass(frozen=True)
class CommTime:
    """One collective per row: its time, the algorithm that gives it and the slowest link it crosses (the
    names are built on first use: a sweep needs only the times)."""

    time_s: np.ndarray  # seconds
    algorithm_index: np.ndarray  # index into ALGORITHMS
    link_index: np.ndarray  # index into ("none", *LINKS)
    latency_s: np.ndarray | None = None  # seconds: the latency term of time_s (the rest is on the wire)

    @cached_property
    def algorithm(self) -> np.ndarray:
        """Object array: one of ALGORITHMS per row."""
        return _names(ALGORITHMS, self.algorithm_index)

    @cached_property
    def link(self) -> np.ndarray:
        """Object array: "none" or one of LINKS per row."""
        return _names(("none", *LINKS), self.link_index)


def busbw_factor(collective: str, group) -> np.ndarray:
    """nccl-tests' busbw / algbw: all_reduce 2(n-1)/n; reduce_scatter, all_gather, all_to_all (n-1)/n;
    send_recv 1."""
    _check_collective(collective)
    n = np.asarray(group, dtype=float)
    if collective == "send_recv":
        return np.ones_like(n)
    share = np.where(n > 0, (n - 1) / np.where(n > 0, n, 1), 0.0)
    return 2 * share if collective == "all_reduce" else share


def algbw_bytes_per_s(size_bytes, time_s) -> np.ndarray:
    """nccl-tests' algorithm bandwidth S / t (NaN where t is 0: nothing was sent)."""
    s, t = np.broadcast_arrays(np.asarray(size_bytes, dtype=float), np.asarray(time_s, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(t > 0, s / np.where(t > 0, t, 1), np.nan)


def group_link(gpu: GPUSpec, span_gpus) -> np.ndarray:
    """The slowest link a group covering `span_gpus` consecutive GPUs crosses (object array of LINKS names):
    nvlink inside the scale-up domain (when the GPU has a scale-up link), pcie inside one node, else network."""
    return _names(LINKS, _link_index(gpu, np.asarray(span_gpus)))


def collective_time(gpu: GPUSpec, collective: str, size_bytes, group, span_gpus=None,
                    custom_allreduce=True) -> CommTime:
    """Time of one `collective` of `size_bytes` (nccl-tests' S) over `group` ranks whose placement covers
    `span_gpus` consecutive GPUs (default: the group), with the serving engine's custom all-reduce when
    `custom_allreduce` (see the module docstring for every formula). All arguments but `gpu` and `collective`
    broadcast."""
    _check_collective(collective)
    size, n, span = _arrays(size_bytes, group, group if span_gpus is None else span_gpus)
    active = (n > 1) & (size > 0)
    if not active.any():  # one GPU, or an empty message (a layout that does not use this collective)
        zero = np.zeros(size.shape)
        return CommTime(zero, np.zeros(size.shape, dtype=np.int64), np.zeros(size.shape, dtype=np.int64), zero)
    facts = load_collectives()
    link = _link_index(gpu, span)
    on_net = link == _NETWORK
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # rows not taken may divide by 0
        parts = [_inside_node(gpu, facts, collective, size, n, link, custom_allreduce)] if not on_net.all() else []
        if on_net.any():  # most grids stay inside a node: skip the network formulas then
            across = _across_nodes(gpu, facts, collective, size, n, span)
            parts = [tuple(np.where(on_net, b, a) for a, b in zip(parts[0], across)) if parts else across]
    lat, wire, alg = (np.where(active, x, none) for x, none in zip(parts[0], (0.0, 0.0, 0)))
    lat, wire, alg = _measured(gpu, collective, size, n, active, lat, wire, alg)
    return CommTime(time_s=np.asarray(lat + wire), algorithm_index=np.asarray(alg),
                    link_index=np.where(active, link + 1, 0), latency_s=lat)


def _measured(gpu: GPUSpec, collective: str, size, n, active, lat, wire, alg):
    """Where the GPU carries a measured fit for this collective and group size (a collectives profile), its
    latency + S x busbw factor / measured bus bandwidth replaces the modelled time (algorithm "measured")."""
    for name, group, latency_s, busbw in gpu.measured_collectives:
        if name != collective:
            continue
        use = active & (n == group)
        lat = np.where(use, latency_s, lat)
        wire = np.where(use, size * busbw_factor(collective, n) / busbw, wire)
        alg = np.where(use, ALGORITHMS.index("measured"), alg)
    return lat, wire, alg


def _names(table, index: np.ndarray) -> np.ndarray:
    """Object array of table[index], the same shape as index (0-d included)."""
    return np.asarray(table, dtype=object)[index.reshape(-1)].reshape(index.shape)


def _best(current, candidate, allowed):
    """The candidate (latency, wire, algorithm) where it is allowed and faster than the current one."""
    use = allowed & (candidate[0] + candidate[1] < current[0] + current[1])
    return tuple(np.where(use, c, k) for c, k in zip(candidate, current))


def _algorithm(name: str, shape) -> np.ndarray:
    """The algorithm's index in ALGORITHMS for every row (names are looked up once, at the end)."""
    return np.full(shape, ALGORITHMS.index(name))


# ---------------------------------------------------------------- inside one node


def _inside_node(gpu, facts: CollectiveFacts, collective, size, n, link, custom_allreduce):
    """(latency, wire time, algorithm) on the node's link (nvlink or pcie) for every row; rows across nodes are
    ignored."""
    kind = np.minimum(link, _PCIE)  # network rows are computed as pcie here and replaced by the caller
    bw = np.where(kind == _NVLINK, _scaleup_bytes_per_s(gpu, n), gpu.pcie_bandwidth_bytes_per_s)
    frac, launch, step = (_per_link(facts, kind, k) for k in ("bandwidth_fraction", "launch_latency_s",
                                                              "step_latency_s"))
    factor = busbw_factor(collective, n)
    if collective in ("all_to_all", "send_recv"):
        f = _fractions(facts, collective, kind)
        return launch + step, size * factor / (bw * f), _algorithm("direct", size.shape)
    steps = (n - 1) * (2 if collective == "all_reduce" else 1)
    best = (launch + steps * step, size * factor / (bw * frac), _algorithm("ring", size.shape))
    if collective != "all_reduce":
        return best
    if gpu.nvlink_sharp and gpu.scaleup_topology == "switch":
        nvls = (np.full(size.shape, facts.nvls_latency_s),
                size / (gpu.scaleup_bandwidth_bytes_per_s * facts.nvls_algbw_fraction), _algorithm("nvls", size.shape))
        best = _best(best, nvls, (kind == _NVLINK) & (n >= facts.nvls_min_group))
    if custom_allreduce:  # the engine's rule, not the faster one
        lat, rate = facts.custom_allreduce_latency_s, bw * frac
        ok = ((kind == _NVLINK) & np.isin(n, facts.custom_allreduce_world_sizes)
              & (size < facts.custom_allreduce_max_bytes))
        one = ((n <= facts.custom_allreduce_one_shot_always_world)
               | ((n <= facts.custom_allreduce_one_shot_small_world)
                  & (size < facts.custom_allreduce_one_shot_below_bytes_small_world))
               | (size < facts.custom_allreduce_one_shot_below_bytes))
        engine = (np.where(one, lat, 2 * lat), np.where(one, (n - 1) * size, 2 * (n - 1) / n * size) / rate,
                  np.where(one, ALGORITHMS.index("one_shot"), ALGORITHMS.index("two_shot")))
        best = tuple(np.where(ok, e, b) for e, b in zip(engine, best))
    return best


# ---------------------------------------------------------------- across nodes


def _across_nodes(gpu, facts: CollectiveFacts, collective, size, n, span):
    """(latency, wire time, algorithm) over the network for every row; rows inside one node are ignored."""
    local = _local_gpus(gpu)
    nodes = np.clip(np.ceil(span / local), 1, np.maximum(n, 1))  # a group of n touches at most n nodes
    g = np.ceil(n / nodes)  # ranks per node
    intra = np.where(_has_scaleup(gpu) & (np.minimum(span, local) <= gpu.scaleup_domain_gpus), _NVLINK, _PCIE)
    intra_bw = np.where(intra == _NVLINK, _scaleup_bytes_per_s(gpu, g), gpu.pcie_bandwidth_bytes_per_s)
    intra_frac, intra_step = _per_link(facts, intra, "bandwidth_fraction"), _per_link(facts, intra, "step_latency_s")
    net = facts.links["network"]
    net_bw = gpu.scaleout_bandwidth_bytes_per_s
    launch, net_step = net.launch_latency_s, net.step_latency_s
    shared = g > 1  # some of the group's ranks share a node
    direct = _algorithm("direct", size.shape)
    if collective == "send_recv":
        return launch + net_step, size / (net_bw * facts.send_recv_fraction["network"]), direct
    if collective == "all_to_all":
        f_intra = _fractions(facts, "all_to_all", intra)
        wire = np.maximum(np.where(shared, size * (g - 1) / n / (intra_bw * f_intra), 0.0),
                          size * (n - g) / n / (net_bw * facts.all_to_all_fraction["network"]))
        return launch + np.where(shared, np.maximum(intra_step, net_step), net_step), wire, direct
    bus = np.minimum(np.where(shared, intra_bw * intra_frac, np.inf), g * net_bw * net.bandwidth_fraction)
    per = 2 if collective == "all_reduce" else 1  # ring passes: all-reduce = reduce-scatter + all-gather
    ring = (launch + per * ((n - 1) - (nodes - 1)) * intra_step + per * (nodes - 1) * net_step,
            size * busbw_factor(collective, n) / bus, _algorithm("ring", size.shape))
    if collective != "all_reduce":
        return ring
    hier = (launch + 2 * (g - 1) * intra_step + 2 * (nodes - 1) * net_step,
            np.where(shared, 2 * size * (g - 1) / g / (intra_bw * intra_frac), 0.0)
            + 2 * (nodes - 1) / nodes * (size / g) / (net_bw * net.bandwidth_fraction),
            _algorithm("hierarchical", size.shape))
    return _best(ring, hier, np.ones(size.shape, dtype=bool))


# ---------------------------------------------------------------- helpers


def _check_collective(collective: str) -> None:
    if collective not in COLLECTIVES:
        raise RooflineError(f"collective must be one of {', '.join(COLLECTIVES)}, got {collective!r}",
                            param="collective", hint="the names are those of torch.distributed's collectives")


def _arrays(size_bytes, group, span_gpus):
    size, n, span = np.broadcast_arrays(np.asarray(size_bytes, dtype=float), np.asarray(group, dtype=float),
                                        np.asarray(span_gpus, dtype=float))
    bad = ~(np.isfinite(size) & (size >= 0))
    if np.any(bad):
        raise RooflineError(f"size_bytes must be finite and >= 0, got {_first_bad(size, bad)}", param="size_bytes",
                            hint="the message size in bytes of one rank's buffer")
    bad = ~(np.isfinite(n) & (n >= 0) & (n == np.round(n)))
    if np.any(bad):
        raise RooflineError(f"group must be a whole number >= 0, got {_first_bad(n, bad)}", param="group",
                            hint="the number of ranks in the collective (1: no communication)")
    bad = ~(np.isfinite(span) & (span == np.round(span)) & (span >= n))
    if np.any(bad):
        raise RooflineError(f"span_gpus must be a whole number >= group, got {_first_bad(span, bad)}",
                            param="span_gpus", hint="the GPUs the group's ranks are spread over (= `group` when "
                            "they are adjacent)")
    return size, n, span


def _first_bad(values: np.ndarray, bad: np.ndarray):
    return values[bad].flat[0]


def _has_scaleup(gpu: GPUSpec) -> bool:
    return gpu.scaleup_bandwidth_bytes_per_s > 0 and gpu.scaleup_domain_gpus >= 2


def _link_index(gpu: GPUSpec, span: np.ndarray) -> np.ndarray:
    return np.where(_has_scaleup(gpu) & (span <= gpu.scaleup_domain_gpus), _NVLINK,
                    np.where(span <= _local_gpus(gpu), _PCIE, _NETWORK))


def _local_gpus(gpu: GPUSpec) -> int:
    """GPUs reached without the network: the node, or a larger scale-up domain (an NVL72 rack)."""
    return max(gpu.gpus_per_node, gpu.scaleup_domain_gpus if _has_scaleup(gpu) else 1)


def _scaleup_bytes_per_s(gpu: GPUSpec, n) -> np.ndarray:
    """Per-GPU scale-up bandwidth a group of n uses: all of it behind a switch; n-1 of the D-1 links of a mesh."""
    if gpu.scaleup_topology == "switch" or gpu.scaleup_domain_gpus < 2:
        return np.full(np.shape(n), gpu.scaleup_bandwidth_bytes_per_s)
    links = np.clip(np.asarray(n, dtype=float) - 1, 1, gpu.scaleup_domain_gpus - 1)
    return gpu.scaleup_bandwidth_bytes_per_s * links / (gpu.scaleup_domain_gpus - 1)


def _per_link(facts: CollectiveFacts, index: np.ndarray, name: str) -> np.ndarray:
    return np.asarray([getattr(facts.links[k], name) for k in LINKS])[index]


def _fractions(facts: CollectiveFacts, collective: str, index: np.ndarray) -> np.ndarray:
    table = facts.all_to_all_fraction if collective == "all_to_all" else facts.send_recv_fraction
    return np.asarray([table[k] for k in LINKS])[index]

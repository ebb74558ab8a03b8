"""Collective benchmark: measured all-reduce, reduce-scatter, all-gather, all-to-all, broadcast and send/recv
curves over torch.distributed (NCCL on CUDA, gloo on CPU), their latency/bandwidth fit, and its validation.

Run under torchrun, one process per GPU (or per CPU rank):

    torchrun --nproc-per-node 8 -m roofline.measure.collectives --output profiles/collectives-8gpu.json

or through `roofline bench-collectives --nproc N` (`spawn`, which starts torchrun itself).

What is measured (nccl-tests' definitions, so busbw reads like nccl-tests' busbw):
  S          the message size: all_reduce, broadcast, send_recv the buffer; reduce_scatter the input (every
             rank's whole buffer; each gets S/n back); all_gather the output (each rank gives S/n);
             all_to_all every rank's send buffer. fp32 elements, S rounded down to a multiple of 4 n bytes.
  sizes      doubling from `min_bytes` (8 B) to `max_bytes` (1 GiB on a GPU, 16 MiB on a CPU)
  groups     ranks 0..g-1 for g in 2, 4, 8 and the world (torch.distributed.new_group), where the world has
             that many ranks; send_recv only between ranks 0 and 1 (a ping-pong, one-way time = round trip / 2)
  timing     ROUNDS sweeps over the sizes, each size `warmup` unrecorded runs then iters / ROUNDS samples
             (`iters` in all); one sample = one collective after a barrier of its
             group (back-to-back batches were slower and noisier with gloo on a loaded 2-core machine): CUDA
             events on a GPU, time.perf_counter on a CPU. Every rank keeps every sample.
  time       per size: the max over the group's ranks of each rank's median sample (a CPU: 25th percentile,
             QUANTILE), as the slowest rank is when the collective is done
  algbw      S / time;  busbw = algbw x nccl-tests' factor (model.comm.busbw_factor; broadcast 1)
  timeouts   init_process_group and every group get `timeout_s`: a crashed or stuck rank ends the job with an
             error instead of a hang (torchrun then stops the other ranks)

The fit (per collective and group): time = latency + S x factor / bandwidth (the bus bytes over the bus
bandwidth), by least squares weighted by 1 / time^2 (relative errors; non-negative latency and 1/bandwidth),
on every other size (even positions, sorted by size); the odd positions are held out and their errors
|predicted - measured| / measured are the `collective` family of `roofline validate`.

Using a fitted profile in the model: `--profile PATH` with a collectives profile keeps the datasheet GPU and
attaches the fits to it (measure.device.with_measured_collectives -> GPUSpec.measured_collectives); for every
collective and group size the profile measured, `model.comm.collective_time` takes latency + S x busbw factor /
fitted bus bandwidth (algorithm "measured"); other group sizes keep the sourced facts.

Rank 0 writes the profile atomically (profile.write_profile). Layout (schema "roofline.collectives", version 1):
  kind, schema_version   "collectives", 1
  provenance   hosts, backend, world size, torch version, device names, NVLink counters (NVML, else
               `unavailable` with the reason), timestamp, command, settings
  complete     true (a rank that fails ends the job before anything is written)
  results      one row per (collective, group, size): bytes, time_s, algbw/busbw (bytes/s), busbw_factor,
               rank_time_s (each rank's median), samples_s (every rank's samples), status ok/skipped + reason
  fit          {collective: {group: latency_s, bandwidth_bytes_per_s, held-out errors, the sizes used}}
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from collections import deque
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

import numpy as np

from roofline.errors import RooflineError
from roofline.jsonfile import read_json
from roofline.model.comm import busbw_factor
from roofline.measure.profile import provenance, write_profile
from roofline.measure.telemetry import cpu_info

SCHEMA = "roofline.collectives"
VERSION = 1
KIND = "collectives"
OPS = ("all_reduce", "reduce_scatter", "all_gather", "all_to_all", "broadcast", "send_recv")
GROUP_SIZES = (2, 4, 8)
MIN_BYTES = 8
MAX_BYTES = {"cuda": 2**30, "cpu": 2**24}
ITERS = {"cuda": 20, "cpu": 30}
#: each rank's statistic of its samples: the median on a GPU; the 25th percentile on a CPU, where other
#: processes on a shared machine only slow runs down (as timing.REFERENCE)
QUANTILE = {"cuda": 0.5, "cpu": 0.25}
WARMUP = 2  # per size and round
ROUNDS = 3  # sweeps over the sizes (_curve)
TIMEOUT_S = 300.0
CPU_TARGET = 0.15  # held-out median error of the fit on a CPU (gloo)
ELEMENT_BYTES = 4  # fp32


def factor(collective: str, group: int) -> float:
    """nccl-tests' busbw / algbw for `collective` over `group` ranks (broadcast 1, the rest model.comm's)."""
    return 1.0 if collective == "broadcast" else float(busbw_factor(collective, group))


def sizes(min_bytes: int, max_bytes: int) -> list[int]:
    """Message sizes doubling from min_bytes up to max_bytes (both included when max is a doubling)."""
    if min_bytes < 1 or max_bytes < min_bytes:
        raise RooflineError(f"max_bytes must be >= min_bytes >= 1, got min_bytes={min_bytes}, max_bytes={max_bytes}",
                            hint="the sizes double from min_bytes up to max_bytes", exit_code=2, param="max_bytes")
    out, s = [], int(min_bytes)
    while s <= max_bytes:
        out.append(s)
        s *= 2
    return out


def groups(world: int) -> list[int]:
    """Group sizes measured in a world of `world` ranks: 2, 4, 8 and the world, those that fit."""
    return sorted({g for g in (*GROUP_SIZES, world) if 2 <= g <= world})


# ---------------------------------------------------------------- one rank's measurements (under torchrun)


def _elements(collective: str, size_bytes: int, group: int) -> int:
    """fp32 elements of the nccl-tests size S: a multiple of the group for the collectives that split it."""
    e = max(size_bytes // ELEMENT_BYTES, 1)
    return max(e - e % group, group) if collective in ("reduce_scatter", "all_gather", "all_to_all") else e


def _operation(dist, collective: str, elements: int, group_size: int, pg, rank: int, device):
    """A no-argument callable running the collective once on preallocated buffers."""
    import torch

    buf = torch.ones(elements, dtype=torch.float32, device=device)
    part = elements // group_size
    if collective == "all_reduce":
        return lambda: dist.all_reduce(buf, group=pg)
    if collective == "reduce_scatter":
        out = torch.empty(part, dtype=torch.float32, device=device)
        scatter = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor
        return lambda: scatter(out, buf, group=pg)
    if collective == "all_gather":
        mine = buf[:part].clone()
        gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
        return lambda: gather(buf, mine, group=pg)
    if collective == "all_to_all":
        out = torch.empty_like(buf)
        return lambda: dist.all_to_all_single(out, buf, group=pg)
    if collective == "broadcast":
        return lambda: dist.broadcast(buf, src=0, group=pg)
    peer = 1 - rank  # send_recv: ranks 0 and 1, a ping-pong

    def ping_pong():
        if rank == 0:
            dist.send(buf, peer, group=pg)
            dist.recv(buf, peer, group=pg)
        else:
            dist.recv(buf, peer, group=pg)
            dist.send(buf, peer, group=pg)
    return ping_pong


def _timer(device):
    """run(op) -> a function giving the seconds of that run of op: CUDA events on a GPU (read after one
    synchronize at the end), perf_counter on a CPU."""
    import torch

    if device.type == "cuda":
        def run(op) -> Callable[[], float]:
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            op()
            b.record()
            return lambda: a.elapsed_time(b) / 1e3
        return run

    def run_cpu(op) -> Callable[[], float]:
        t0 = time.perf_counter()
        op()
        dt = time.perf_counter() - t0
        return lambda: dt
    return run_cpu


def _measure(dist, collective, size, group_size, pg, rank, device, iters, warmup) -> dict[str, Any]:
    """This rank's samples of one collective at one size (a rank outside the group returns nothing)."""
    import torch

    elements = _elements(collective, size, group_size)
    op = _operation(dist, collective, elements, group_size, pg, rank, device)
    timer = _timer(device)
    barrier = (lambda: dist.barrier(group=pg, device_ids=[device.index])) if device.type == "cuda" \
        else (lambda: dist.barrier(group=pg))
    for _ in range(warmup):
        op()
    pending = []
    for _ in range(iters):
        barrier()
        pending.append(timer(op))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    samples = [f() for f in pending]
    if collective == "send_recv":
        samples = [s / 2 for s in samples]  # one way of the round trip
    return {"bytes": elements * ELEMENT_BYTES, "elements": elements, "samples_s": samples}


def _curve(dist, collective, plan, group_size, pg, rank, device, iters, warmup) -> list[dict[str, Any]]:
    """This rank's rows of one collective over one group, every size of `plan`: ROUNDS sweeps over the sizes,
    iters / ROUNDS samples each, so that a burst of load on a shared machine hits several sizes a little
    rather than one size entirely. One skipped row when the backend lacks the collective."""
    rows = {size: {"collective": collective, "group": group_size, "size": size, "rank": rank, "status": "ok",
                   "samples_s": []} for size in plan}
    per_round = max(1, -(-iters // ROUNDS))
    for rnd in range(ROUNDS if iters > 1 else 1):
        for size in plan:
            try:
                got = _measure(dist, collective, size, group_size, pg, rank, device, per_round, warmup)
            except (RuntimeError, NotImplementedError, ValueError) as e:
                # the backend lacks it: every rank raises at the first size, before any communication, so all
                # skip alike; a later failure (a timeout, a lost rank) ends the job
                if rnd or size != plan[0] or isinstance(e, getattr(dist, "DistError", ())):
                    raise
                return [{**rows[size], "status": "skipped", "reason": f"{type(e).__name__}: {e}"[:300]}]
            row = rows[size]
            row.update(bytes=got["bytes"], elements=got["elements"])
            row["samples_s"] += got["samples_s"]
    return list(rows.values())


def _nvlink(device) -> dict[str, Any]:
    """NVLink throughput counters of this GPU (NVML), or why there are none."""
    if device.type != "cuda":
        return {"available": False, "reason": "not a CUDA device"}
    try:
        import pynvml

        pynvml.nvmlInit()
        h = pynvml.nvmlDeviceGetHandleByIndex(device.index)
        links, last = {}, "no active NVLink"
        for link in range(getattr(pynvml, "NVML_NVLINK_MAX_LINKS", 18)):
            try:
                if pynvml.nvmlDeviceGetNvLinkState(h, link) != pynvml.NVML_FEATURE_ENABLED:
                    continue
                links[link] = {"tx": pynvml.nvmlDeviceGetNvLinkUtilizationCounter(h, link, 0),
                               "rx": pynvml.nvmlDeviceGetNvLinkUtilizationCounter(h, link, 1)}
            except pynvml.NVMLError as e:  # e.g. counters this GPU generation no longer offers
                last = f"{type(e).__name__}: {e}"
        return {"available": bool(links), "links": links, "reason": None if links else last}
    except Exception as e:  # no pynvml, no driver, a counter this GPU lacks: recorded, never fatal
        return {"available": False, "reason": f"{type(e).__name__}: {e}"}


def run_rank(output: str | Path, max_bytes: int | None = None, iters: int | None = None, warmup: int = WARMUP,
             min_bytes: int = MIN_BYTES, timeout_s: float = TIMEOUT_S, device: str | None = None,
             command: list[str] | None = None) -> Path | None:
    """One rank's part of the benchmark (torchrun's RANK, WORLD_SIZE, LOCAL_RANK and MASTER_* set the job);
    rank 0 writes the profile to `output` and returns its path, the others return None."""
    import torch
    import torch.distributed as dist

    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise RooflineError("run_rank must run under torchrun (RANK and WORLD_SIZE are not set)",
                            hint="start it with torchrun (see the module docstring), or use spawn "
                                 "(`roofline bench-collectives`)", exit_code=2)
    kind = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if kind == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
        torch.set_num_threads(1)
    backend = "nccl" if kind == "cuda" else "gloo"
    timeout = timedelta(seconds=timeout_s)
    dist.init_process_group(backend, timeout=timeout, **({"device_id": dev} if kind == "cuda" else {}))
    try:
        rank, world = dist.get_rank(), dist.get_world_size()
        max_b = max_bytes if max_bytes is not None else MAX_BYTES[kind]
        iters = iters if iters is not None else ITERS[kind]
        plan = sizes(min_bytes, max_b)
        mine: list[dict[str, Any]] = []
        for g in groups(world):
            pg = dist.new_group(list(range(g)), timeout=timeout)  # every rank creates every group, in order
            for collective in OPS:
                if collective == "send_recv" and g != 2:
                    continue
                if rank >= g:
                    continue
                mine += _curve(dist, collective, plan, g, pg, rank, dev, iters, warmup)
        info = {"rank": rank, "host": socket.gethostname(),
                "device": torch.cuda.get_device_name(dev) if kind == "cuda" else cpu_info()["name"],
                "nvlink": _nvlink(dev)}
        everything: list[Any] = [None] * world if rank == 0 else None
        dist.gather_object((info, mine), everything, dst=0)
        if rank != 0:
            return None
        settings = {"quantile": QUANTILE[kind], "min_bytes": min_bytes, "max_bytes": max_b, "iters": iters, "warmup": warmup,
                    "timeout_s": timeout_s, "element_bytes": ELEMENT_BYTES, "groups": groups(world)}
        doc = build_profile([e[0] for e in everything], [r for e in everything for r in e[1]], backend, world,
                            torch.__version__, command, settings)
        return write_profile(doc, output)
    finally:
        dist.destroy_process_group()


def build_profile(ranks: list[dict], rows: list[dict], backend: str, world: int, torch_version: str,
                  command: list[str] | None, settings: dict) -> dict[str, Any]:
    """The profile document from every rank's info and rows (rank 0, after gathering)."""
    merged: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        key = (r["collective"], r["group"], r["size"])
        m = merged.setdefault(key, {"collective": r["collective"], "group": r["group"], "size": r["size"],
                                    "status": "ok", "reason": None, "samples_s": {}})
        if r["status"] != "ok":
            m["status"], m["reason"] = r["status"], r.get("reason")
            continue
        m["bytes"], m["elements"] = r["bytes"], r["elements"]
        m["samples_s"][str(r["rank"])] = r["samples_s"]
    results = []
    for m in merged.values():
        if m["status"] == "ok":
            q = QUANTILE["cuda" if backend == "nccl" else "cpu"]
            per_rank = [float(np.quantile(s, q)) for s in m["samples_s"].values()]
            t = max(per_rank)
            f = factor(m["collective"], m["group"])
            m.update(rank_time_s=per_rank, time_s=t, busbw_factor=f, algbw_bytes_per_s=m["bytes"] / t,
                     busbw_bytes_per_s=m["bytes"] / t * f)
        results.append(m)
    results.sort(key=lambda m: (OPS.index(m["collective"]), m["group"], m["size"]))
    prov = provenance(command, settings=settings)
    prov.update(hosts=sorted({i["host"] for i in ranks}), backend=backend, world_size=world,
                torch_version=torch_version, device_names=[i["device"] for i in sorted(ranks, key=lambda i: i["rank"])],
                nvlink={str(i["rank"]): i["nvlink"] for i in ranks})
    doc = {"schema": SCHEMA, "version": VERSION, "kind": KIND, "schema_version": VERSION,
           "device": {"kind": "cuda" if backend == "nccl" else "cpu", "name": prov["device_names"][0]},
           "provenance": prov, "complete": True, "results": results}
    doc["fit"] = fit(results)
    return doc


# ---------------------------------------------------------------- the fit and its validation


def _curves(results: list[dict]) -> dict[tuple[str, int], list[dict]]:
    out: dict[tuple[str, int], list[dict]] = {}
    for r in results:
        if r["status"] == "ok" and r.get("time_s"):
            out.setdefault((r["collective"], r["group"]), []).append(r)
    for rows in out.values():
        rows.sort(key=lambda r: r["bytes"])
    return out


def fit_curve(size_bytes, time_s, bus_factor: float) -> tuple[float, float]:
    """(latency s, bandwidth bytes/s) of time = latency + size x bus_factor / bandwidth, least squares on
    relative errors (each row divided by its time), both terms non-negative (bandwidth inf when the time does
    not grow with the size)."""
    from scipy.optimize import nnls

    s, t = np.asarray(size_bytes, dtype=float), np.asarray(time_s, dtype=float)
    a = np.column_stack([1 / t, s * bus_factor / t])
    (lat, inv_bw), _ = nnls(a, np.ones_like(t))
    return float(lat), float(1 / inv_bw) if inv_bw > 0 else float("inf")


def predict(latency_s: float, bandwidth: float, size_bytes, bus_factor: float) -> np.ndarray:
    """The fitted time of messages of size_bytes (s)."""
    return latency_s + np.asarray(size_bytes, dtype=float) * bus_factor / bandwidth


def fit(results: list[dict]) -> dict[str, dict[str, Any]]:
    """Per collective and group: the latency/bandwidth fit on the even sizes, errors on the odd ones."""
    out: dict[str, dict[str, Any]] = {}
    for (collective, g), rows in _curves(results).items():
        train, test = rows[0::2], rows[1::2]
        f = factor(collective, g)
        lat, bw = fit_curve([r["bytes"] for r in train], [r["time_s"] for r in train], f)
        err = _errors(lat, bw, f, test)
        out.setdefault(collective, {})[str(g)] = {
            "latency_s": lat, "bandwidth_bytes_per_s": bw, "busbw_factor": f,
            "fit_sizes": [r["bytes"] for r in train], "held_out_sizes": [r["bytes"] for r in test],
            "held_out_median_abs_error": _q(err, 0.5), "held_out_p90_abs_error": _q(err, 0.9)}
    return out


def _errors(lat, bw, f, rows) -> np.ndarray:
    t = np.array([r["time_s"] for r in rows], dtype=float)
    return (predict(lat, bw, [r["bytes"] for r in rows], f) - t) / t


def _q(err: np.ndarray, q: float) -> float | None:
    return float(np.quantile(np.abs(err), q)) if err.size else None


def is_collectives_profile(path: str | Path) -> bool:
    """Whether the JSON file at `path` is a collectives profile (False for anything unreadable)."""
    try:
        data = read_json(path, "collectives profile", "a file written by `roofline bench-collectives`")
    except RooflineError:
        return False
    return isinstance(data, dict) and data.get("kind") == KIND


def load_collectives_profile(path: str | Path) -> dict[str, Any]:
    """Read and check a collectives profile; RooflineError naming the file and what is wrong."""
    p = Path(path).expanduser()
    data = read_json(path, "collectives profile", "a file written by `roofline bench-collectives`")
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or data.get("version") != VERSION:
        raise RooflineError(f"{p} is not a version {VERSION} collectives profile",
                            hint="re-run `roofline bench-collectives` with this version")
    for key in ("provenance", "results"):
        if key not in data:
            raise RooflineError(f"{p}: missing field '{key}'", hint="re-run `roofline bench-collectives`")
    data["_path"] = str(p)
    return data


def validate_collectives(profile: dict[str, Any]) -> dict[str, Any]:
    """`roofline validate` of a collectives profile: the fit redone on the even sizes of each curve, every row
    with its prediction (rows shaped like validate.POINT_COLUMNS, family "collective", kind the collective),
    the `collective` family's held-out errors and one line per curve."""
    rows, curves = [], []
    fitted = fit(profile["results"])
    for (collective, g), pts in _curves(profile["results"]).items():
        ft = fitted[collective][str(g)]
        train = set(ft["fit_sizes"])
        for r in pts:
            pred = float(predict(ft["latency_s"], ft["bandwidth_bytes_per_s"], r["bytes"], ft["busbw_factor"]))
            rows.append({"id": f"{collective}-g{g}-{r['bytes']}", "family": "collective", "kind": collective,
                         "precision": "fp32", "group": g, "split": "calibration" if r["bytes"] in train else "held_out",
                         "measured_s": r["time_s"], "predicted_s": pred, "error": (pred - r["time_s"]) / r["time_s"],
                         "predicted_s_ceilings": None, "error_ceilings": None, "predicted_s_datasheet": None,
                         "error_datasheet": None, "roofline_fraction": None, "flops": 0.0, "bytes": r["bytes"],
                         "intensity_flops_per_byte": 0.0, "cache_resident": False, "throttled": False, "cause": None,
                         "algbw_bytes_per_s": r["algbw_bytes_per_s"], "busbw_bytes_per_s": r["busbw_bytes_per_s"]})
        curves.append({"collective": collective, "group": g, **{k: ft[k] for k in (
            "latency_s", "bandwidth_bytes_per_s", "held_out_median_abs_error", "held_out_p90_abs_error")},
            "points": len(pts), "held_out": len(pts) - len(train),
            "peak_busbw_bytes_per_s": max(r["busbw_bytes_per_s"] for r in pts)})
    held = np.array([r["error"] for r in rows if r["split"] == "held_out"], dtype=float)
    kind = profile.get("device", {}).get("kind")
    med = _q(held, 0.5)
    target = CPU_TARGET if kind == "cpu" else None
    prov = profile["provenance"]
    return {"profile_kind": KIND, "profile": profile.get("_path"), "device": profile.get("device", {}).get("name"),
            "kind": kind, "backend": prov.get("backend"), "world_size": prov.get("world_size"),
            "hosts": prov.get("hosts"), "complete": profile.get("complete", True),
            "skipped": [{"collective": r["collective"], "group": r["group"], "reason": r["reason"]}
                        for r in profile["results"] if r["status"] != "ok"],
            "families": {"collective": {"points": len(rows), "held_out": int(held.size), "median_abs_error": med,
                                        "p90_abs_error": _q(held, 0.9), "target": target,
                                        "meets_target": None if target is None or med is None else bool(med <= target)}},
            "curves": curves, "points": rows}


# ---------------------------------------------------------------- torchrun, started for the user


def free_port() -> int:
    """A TCP port on localhost that nothing listens on now (torchrun does not take port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_output(nproc: int, device: str) -> Path:
    return Path("profiles") / f"collectives-{device}-{nproc}x-{socket.gethostname()}.json"


def spawn(nproc: int, output: str | Path | None = None, max_bytes: int | None = None, iters: int | None = None,
          device: str | None = None, timeout_s: float = TIMEOUT_S,
          progress: Callable[[str], None] | None = None) -> Path:
    """Run the benchmark with `nproc` local ranks: starts `python -m torch.distributed.run` on localhost (a
    free port), passes every output line to `progress`, and returns the profile path; RooflineError with
    torchrun's exit code (and its last lines as the hint) when it fails. The child processes are stopped if
    this call is interrupted."""
    if nproc < 2:
        raise RooflineError(f"nproc must be >= 2, got {nproc}", hint="collectives need at least two ranks",
                            exit_code=2, param="nproc")
    if max_bytes is not None and max_bytes < MIN_BYTES:
        raise RooflineError(f"max_bytes must be >= {MIN_BYTES}, got {max_bytes}", exit_code=2, param="max_bytes",
                            hint=f"the largest message in bytes, e.g. {16 * 2**20} (16 MiB)")
    if iters is not None and iters < 1:
        raise RooflineError(f"iters must be >= 1, got {iters}", exit_code=2, param="iters",
                            hint="timed samples per size, e.g. 20")
    if device is None:
        try:
            import torch
        except ImportError:
            raise RooflineError("the collectives benchmark needs torch", hint="pip install -e \".[bench]\"")
        device = "cuda" if torch.cuda.is_available() else "cpu"
    out = Path(output) if output is not None else default_output(nproc, device)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", str(nproc),
           "--master-addr", "127.0.0.1", "--master-port", str(free_port()), "-m", "roofline.measure.collectives",
           "--output", str(out.resolve()), "--device", device, "--timeout-s", str(timeout_s)]
    cmd += ["--max-bytes", str(max_bytes)] if max_bytes is not None else []
    cmd += ["--iters", str(iters)] if iters is not None else []
    tail: deque[str] = deque(maxlen=5)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    try:
        for line in proc.stdout:
            tail.append(line.rstrip())
            if progress:
                progress(line.rstrip())
        rc = proc.wait()
    finally:
        _stop(proc)
    if rc != 0 or not out.is_file():
        raise RooflineError(f"the collectives benchmark failed: torchrun exited with code {rc}",
                            hint=" | ".join(t for t in tail if t) or None, exit_code=rc or 1)
    return out


def _stop(proc: subprocess.Popen) -> None:
    """End torchrun and its ranks (its own process group, by id) if they still run."""
    import signal

    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def main(argv: list[str] | None = None) -> int:
    """torchrun's entry point: parse the options, measure, print the profile path on rank 0."""
    ap = argparse.ArgumentParser(prog="python -m roofline.measure.collectives", description=__doc__.split("\n")[0])
    ap.add_argument("--output", required=True, help="profile path (written by rank 0)")
    ap.add_argument("--max-bytes", type=int, default=None, help="largest message [1 GiB on a GPU, 16 MiB on a CPU]")
    ap.add_argument("--min-bytes", type=int, default=MIN_BYTES, help="smallest message [8]")
    ap.add_argument("--iters", type=int, default=None, help="timed repetitions per size [GPU 20, CPU 30]")
    ap.add_argument("--warmup", type=int, default=WARMUP, help="untimed runs per size and round [2]")
    ap.add_argument("--timeout-s", type=float, default=TIMEOUT_S, help="init and collective timeout [300]")
    ap.add_argument("--device", choices=("cuda", "cpu"), default=None, help="[cuda when available]")
    a = ap.parse_args(argv)
    try:
        path = run_rank(a.output, a.max_bytes, a.iters, a.warmup, a.min_bytes, a.timeout_s, a.device,
                        command=sys.argv)
    except RooflineError as e:
        print(f"Error: {e.message}" + (f"\nHint: {e.hint}" if e.hint else ""), file=sys.stderr)
        return e.exit_code
    if path is not None:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

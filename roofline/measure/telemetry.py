"""What the device is and what it did during each point: NVML on NVIDIA GPUs, /proc and /sys on CPUs.

Everything NVML reports is converted at this boundary: MHz -> hz, mW -> w, mJ -> j, ns kept as ns.
Without NVML (no driver, no GPU, the library missing) every call returns `{"available": False, "reason": ...}`
instead of raising: telemetry never stops a benchmark.
"""
from __future__ import annotations

import os
import platform
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

#: NVML clock-event (throttle) reason bits (nvmlClocksEventReasons / nvmlClocksThrottleReasons)
CLOCK_EVENT_REASONS = {
    0x1: "gpu_idle", 0x2: "applications_clocks_setting", 0x4: "sw_power_cap", 0x8: "hw_slowdown",
    0x10: "sync_boost", 0x20: "sw_thermal_slowdown", 0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown", 0x100: "display_clock_setting",
}
#: reasons that mean the clock was held below what the load asked for
THROTTLE_MASK = 0x4 | 0x8 | 0x20 | 0x40 | 0x80
#: GPM metric ids (nvmlGpmMetricId_t) sampled around each point on Hopper and newer
GPM_METRICS = {"sm_occupancy": 3, "any_tensor_util": 5, "dram_bw_util": 10, "fp64_util": 11, "fp32_util": 12,
               "fp16_util": 13, "nvlink_tx_bytes_per_s": 60, "nvlink_rx_bytes_per_s": 61}


def reason_names(bits: int) -> list[str]:
    return [name for bit, name in CLOCK_EVENT_REASONS.items() if bits & bit]


# ------------------------------------------------------------------------------------------------- CPU


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def parse_size(text: str) -> float:
    """'32768K' -> 33554432.0, '1M' -> 1048576.0 (sysfs cache sizes are binary)."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMG]?)i?B?\s*", text)
    if not m:
        return 0.0
    return float(m.group(1)) * {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}[m.group(2)]


def cpu_caches(root: str = "/sys/devices/system/cpu/cpu0/cache") -> list[dict[str, Any]]:
    """Cache levels seen by CPU 0: level, type, size in bytes, and how many CPUs share one instance."""
    out = []
    for d in sorted(Path(root).glob("index*")):
        shared = _read(d / "shared_cpu_list").strip()
        out.append({"level": int(_read(d / "level") or 0), "type": _read(d / "type").strip(),
                    "size_bytes": parse_size(_read(d / "size")), "shared_cpu_list": shared})
    return out


def cpu_info() -> dict[str, Any]:
    """Model name, vendor, cores, clock, caches, RAM (from /proc/cpuinfo, /sys, /proc/meminfo and lscpu)."""
    text = _read("/proc/cpuinfo")
    field = lambda key: (re.search(rf"^{key}\s*:\s*(.*)$", text, re.M) or [None, ""])[1].strip()  # noqa: E731
    mhz = [float(x) for x in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", text, re.M)]
    max_khz = _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").strip()
    caches = cpu_caches()
    llc = max((c for c in caches if c["type"] != "Instruction"), key=lambda c: c["level"], default=None)
    mem_kb = re.search(r"^MemTotal:\s*(\d+)\s*kB", _read("/proc/meminfo"), re.M)
    flags = set(field("flags").split())
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "kind": "cpu", "name": field("model name") or platform.processor() or "CPU",
        "vendor": field("vendor_id"), "architecture": platform.machine(), "cores": cpus,
        "logical_cpus": os.cpu_count(),
        "clock_hz": float(max_khz) * 1e3 if max_khz else (max(mhz) * 1e6 if mhz else 0.0),
        "clock_source": "cpufreq cpuinfo_max_freq" if max_khz else "/proc/cpuinfo cpu MHz",
        "caches": caches, "cache_bytes": llc["size_bytes"] if llc else 0.0,
        "memory_bytes": float(mem_kb.group(1)) * 1024 if mem_kb else 0.0,
        "isa": sorted(flags & {"avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_int8",
                              "avx512_vnni", "asimd", "sve"}),
        "lscpu": _lscpu(),
    }


def _lscpu() -> dict[str, str]:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    keep = ("Model name", "Socket(s)", "Core(s) per socket", "Thread(s) per core", "CPU max MHz",
            "L1d cache", "L2 cache", "L3 cache", "NUMA node(s)", "Hypervisor vendor")
    pairs = (line.split(":", 1) for line in out.splitlines() if ":" in line)
    return {k.strip(): v.strip() for k, v in pairs if k.strip() in keep}


def cpu_mhz_now() -> float:
    """Mean current clock over CPUs from /proc/cpuinfo (constant on many VMs)."""
    mhz = [float(x) for x in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", _read("/proc/cpuinfo"), re.M)]
    return sum(mhz) / len(mhz) if mhz else 0.0


#: the columns of the aggregate `cpu` line of /proc/stat (proc(5)), in clock ticks; guest and guest_nice are
#: already counted in user and nice
PROC_STAT_COLUMNS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice")
_BUSY = ("user", "nice", "system", "irq", "softirq")


def parse_proc_stat(text: str) -> dict[str, Any] | None:
    """The aggregate `cpu` line (ticks per column) and `procs_running` of a /proc/stat text, or None when
    the text has no `cpu` line (not Linux). Older kernels give fewer columns: the missing ones are 0.

    e.g. "cpu  100 0 50 800 10 0 5 35 0 0" -> user 100, system 50, idle 800, iowait 10, softirq 5, steal 35."""
    m = re.search(r"^cpu\s+([\d\s]+)$", text, re.M)
    if not m:
        return None
    vals = [int(v) for v in m.group(1).split()][:len(PROC_STAT_COLUMNS)]
    ticks = dict(zip(PROC_STAT_COLUMNS, vals + [0] * (len(PROC_STAT_COLUMNS) - len(vals))))
    running = re.search(r"^procs_running\s+(\d+)", text, re.M)
    return {"ticks": ticks, "procs_running": int(running.group(1)) if running else None}


def own_cpu_s() -> float:
    """CPU time (user + system, all threads) this process has used, in seconds."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _ticks_per_s() -> float:
    try:
        return float(os.sysconf("SC_CLK_TCK"))
    except (ValueError, OSError, AttributeError):
        return 100.0


def contention_between(before: dict[str, Any] | None, after: dict[str, Any] | None, own_s: float,
                       ticks_per_s: float = 100.0) -> dict[str, Any]:
    """What the machine did between two `parse_proc_stat` snapshots while this process used `own_s` CPU
    seconds: `steal_fraction` (time the hypervisor gave our virtual CPUs to someone else) and
    `other_cpu_fraction` (CPU time of every other process), both fractions of all CPUs' time in the window.

    e.g. 2 CPUs over 1 s at 100 ticks/s: 200 ticks; 120 busy ticks of which this process used 0.8 s
    (80 ticks), 10 steal ticks: other = (120 - 80) / 200 = 0.2, steal = 10 / 200 = 0.05.
    {"available": False} when either snapshot is missing (not Linux)."""
    if not before or not after:
        return {"available": False}
    d = {k: after["ticks"][k] - before["ticks"][k] for k in PROC_STAT_COLUMNS}
    total = sum(d[k] for k in PROC_STAT_COLUMNS[:8])
    if total <= 0:
        return {"available": True, "ticks": 0, "steal_fraction": 0.0, "other_cpu_fraction": 0.0}
    busy = sum(d[k] for k in _BUSY)
    return {"available": True, "ticks": total, "steal_fraction": d["steal"] / total,
            "other_cpu_fraction": min(1.0, max(0.0, (busy - own_s * ticks_per_s) / total))}


class ContentionWindow:
    """/proc/stat and this process's CPU time at the start and end of a window (a point, a run): how much
    of the machine other processes and the hypervisor took meanwhile (see `contention_between`), and the
    runnable tasks and load average at both ends. Fields are absent, never wrong, off Linux."""

    def __enter__(self):
        self.t0, self.own0 = time.perf_counter(), own_cpu_s()
        self.stat0 = parse_proc_stat(_read("/proc/stat"))
        self.load0 = _read("/proc/loadavg").split()[:3]
        return self

    def __exit__(self, *exc):
        self.stat1 = parse_proc_stat(_read("/proc/stat"))
        self.own1, self.t1 = own_cpu_s(), time.perf_counter()
        self.load1 = _read("/proc/loadavg").split()[:3]
        return False

    def result(self) -> dict[str, Any]:
        out = contention_between(self.stat0, self.stat1, self.own1 - self.own0, _ticks_per_s())
        out["window_s"] = self.t1 - self.t0
        out["own_cpu_s"] = self.own1 - self.own0
        out["procs_running"] = [(s or {}).get("procs_running") for s in (self.stat0, self.stat1)]
        out["loadavg"] = [self.load0, self.load1]
        return out


class CpuSampler:
    """Clock, load average, steal time and other processes' CPU time around a point."""

    def __enter__(self):
        self.start = {"mhz": cpu_mhz_now()}
        self.window = ContentionWindow().__enter__()
        return self

    def __exit__(self, *exc):
        self.window.__exit__(*exc)
        self.end = {"mhz": cpu_mhz_now()}
        return False

    def result(self) -> dict[str, Any]:
        w = self.window.result()
        out = {"available": True, "cpu_clock_hz": [self.start["mhz"] * 1e6, self.end["mhz"] * 1e6],
               "loadavg": w["loadavg"], "procs_running": w["procs_running"], "throttled": False}
        if w["available"]:
            out.update(steal_fraction=w["steal_fraction"], other_cpu_fraction=w["other_cpu_fraction"])
        return out


# ------------------------------------------------------------------------------------------------- NVML


def nvml():
    """The initialised pynvml module, or raise RuntimeError with why not."""
    try:
        import pynvml
    except ImportError as e:
        raise RuntimeError("nvidia-ml-py (pynvml) is not installed") from e
    try:
        pynvml.nvmlInit()
    except Exception as e:  # pynvml.NVMLError and its dynamic subclasses
        raise RuntimeError(f"NVML unavailable: {e}") from e
    return pynvml


def _try(fn, *args, default=None):
    try:
        return fn(*args)
    except Exception:
        return default


def nvml_handle(torch_index: int = 0):
    """NVML handle of the torch device `torch_index`, matched by PCI bus id, then UUID (NVML indices ignore
    CUDA_VISIBLE_DEVICES), else NVML index 0."""
    nv = nvml()
    import torch

    props = torch.cuda.get_device_properties(torch_index)
    bus = getattr(props, "pci_bus_id", None)
    if bus is not None:
        busid = f"{getattr(props, 'pci_domain_id', 0):08X}:{bus:02X}:{getattr(props, 'pci_device_id', 0):02X}.0"
        h = _try(nv.nvmlDeviceGetHandleByPciBusId_v2, busid.encode()) or _try(nv.nvmlDeviceGetHandleByPciBusId, busid)
        if h is not None:
            return h, f"pci {busid}"
    uuid = getattr(props, "uuid", None)
    if uuid is not None:
        text = str(uuid)
        text = text if text.startswith("GPU-") else "GPU-" + text
        h = _try(nv.nvmlDeviceGetHandleByUUID, text)
        if h is not None:
            return h, f"uuid {text}"
    return nv.nvmlDeviceGetHandleByIndex(0), "nvml index 0 (no match by PCI id or UUID)"


def gpu_info(torch_index: int = 0) -> dict[str, Any]:
    """Static facts about the CUDA device: torch's view plus NVML's (or why NVML is unavailable)."""
    import torch

    props = torch.cuda.get_device_properties(torch_index)
    info: dict[str, Any] = {
        "kind": "cuda", "name": props.name, "torch_index": torch_index,
        "compute_capability": f"{props.major}.{props.minor}", "sm_count": props.multi_processor_count,
        "memory_bytes": float(props.total_memory), "cache_bytes": float(getattr(props, "L2_cache_size", 0)),
        "cuda_version": torch.version.cuda, "uuid": str(getattr(props, "uuid", "")),
    }
    try:
        nv = nvml()
        h, matched = nvml_handle(torch_index)
    except RuntimeError as e:
        info["nvml"] = {"available": False, "reason": str(e)}
        return info
    mhz = lambda clock: _try(nv.nvmlDeviceGetMaxClockInfo, h, clock)  # noqa: E731
    mem = _try(nv.nvmlDeviceGetMemoryInfo, h)
    bus_bits, mem_max = _try(nv.nvmlDeviceGetMemoryBusWidth, h), mhz(nv.NVML_CLOCK_MEM)
    info["nvml"] = {
        "available": True, "matched_by": matched, "name": _try(nv.nvmlDeviceGetName, h),
        "uuid": _try(nv.nvmlDeviceGetUUID, h), "driver_version": _try(nv.nvmlSystemGetDriverVersion),
        "cuda_compute_capability": _try(nv.nvmlDeviceGetCudaComputeCapability, h),
        "memory_total_bytes": float(mem.total) if mem else None, "memory_bus_width_bits": bus_bits,
        "max_sm_clock_hz": (mhz(nv.NVML_CLOCK_SM) or 0) * 1e6, "max_mem_clock_hz": (mem_max or 0) * 1e6,
        "power_limit_w": (_try(nv.nvmlDeviceGetPowerManagementLimit, h) or 0) / 1e3,
        "pcie_generation": _try(nv.nvmlDeviceGetCurrPcieLinkGeneration, h),
        "pcie_width": _try(nv.nvmlDeviceGetCurrPcieLinkWidth, h),
        "nvlink_links_active": sum(1 for i in range(18) if _try(nv.nvmlDeviceGetNvLinkState, h, i) == 1),
        "gpm_supported": _gpm_supported(nv, h),
    }
    if bus_bits and mem_max:
        # 2 transfers per clock (DDR) x max memory clock x bus width / 8: H100 SXM 2 * 2619e6 * 5120 / 8 = 3.35e12
        info["nvml"]["derived_memory_bandwidth_bytes_per_s"] = 2.0 * mem_max * 1e6 * bus_bits / 8.0
    return info


def _gpm_supported(nv, h) -> bool:
    if not hasattr(nv, "nvmlGpmQueryDeviceSupport"):
        return False
    s = _try(nv.nvmlGpmQueryDeviceSupport, h)
    return bool(getattr(s, "isSupportedDevice", 0)) if s is not None else False


class NvmlSampler:
    """Samples clocks, power, temperature and clock-event reasons in a background thread while a point
    runs; energy, violation time and GPM metrics are read around it."""

    def __init__(self, handle, interval_s: float = 0.01):
        self.nv, self.h, self.interval_s = nvml(), handle, interval_s
        self.samples: list[tuple[float, ...]] = []
        self._stop = threading.Event()
        self.gpm = _gpm_supported(self.nv, handle)

    def _sample(self) -> tuple[float, ...]:
        nv, h = self.nv, self.h
        reasons = _try(nv.nvmlDeviceGetCurrentClocksEventReasons, h)
        if reasons is None:
            reasons = _try(nv.nvmlDeviceGetCurrentClocksThrottleReasons, h, default=0)
        return (time.perf_counter(), (_try(nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_SM) or 0) * 1e6,
                (_try(nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_MEM) or 0) * 1e6,
                (_try(nv.nvmlDeviceGetPowerUsage, h) or 0) / 1e3,
                float(_try(nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU) or 0), float(reasons or 0))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self._sample())
            self._stop.wait(self.interval_s)

    def _violation_ns(self) -> dict[str, int]:
        out = {}
        for name in ("POWER", "THERMAL"):
            pol = getattr(self.nv, f"NVML_PERF_POLICY_{name}", None)
            v = _try(self.nv.nvmlDeviceGetViolationStatus, self.h, pol) if pol is not None else None
            out[name.lower()] = int(v.violationTime) if v is not None else -1
        return out

    def __enter__(self):
        self.energy0 = _try(self.nv.nvmlDeviceGetTotalEnergyConsumption, self.h)
        self.viol0 = self._violation_ns()
        self.gpm0 = self._gpm_sample()
        self.t0 = time.perf_counter()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join()
        self.t1 = time.perf_counter()
        self.energy1 = _try(self.nv.nvmlDeviceGetTotalEnergyConsumption, self.h)
        self.viol1 = self._violation_ns()
        self.gpm1 = self._gpm_sample()
        return False

    def _gpm_sample(self):
        if not self.gpm:
            return None
        s = _try(self.nv.nvmlGpmSampleAlloc)
        if s is None or _try(self.nv.nvmlGpmSampleGet, self.h, s, default="fail") == "fail":
            return None
        return s

    def _gpm_metrics(self) -> dict[str, Any]:
        """Each metric with its own return code: value or {"error": code}. Needs a >= 100 ms window."""
        if self.gpm0 is None or self.gpm1 is None:
            return {"available": False, "reason": "GPM unsupported (needs Hopper or newer) or sampling failed"}
        nv = self.nv
        try:
            req = nv.c_nvmlGpmMetricsGet_t()
            req.version = nv.NVML_GPM_METRICS_GET_VERSION
            req.numMetrics = len(GPM_METRICS)
            req.sample1, req.sample2 = self.gpm0, self.gpm1
            for i, mid in enumerate(GPM_METRICS.values()):
                req.metrics[i].metricId = mid
            nv.nvmlGpmMetricsGet(req)
        except Exception as e:
            return {"available": False, "reason": f"nvmlGpmMetricsGet failed: {e}"}
        out: dict[str, Any] = {"available": True, "window_s": self.t1 - self.t0}
        for i, name in enumerate(GPM_METRICS):
            m = req.metrics[i]
            out[name] = float(m.value) if int(m.nvmlReturn) == 0 else {"error": int(m.nvmlReturn)}
        for s in (self.gpm0, self.gpm1):
            _try(nv.nvmlGpmSampleFree, s)
        return out

    def result(self) -> dict[str, Any]:
        import numpy as np

        s = np.asarray(self.samples or [self._sample()], dtype=float)
        bits = int(np.bitwise_or.reduce(s[:, 5].astype(np.int64)))
        viol = {k: (self.viol1[k] - self.viol0[k]) if min(self.viol0[k], self.viol1[k]) >= 0 else None
                for k in self.viol0}
        energy = (self.energy1 - self.energy0) / 1e3 if self.energy0 is not None and self.energy1 is not None else None
        return {
            "available": True, "samples": int(s.shape[0]),
            "sm_clock_hz": {"median": float(np.median(s[:, 1])), "min": float(s[:, 1].min())},
            "mem_clock_hz": {"median": float(np.median(s[:, 2])), "min": float(s[:, 2].min())},
            "power_w": {"median": float(np.median(s[:, 3])), "max": float(s[:, 3].max())},
            "temperature_c": {"max": float(s[:, 4].max())},
            "clock_event_reasons": bits, "clock_event_names": reason_names(bits),
            "violation_ns": viol, "energy_j": energy,
            "throttled": bool(bits & THROTTLE_MASK) or any((v or 0) > 0 for v in viol.values()),
            "gpm": self._gpm_metrics(),
        }


class NullSampler:
    def __init__(self, reason: str):
        self.reason = reason

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def result(self) -> dict[str, Any]:
        return {"available": False, "reason": self.reason, "throttled": False}


def sampler_factory(device: str):
    """A zero-argument callable returning a fresh context-manager sampler per point."""
    if device == "cpu":
        return CpuSampler
    try:
        h, _ = nvml_handle(0)
    except Exception as e:  # no NVML: record why, keep measuring
        reason = str(e)
        return lambda: NullSampler(reason)
    return lambda: NvmlSampler(h)

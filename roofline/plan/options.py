"""Capacity-planning inputs as `roofline capacity` and the Python API (`roofline.capacity`) take them, checked
in one place: the candidate GPUs with their efficiencies, TP degrees, prices, and the table's columns."""
from __future__ import annotations

from typing import Iterable, Sequence

from roofline.errors import RooflineError
from roofline.model.efficiency import Efficiency
from roofline.model.engine import check_tp
from roofline.plan.capacity import Candidate, candidates
from roofline.specs.fleet import MAX_PRICE_PER_GPU_HOUR, price_ok
from roofline.specs.hardware import GPUSpec, load_gpu
from roofline.specs.models import ModelConfig

#: the candidate GPUs when none (and no fleet) is named
DEFAULT_GPUS: tuple[str, ...] = ("h100-sxm", "h200-sxm")

#: the columns of one candidate in `roofline capacity --format csv` and `roofline.capacity()`
CAPACITY_COLUMNS: tuple[str, ...] = (
    "gpu", "tp", "precision", "max_request_rate_per_replica", "replicas", "gpus", "cost_per_hour",
    "cost_per_million_output_tokens", "headroom", "limited_by", "bottleneck", "batch", "tpot_s", "tpot_p99_s",
    "ttft_p99_s", "kv_cache_utilization", "saturation_rate_per_replica", "reason", "ep", "dp_attention",
    "gpus_per_replica", "pp")

#: the columns of one prefill-pool x decode-pool pair (`roofline capacity --disaggregated`, `roofline.capacity(
#: disaggregated=True)`): each pool's GPU, layout, precision, replicas and binding limit, and the pair's totals
DISAGGREGATED_COLUMNS: tuple[str, ...] = (
    "mode", "prefill_gpu", "prefill_tp", "prefill_ep", "prefill_dp_attention", "prefill_precision", "decode_gpu",
    "decode_tp", "decode_ep", "decode_dp_attention", "decode_precision", "prefill_replicas", "decode_replicas",
    "prefill_gpus", "decode_gpus", "gpus", "cost_per_hour", "cost_per_million_output_tokens", "headroom",
    "ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "tpot_p99_s", "kv_transfer_s", "kv_transfer_bytes",
    "prefill_max_request_rate_per_replica", "decode_max_request_rate_per_replica", "prefill_limited_by",
    "prefill_bottleneck", "decode_limited_by", "decode_bottleneck", "decode_batch", "reason")

#: co-located and disaggregated rows in one table: `mode` ("colocated" or "disaggregated"), then both sets
MODE_COLUMNS: tuple[str, ...] = ("mode", *CAPACITY_COLUMNS,
                                 *(c for c in DISAGGREGATED_COLUMNS if c not in CAPACITY_COLUMNS and c != "mode"))


def check_tp_degrees(tps: Sequence[int], model: ModelConfig, shown: str | None = None) -> list[int]:
    """The TP degrees to try. A degree that does not divide the model's attention heads gets a note in its
    row; when none of them does, that is a usage error (RooflineError, exit 2). `shown` is how the user wrote
    them (default: comma-separated)."""
    tps = list(tps)
    if all(t < 1 or model.num_heads % t for t in tps):
        try:
            check_tp(model, tps[0])
        except RooflineError as e:
            if len(tps) == 1:
                raise
            shown = shown if shown is not None else ",".join(str(t) for t in tps)
            raise RooflineError(f"tp={shown}: none of these degrees divides the {model.num_heads} attention heads "
                                f"of {model.name}", hint=e.hint, exit_code=2, param="tp") from None
    return tps


def check_price(value: str | float, item: str) -> float:
    """A price in USD per GPU-hour (0 to MAX_PRICE_PER_GPU_HOUR, as in a fleet file: a higher one overflowed
    the cost of a large fleet to inf) from a number or its text; `item` is how the user wrote the GPU=USD pair
    (for the message). RooflineError, exit 2, otherwise."""
    try:
        usd = float(value)
    except (TypeError, ValueError):
        raise RooflineError(f"price {item!r} is not GPU=USD_PER_HOUR", hint="e.g. `price=h100-sxm=2.49`",
                            exit_code=2, param="price") from None
    if not price_ok(usd):
        raise RooflineError(f"price {item!r}: the price must be between 0 and {MAX_PRICE_PER_GPU_HOUR:g} USD per "
                            f"GPU-hour, got {value}",
                            hint="e.g. `price=h100-sxm=2.49`", exit_code=2, param="price")
    return usd


def gpu_prices(items: Iterable[tuple[str, str | float, str]]) -> dict[str, float]:
    """{canonical GPU name: USD per GPU-hour} from (GPU name or alias, price, how the user wrote the pair)
    triples; a later price for the same GPU wins. RooflineError for a bad price or an unknown GPU."""
    prices = {}
    for name, value, item in items:
        usd = check_price(value, item)
        prices[load_gpu(name.strip()).name] = usd
    return prices


def device_candidates(devices: Iterable[tuple[GPUSpec, Efficiency | None]], model: ModelConfig,
                      tps: list[int] | None, precisions: list[str]) -> list[Candidate]:
    """Every (device, efficiency) x TP x precision candidate, devices in the order given (see `candidates`)."""
    return [c for g, eff in devices for c in candidates([g], model, tps, precisions, eff)]


def mode_rows(colocated: list[dict], disaggregated: list[dict]) -> list[dict]:
    """Co-located and disaggregated rows with the MODE_COLUMNS (`--format csv`, the API's DataFrame)."""
    rows = [{**r, "mode": "colocated"} for r in colocated] + list(disaggregated)
    return [{k: r.get(k) for k in MODE_COLUMNS} for r in rows]

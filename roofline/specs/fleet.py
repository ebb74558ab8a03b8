"""A fleet file: GPU types, availability per region, prices.

Fleet file (examples/fleet.json):

    {"gpus": {"h100-sxm": {"price_per_gpu_hour": 2.5}, "h200-sxm": {"price_per_gpu_hour": 3.5}},
     "regions": {"us-east": {"h100-sxm": 64, "h200-sxm": 16},
                 "eu-west": {"h100-sxm": {"available": 32, "price_per_gpu_hour": 2.9}}}}

A region entry is a GPU count, or an object with `available` and an optional regional price.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from roofline.errors import RooflineError
from roofline.jsonfile import read_json


@dataclass(frozen=True)
class Fleet:
    prices: dict[str, float]                     # gpu -> $/GPU-hour (default for every region)
    supply: dict[tuple[str, str], tuple[int, float | None]]  # (region, gpu) -> (available GPUs, price or None)

    @property
    def gpu_names(self) -> list[str]:
        return sorted({g for _, g in self.supply} | set(self.prices))

    def price(self, region: str, gpu: str) -> float | None:
        p = self.supply.get((region, gpu), (0, None))[1]
        return p if p is not None else self.prices.get(gpu)

    def with_prices(self, prices: dict[str, float]) -> "Fleet":
        """The fleet with these $/GPU-hour in every region (they replace the file's default and regional
        prices of those GPUs)."""
        supply = {(r, g): (n, None if g in prices else p) for (r, g), (n, p) in self.supply.items()}
        return Fleet({**self.prices, **prices}, supply)


def _bad(where: str, field: str, expected: str, found) -> RooflineError:
    return RooflineError(f"{where}: field '{field}' must be {expected}, found {found!r}",
                         hint="see examples/fleet.json for a complete fleet file")


def _nonneg(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0


def parse_fleet(d, where: str = "fleet") -> Fleet:
    if not isinstance(d, dict):
        raise _bad(where, "(top level)", "a JSON object", type(d).__name__)
    extra = sorted(set(d) - {"gpus", "regions", "description"})
    if extra:
        raise RooflineError(f"{where}: unknown field '{extra[0]}'", hint="allowed: gpus, regions, description")
    prices = {}
    for g, v in (d.get("gpus") or {}).items():
        if not isinstance(v, dict) or not _nonneg(v.get("price_per_gpu_hour")):
            raise _bad(where, f"gpus.{g}.price_per_gpu_hour", "a number >= 0 (USD per GPU-hour)",
                       v.get("price_per_gpu_hour") if isinstance(v, dict) else v)
        prices[g] = float(v["price_per_gpu_hour"])
    regions = d.get("regions")
    if not isinstance(regions, dict) or not regions:
        raise _bad(where, "regions", "an object of region -> {gpu: count}", regions)
    supply = {}
    for r, gs in regions.items():
        if not isinstance(gs, dict):
            raise _bad(where, f"regions.{r}", "an object of gpu -> count", gs)
        for g, v in gs.items():
            count, price = (v, None) if not isinstance(v, dict) else (v.get("available"), v.get("price_per_gpu_hour"))
            if not _nonneg(count) or int(count) != count:
                raise _bad(where, f"regions.{r}.{g}" + (".available" if isinstance(v, dict) else ""),
                           "a whole number of GPUs >= 0", count)
            if price is not None and not _nonneg(price):
                raise _bad(where, f"regions.{r}.{g}.price_per_gpu_hour", "a number >= 0", price)
            supply[(r, g)] = (int(count), None if price is None else float(price))
    return Fleet(prices, supply)


def resolve_gpu_names(fleet: Fleet, where: str) -> Fleet:
    """The fleet with canonical GPU names (aliases such as 'H100' resolved); an unknown GPU is an error that
    names the file and the field."""
    from roofline.specs.hardware import list_gpus, load_gpu

    def canonical(name: str, field: str) -> str:
        try:
            return load_gpu(name).name
        except RooflineError:
            raise RooflineError(f"{where}: field '{field}' names an unknown GPU {name!r}",
                                hint=f"known GPUs: {', '.join(list_gpus())} (see `roofline gpus`), or a GPU spec "
                                "file path") from None
    prices = {canonical(g, f"gpus.{g}"): p for g, p in fleet.prices.items()}
    supply = {}
    for (r, g), v in fleet.supply.items():
        key = (r, canonical(g, f"regions.{r}.{g}"))
        if key in supply:
            raise RooflineError(f"{where}: field 'regions.{r}' lists {key[1]} twice (as {g!r} and another alias)",
                                hint="give each GPU type once per region")
        supply[key] = v
    return Fleet(prices, supply)


def load_fleet(path: str | Path) -> Fleet:
    """Read and validate a fleet JSON file."""
    d = read_json(path, "fleet file", "examples/fleet.json")
    return resolve_gpu_names(parse_fleet(d, str(path)), str(path))

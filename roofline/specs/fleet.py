"""A fleet file: GPU types, availability per region, prices.

Fleet file (examples/fleet.json):

    {"gpus": {"h100-sxm": {"price_per_gpu_hour": 2.5}, "h200-sxm": {"price_per_gpu_hour": 3.5}},
     "regions": {"us-east": {"h100-sxm": 64, "h200-sxm": 16},
                 "eu-west": {"h100-sxm": {"available": 32, "price_per_gpu_hour": 2.9}}}}

A region entry is a GPU count, or an object with `available` and an optional regional price. Counts are whole
numbers from 0 to MAX_GPUS, prices numbers from 0 to MAX_PRICE_PER_GPU_HOUR; an unknown key, a wrong type or a
value out of range is an error naming the file and the field's path (`regions.us-east.h100-sxm`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from roofline.errors import RooflineError
from roofline.jsonfile import clip, read_json


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


#: the most GPUs of one type a region may offer (the largest clusters hold ~10**5; a bigger count is a typo)
MAX_GPUS = 10_000_000
#: the highest price per GPU-hour (in the file's currency, USD by convention) a fleet file may give
MAX_PRICE_PER_GPU_HOUR = 1e6
_HINT = "see examples/fleet.json for a complete fleet file"


def _bad(where: str, field: str, expected: str, found) -> RooflineError:
    return RooflineError(f"{where}: field '{field}' must be {expected}, found {clip(repr(found))}", hint=_HINT)


def price_ok(v) -> bool:
    """A price: a number from 0 to MAX_PRICE_PER_GPU_HOUR (NaN, infinities and true/false are not)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= MAX_PRICE_PER_GPU_HOUR


def _count_ok(v) -> bool:
    """A GPU count: a whole number from 0 to MAX_GPUS (8.0 counts as one; comparing never converts a huge int)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= MAX_GPUS and float(v).is_integer()


def _object(v, where: str, field: str, expected: str) -> dict:
    if not isinstance(v, dict):
        raise _bad(where, field, expected, v)
    return v


def _only(d: dict, allowed: tuple[str, ...], where: str, prefix: str) -> None:
    extra = sorted(set(d) - set(allowed))
    if extra:
        raise RooflineError(f"{where}: unknown field '{prefix}{extra[0]}'", hint=f"allowed in '{prefix[:-1]}': "
                            f"{', '.join(allowed)}; {_HINT}")


def parse_fleet(d, where: str = "fleet") -> Fleet:
    """A Fleet from its JSON document; every field typed and ranged (counts whole numbers from 0 to MAX_GPUS,
    prices numbers from 0 to MAX_PRICE_PER_GPU_HOUR), errors naming `where` (the file) and the field's path."""
    if not isinstance(d, dict):
        raise _bad(where, "(top level)", "a JSON object", type(d).__name__)
    extra = sorted(set(d) - {"gpus", "regions", "description"})
    if extra:
        raise RooflineError(f"{where}: unknown field '{extra[0]}'", hint="allowed: gpus, regions, description")
    if "description" in d and not isinstance(d["description"], str):
        raise _bad(where, "description", "a string", d["description"])
    prices = {}
    gpus = _object(d.get("gpus", {}), where, "gpus", "an object of gpu -> {\"price_per_gpu_hour\": USD}")
    for g, v in gpus.items():
        if not isinstance(v, dict) or not price_ok(v.get("price_per_gpu_hour")):
            raise _bad(where, f"gpus.{g}.price_per_gpu_hour", f"a number from 0 to {MAX_PRICE_PER_GPU_HOUR:g} (USD per "
                       f"GPU-hour), written as {{\"{g}\": {{\"price_per_gpu_hour\": 2.5}}}}",
                       v.get("price_per_gpu_hour") if isinstance(v, dict) else v)
        _only(v, ("price_per_gpu_hour",), where, f"gpus.{g}.")
        prices[g] = float(v["price_per_gpu_hour"])
    regions = d.get("regions")
    if not isinstance(regions, dict) or not regions:
        raise _bad(where, "regions", "an object of region -> {gpu: count}", regions)
    supply = {}
    for r, gs in regions.items():
        gs = _object(gs, where, f"regions.{r}", "an object of gpu -> count")
        for g, v in gs.items():
            if isinstance(v, dict):
                _only(v, ("available", "price_per_gpu_hour"), where, f"regions.{r}.{g}.")
                count, price = v.get("available"), v.get("price_per_gpu_hour")
            else:
                count, price = v, None
            if not _count_ok(count):
                too_many = isinstance(count, (int, float)) and not isinstance(count, bool) and count > MAX_GPUS
                raise _bad(where, f"regions.{r}.{g}" + (".available" if isinstance(v, dict) else ""),
                           f"a whole number of GPUs <= {MAX_GPUS:,}" if too_many else "a whole number of GPUs >= 0",
                           count)
            if price is not None and not price_ok(price):
                raise _bad(where, f"regions.{r}.{g}.price_per_gpu_hour",
                           f"a number >= 0 (at most {MAX_PRICE_PER_GPU_HOUR:g} USD per GPU-hour)", price)
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
    """Read (`jsonfile.read_json`: a regular UTF-8 file of bounded size, strict JSON) and validate a fleet file."""
    d = read_json(path, "fleet file", "examples/fleet.json")
    return resolve_gpu_names(parse_fleet(d, str(path)), str(path))

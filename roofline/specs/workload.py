"""A serving workload: arrivals, prompt and output lengths, multi-turn conversations, SLOs.

File format (JSON; every key but `arrival.rate_per_s` optional; examples/workload-chat.json):

    {"name": "chat",
     "arrival": {"rate_per_s": 20, "daily_curve": [0.3, 0.2, ..., 24 hourly multipliers]},
     "prompt_tokens": {"distribution": "lognormal", "median": 800, "sigma": 0.9, "min": 16, "max": 8192},
     "output_tokens": {"distribution": "empirical", "csv": "output-lengths.csv"},
     "conversation": {"turns": 3, "think_time_s": 30, "prefix_reuse": true},
     "slo": {"ttft_p99_s": 2.0, "tpot_p99_s": 0.05}}

`rate_per_s` counts requests (every turn is a request); hour h of a day runs at rate_per_s x daily_curve[h].
Length distributions: {"distribution": "fixed", "value": n} | "uniform" (min, max) | "lognormal" (median,
sigma, optional min/max clip) | "empirical" (csv: a file of `tokens,count` rows, path relative to the workload
file). Turn k of a conversation sends the whole conversation so far plus a new prompt; with prefix_reuse the
server keeps the conversation's KV cache between turns (while memory allows) and prefills only the new tokens.
Every field is typed and ranged (token counts 1 to MAX_TOKENS, turns 1 to MAX_TURNS, rates within
MIN_RATE_PER_S..MAX_RATE_PER_S, finite times); an error names the file and the field's path
(`prompt_tokens.distribution`).
"""
from __future__ import annotations

import csv
import io
import math
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from roofline.errors import RooflineError
from roofline.jsonfile import clip, read_json, read_text

HOURS_PER_DAY = 24
_KINDS = {"fixed": ("value",), "uniform": ("min", "max"), "lognormal": ("median", "sigma"), "empirical": ()}


@dataclass(frozen=True)
class LengthDist:
    """A distribution of token counts (integers >= 1)."""

    kind: str
    value: int = 0
    low: int = 1
    high: int = 1
    median: float = 0.0
    sigma: float = 0.0
    tokens: tuple[int, ...] = ()
    weights: tuple[float, ...] = ()

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.kind == "fixed":
            return np.full(n, self.value, dtype=np.int64)
        if self.kind == "uniform":
            return rng.integers(self.low, self.high + 1, n)
        if self.kind == "lognormal":
            x = np.rint(self.median * np.exp(self.sigma * rng.standard_normal(n)))
            return np.clip(x, self.low, self.high).astype(np.int64)
        p = np.asarray(self.weights) / np.sum(self.weights)
        return np.asarray(self.tokens, dtype=np.int64)[rng.choice(len(p), n, p=p)]

    def mean(self) -> float:
        if self.kind == "fixed":
            return float(self.value)
        if self.kind == "uniform":
            return (self.low + self.high) / 2.0
        if self.kind == "empirical":
            return float(np.average(self.tokens, weights=self.weights))
        return float(np.mean(self.sample(np.random.default_rng(0), 200_000)))

    def max(self) -> int:
        return {"fixed": self.value, "uniform": self.high, "lognormal": self.high}.get(
            self.kind, max(self.tokens or (1,)))

    def describe(self) -> str:
        return {"fixed": f"{self.value}", "uniform": f"uniform {self.low}-{self.high}",
                "lognormal": f"lognormal median {self.median:g} sigma {self.sigma:g}",
                "empirical": f"empirical ({len(self.tokens)} bins)"}[self.kind]


@dataclass(frozen=True)
class SLO:
    """Latency targets in seconds; None = no target."""

    ttft_p50_s: float | None = None
    ttft_p99_s: float | None = None
    tpot_p50_s: float | None = None
    tpot_p99_s: float | None = None

    def to_dict(self) -> dict:
        return {"ttft_p50_s": self.ttft_p50_s, "ttft_p99_s": self.ttft_p99_s, "tpot_p50_s": self.tpot_p50_s,
                "tpot_p99_s": self.tpot_p99_s}


@dataclass(frozen=True)
class Workload:
    rate_per_s: float
    prompt: LengthDist
    output: LengthDist
    daily_curve: tuple[float, ...] | None = None
    turns: int = 1
    think_time_s: float = 0.0
    prefix_reuse: bool = True
    slo: SLO = field(default_factory=SLO)
    name: str = "workload"

    @property
    def peak_rate_per_s(self) -> float:
        """The busiest hour's request rate (what a fleet without autoscaling must be sized for)."""
        return self.rate_per_s * (max(self.daily_curve) if self.daily_curve else 1.0)

    @property
    def peak_hour(self) -> int:
        """The busiest hour of the daily curve (0 without a curve)."""
        return int(np.argmax(self.daily_curve)) if self.daily_curve else 0

    @property
    def mean_rate_per_s(self) -> float:
        """The request rate averaged over a day."""
        return self.rate_per_s * (float(np.mean(self.daily_curve)) if self.daily_curve else 1.0)

    def with_rate(self, rate_per_s: float) -> "Workload":
        return replace(self, rate_per_s=float(rate_per_s))

    def to_dict(self) -> dict:
        return {"name": self.name, "rate_per_s": self.rate_per_s, "peak_rate_per_s": self.peak_rate_per_s,
                "mean_rate_per_s": self.mean_rate_per_s, "daily_curve": self.daily_curve,
                "prompt_tokens": self.prompt.describe(), "output_tokens": self.output.describe(),
                "turns": self.turns, "think_time_s": self.think_time_s, "prefix_reuse": self.prefix_reuse,
                "slo": self.slo.to_dict()}


# ---------------------------------------------------------------------------------------------------------
# validation helpers: every error names the file and the field's path

#: the longest prompt or output a workload may describe, in tokens (2**31 - 1, as every token count roofline
#: takes): a length above it is a typo, and it keeps a conversation's token sums exact in int64
MAX_TOKENS = 2**31 - 1
#: the most turns a conversation may have: far beyond real chats, and it bounds the requests one conversation
#: adds to a sample
MAX_TURNS = 1000
#: the widest lognormal sigma (e**10 is a factor of 22,000 around the median)
MAX_SIGMA = 10.0
#: the largest count of one histogram row (so that a histogram's total stays a finite float)
MAX_HISTOGRAM_COUNT = 1e18
_HIST_HINT = "rows of two numbers, 'tokens,count': a whole token count >= 1 and a count/weight >= 0"
_FLOAT_MAX = sys.float_info.max


def _err(where: str, field_: str, expected: str, found) -> RooflineError:
    return RooflineError(f"{where}: field '{field_}' must be {expected}, found {clip(repr(found))}",
                         hint="see examples/workload-chat.json for a complete workload file", exit_code=1)


def _is_number(v) -> bool:
    """A JSON number (true/false are not); comparisons with it never convert an integer to a float."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _number(d: dict, key: str, where: str, prefix: str, lo: float = 0.0, strict: bool = True, default=None,
            hi: float = _FLOAT_MAX):
    """d[key]: a number > lo (>= lo unless `strict`) and <= hi, so finite; `default` when absent (absent and no
    default: an error when `strict`, else None)."""
    if key not in d:
        if default is not None or not strict:
            return default
        raise _err(where, prefix + key, "present", "nothing")
    v = d[key]
    if not (_is_number(v) and (v > lo if strict else v >= lo) and v <= hi):  # NaN fails every comparison
        upper = "" if hi == _FLOAT_MAX else f" and <= {hi:g}"
        raise _err(where, prefix + key, f"a number {'>' if strict else '>='} {lo:g}{upper}", v)
    return v


def _int(d: dict, key: str, where: str, prefix: str, default=None, hi: int = MAX_TOKENS) -> int:
    """d[key]: a whole number from 1 to hi (4096.0 counts as one)."""
    v = d.get(key, default)
    if key not in d and default is None:
        raise _err(where, prefix + key, "present", "nothing")
    if not (_is_number(v) and 1 <= v <= hi and float(v).is_integer()):
        raise _err(where, prefix + key, f"a whole number from 1 to {hi:,}", v)
    return int(v)


def _mapping(d, key: str, where: str) -> dict:
    v = d.get(key, {})
    if not isinstance(v, dict):
        raise _err(where, key, "an object", v)
    return v


def _unknown(d: dict, allowed, where: str, prefix: str) -> None:
    extra = sorted(set(d) - set(allowed))
    if extra:
        raise RooflineError(f"{where}: unknown field '{prefix}{extra[0]}'",
                            hint=f"allowed in '{prefix or 'the top level'}': {', '.join(allowed)}", exit_code=1)


def parse_length(d, where: str, field_: str, base_dir: Path | None = None) -> LengthDist:
    """A LengthDist from its JSON object (see the module docstring); token counts from 1 to MAX_TOKENS."""
    if _is_number(d):
        d = {"distribution": "fixed", "value": d}
    if not isinstance(d, dict):
        raise _err(where, field_, "an object with 'distribution'", d)
    kind = d.get("distribution")
    if not isinstance(kind, str) or kind not in _KINDS:
        raise _err(where, field_ + ".distribution", "one of " + ", ".join(_KINDS), kind)
    p = field_ + "."
    _unknown(d, ("distribution", *_KINDS[kind], "min", "max", "csv"), where, p)
    if kind == "fixed":
        return LengthDist("fixed", value=_int(d, "value", where, p))
    if kind == "uniform":
        lo, hi = _int(d, "min", where, p), _int(d, "max", where, p)
        if hi < lo:
            raise _err(where, p + "max", f"a whole number >= min ({lo})", hi)
        return LengthDist("uniform", low=lo, high=hi)
    if kind == "lognormal":
        med = _number(d, "median", where, p, lo=0.0, hi=MAX_TOKENS)
        sig = _number(d, "sigma", where, p, lo=0.0, strict=False, hi=MAX_SIGMA)
        lo = _int(d, "min", where, p, default=1)
        hi = _int(d, "max", where, p, default=min(int(med * 64) + 1, MAX_TOKENS))
        if hi < lo:
            raise _err(where, p + "max", f"a whole number >= min ({lo})", hi)
        return LengthDist("lognormal", low=lo, high=hi, median=float(med), sigma=float(sig or 0.0))
    if not isinstance(d.get("csv"), str) or not d["csv"].strip():
        raise _err(where, p + "csv", "the path of a CSV file of 'tokens,count' rows", d.get("csv"))
    path = Path(d["csv"]) if base_dir is None else base_dir / d["csv"]
    tokens, weights = read_histogram_csv(path)
    return LengthDist("empirical", tokens=tokens, weights=weights)


def read_histogram_csv(path: Path) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """`tokens,count` rows (a header row is optional; `#` starts a comment row) -> (tokens, weights). The file
    is read by `jsonfile.read_text` (a regular UTF-8 file of bounded size); a token count is a whole number from
    1 to MAX_TOKENS, a count a finite number from 0 to MAX_HISTOGRAM_COUNT."""
    text = read_text(path, "histogram file", "examples/output-lengths.csv")
    tokens, weights, header = [], [], False
    try:
        for i, row in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
            if not row or not "".join(row).strip() or row[0].strip().startswith("#"):
                continue
            try:
                t, w = float(row[0]), float(row[1])
            except (ValueError, IndexError):
                if not tokens and not header:  # the first row that is not a comment may be the header
                    header = True
                    continue
                raise RooflineError(f"{path}: line {i}: expected two numbers 'tokens,count', found "
                                    f"{clip(repr(','.join(row)))}", hint=_HIST_HINT) from None
            if not (1 <= t <= MAX_TOKENS and t.is_integer() and 0 <= w <= MAX_HISTOGRAM_COUNT):  # NaN fails too
                raise RooflineError(f"{path}: line {i}: tokens must be a whole number from 1 to {MAX_TOKENS:,} and "
                                    f"count a number from 0 to {MAX_HISTOGRAM_COUNT:g}, found {row[0]},{row[1]}",
                                    hint=_HIST_HINT)
            tokens.append(int(t))
            weights.append(w)
    except csv.Error as e:
        raise RooflineError(f"{path}: not a CSV file of 'tokens,count' rows ({e})", hint=_HIST_HINT) from None
    if not tokens or sum(weights) <= 0:
        raise RooflineError(f"{path}: no histogram rows with a positive count", hint=_HIST_HINT)
    return tuple(tokens), tuple(weights)


def parse_workload(d: dict, where: str = "workload", base_dir: Path | None = None) -> Workload:
    """A Workload from its JSON document; errors name `where` (the file) and the field's path. Every field is
    typed and ranged: rates within [MIN_RATE_PER_S, MAX_RATE_PER_S] (the busiest hour of the daily curve too),
    token counts from 1 to MAX_TOKENS, 1 to MAX_TURNS turns, think times up to MAX_THINK_TIME_S, finite SLOs."""
    if not isinstance(d, dict):
        raise _err(where, "(top level)", "a JSON object", type(d).__name__)
    _unknown(d, ("name", "arrival", "prompt_tokens", "output_tokens", "conversation", "slo", "description"),
             where, "")
    for key in ("name", "description"):
        if key in d and not isinstance(d[key], str):
            raise _err(where, key, "a string", d[key])
    arr = _mapping(d, "arrival", where)
    _unknown(arr, ("rate_per_s", "daily_curve"), where, "arrival.")
    rate = _number(arr, "rate_per_s", where, "arrival.", lo=MIN_RATE_PER_S, hi=MAX_RATE_PER_S)
    curve = arr.get("daily_curve")
    if curve is not None:
        curve = _daily_curve(curve, rate, where)
    for key in ("prompt_tokens", "output_tokens"):
        if key not in d:
            raise _err(where, key, "present (a length distribution)", "nothing")
    prompt = parse_length(d["prompt_tokens"], where, "prompt_tokens", base_dir)
    output = parse_length(d["output_tokens"], where, "output_tokens", base_dir)
    conv = _mapping(d, "conversation", where)
    _unknown(conv, ("turns", "think_time_s", "prefix_reuse"), where, "conversation.")
    turns = _int(conv, "turns", where, "conversation.", default=1, hi=MAX_TURNS)
    think = _number(conv, "think_time_s", where, "conversation.", strict=False, default=0.0, hi=MAX_THINK_TIME_S)
    reuse = conv.get("prefix_reuse", True)
    if not isinstance(reuse, bool):
        raise _err(where, "conversation.prefix_reuse", "true or false", reuse)
    slo_d = _mapping(d, "slo", where)
    _unknown(slo_d, tuple(SLO().to_dict()), where, "slo.")
    slo = SLO(**{k: (float(_number(slo_d, k, where, "slo.")) if k in slo_d else None) for k in SLO().to_dict()})
    for metric, p50, p99 in _inverted_slos(slo):
        raise _err(where, f"slo.{metric}_p50_s", f"<= slo.{metric}_p99_s ({p99:g})", p50)
    name = d.get("name", Path(where).stem)
    return Workload(float(rate), prompt, output, curve, turns, float(think), reuse, slo, name)


def _daily_curve(curve, rate: float, where: str) -> tuple[float, ...]:
    """24 hourly multipliers, each a finite number >= 0, not all 0, the busiest hour within MAX_RATE_PER_S."""
    if not isinstance(curve, list) or len(curve) != HOURS_PER_DAY:
        raise _err(where, "arrival.daily_curve", "a list of 24 hourly multipliers >= 0 (not all 0)",
                   curve if not isinstance(curve, list) else f"{len(curve)} items")
    for h, x in enumerate(curve):
        if not (_is_number(x) and 0 <= x <= _FLOAT_MAX):
            raise _err(where, f"arrival.daily_curve[{h}]", "a number >= 0", x)
    peak = max(curve)
    if not 0 < peak * rate <= MAX_RATE_PER_S:
        raise _err(where, "arrival.daily_curve", f"multipliers not all 0 whose largest times arrival.rate_per_s "
                   f"({rate:g}) is at most {MAX_RATE_PER_S:g} requests/s", f"largest {peak:g}")
    return tuple(float(x) for x in curve)


def _inverted_slos(slo: SLO) -> list[tuple[str, float, float]]:
    """(metric, p50, p99) for each metric whose p50 target exceeds its p99 target."""
    pairs = (("ttft", slo.ttft_p50_s, slo.ttft_p99_s), ("tpot", slo.tpot_p50_s, slo.tpot_p99_s))
    return [(m, p50, p99) for m, p50, p99 in pairs if p50 is not None and p99 is not None and p50 > p99]


def load_workload(path: str | Path) -> Workload:
    """Read (`jsonfile.read_json`: a regular UTF-8 file of bounded size, strict JSON) and validate a workload
    file."""
    d = read_json(path, "workload file", "examples/workload-chat.json")
    return parse_workload(d, str(path), Path(path).expanduser().parent)


_FLAG_HINT = "use N, uniform:MIN:MAX, lognormal:MEDIAN:SIGMA[:MAX] or csv:PATH (token counts >= 1)"


def _flag_error(name: str, what: str) -> RooflineError:
    return RooflineError(f"{name} {what}", hint=_FLAG_HINT, exit_code=2, param=name)


def parse_length_flag(spec: str, name: str) -> LengthDist:
    """A length written as one string (as a flag takes it): '512' (fixed), 'uniform:100:2000',
    'lognormal:MEDIAN:SIGMA[:MAX]', 'csv:PATH'. A bad value is a usage error (exit 2) about the argument
    `name` (its param, and the first word of its message); a bad CSV file is a file error (exit 1)."""
    kind, *args = spec.split(":")
    if kind == "csv" and args:
        return parse_length({"distribution": "empirical", "csv": ":".join(args)}, name, name)
    try:
        if not args:
            n = int(kind)
            if not 1 <= n <= MAX_TOKENS:
                raise _flag_error(name, f"must be >= 1 token, got {n}" if n < 1 else
                                  f"must be <= {MAX_TOKENS:,} tokens, got {n}")
            return LengthDist("fixed", value=n)
        if kind == "uniform" and len(args) == 2:
            lo, hi = int(args[0]), int(args[1])
            if not 1 <= lo <= hi <= MAX_TOKENS:
                bound = "1 <= MIN <= MAX" if not 1 <= lo <= hi else f"MAX <= {MAX_TOKENS:,}"
                raise _flag_error(name, f"uniform:MIN:MAX needs {bound}, got {spec!r}")
            return LengthDist("uniform", low=lo, high=hi)
        if kind == "lognormal" and len(args) in (2, 3):
            med, sig = float(args[0]), float(args[1])
            ok = 0 < med <= MAX_TOKENS and 0 <= sig <= MAX_SIGMA  # NaN and infinities fail too
            hi = int(args[2]) if len(args) == 3 else min(int(med * 64) + 1, MAX_TOKENS) if ok else 0
            if not (ok and 1 <= hi <= MAX_TOKENS):
                raise _flag_error(name, f"lognormal:MEDIAN:SIGMA[:MAX] needs MEDIAN > 0, SIGMA >= 0 and MAX >= 1 "
                                  f"(MEDIAN and MAX at most {MAX_TOKENS:,}, SIGMA at most {MAX_SIGMA:g}), got {spec!r}")
            return LengthDist("lognormal", low=1, high=hi, median=med, sigma=sig)
    except ValueError:
        pass
    raise _flag_error(name, f"{spec!r} is not a length")


#: request rates a workload takes: one request in ~12 days up to ten million per second (a rate outside is a
#: typo or a unit mistake, and an infinite or subnormal one used to overflow the arrival sampler)
MIN_RATE_PER_S, MAX_RATE_PER_S = 1e-6, 1e7
#: the longest think time between turns: one year (an infinite one used to make the simulator loop forever)
MAX_THINK_TIME_S = 365 * 86400.0


def workload_from_options(path: str | Path | Workload | None = None, rate_per_s: float | None = None,
                          prompt: str | None = None, output: str | None = None, turns: int | None = None,
                          think_time_s: float | None = None, ttft_p99_s: float | None = None,
                          tpot_p99_s: float | None = None) -> Workload:
    """A workload file (or an already-built Workload) with flag overrides, or (no file) a workload from
    flags alone."""
    if isinstance(path, Workload):
        w = path
    elif path is not None:
        w = load_workload(path)
    else:
        if rate_per_s is None:
            raise RooflineError("no workload given", exit_code=2,
                                hint="pass a workload file (`path`), or `rate_per_s` with `prompt` and `output`")
        w = Workload(float(rate_per_s), LengthDist("fixed", value=1024), LengthDist("fixed", value=256))
    if rate_per_s is not None:
        if not MIN_RATE_PER_S <= rate_per_s <= MAX_RATE_PER_S:
            raise RooflineError(f"rate_per_s must be between {MIN_RATE_PER_S:g} and {MAX_RATE_PER_S:g}, got "
                                f"{rate_per_s}", hint="requests per second", exit_code=2, param="rate_per_s")
        w = w.with_rate(rate_per_s)
    if prompt is not None:
        w = replace(w, prompt=parse_length_flag(prompt, "prompt"))
    if output is not None:
        w = replace(w, output=parse_length_flag(output, "output"))
    if turns is not None:
        if not 1 <= turns <= MAX_TURNS:
            bound = ">= 1" if turns < 1 else f"<= {MAX_TURNS:,}"
            raise RooflineError(f"turns must be {bound}, got {turns}", hint="turns per conversation", exit_code=2,
                                param="turns")
        w = replace(w, turns=turns)
    if think_time_s is not None:
        if not 0 <= think_time_s <= MAX_THINK_TIME_S:
            raise RooflineError(f"think_time_s must be between 0 and {MAX_THINK_TIME_S:g}, got {think_time_s}",
                                hint="seconds between turns", exit_code=2, param="think_time_s")
        w = replace(w, think_time_s=think_time_s)
    return replace(w, slo=_slo_from_flags(w.slo, ttft_p99_s, tpot_p99_s))


def _slo_from_flags(slo: SLO, ttft_p99_s: float | None, tpot_p99_s: float | None) -> SLO:
    """The workload's SLO with the flags' p99 targets (each > 0, and not below the workload's p50 target)."""
    for name, v in (("ttft_p99_s", ttft_p99_s), ("tpot_p99_s", tpot_p99_s)):
        if v is not None and not 0 < v < math.inf:
            raise RooflineError(f"{name} must be a finite number > 0, got {v}", hint="a latency target in seconds",
                                exit_code=2, param=name)
    slo = replace(slo, **{k: v for k, v in (("ttft_p99_s", ttft_p99_s), ("tpot_p99_s", tpot_p99_s))
                          if v is not None})
    for metric, p50, p99 in _inverted_slos(slo):
        raise RooflineError(f"{metric}_p99_s={p99:g} is below the workload's p50 target of {p50:g} s",
                            hint=f"a p99 target must be >= the p50 target (slo.{metric}_p50_s)", exit_code=2,
                            param=f"{metric}_p99_s")
    return slo


# ---------------------------------------------------------------------------------------------------------
# sampling conversations

@dataclass(frozen=True)
class Requests:
    """Sampled conversations, one row per turn, ordered by conversation then turn.

    conv: conversation index; turn: 0-based; new_tokens: the turn's new prompt tokens; history_tokens: tokens
    of the earlier turns (prompts + outputs) the turn's prompt repeats; output_tokens; start_s: the first
    turn's arrival time (only meaningful where turn == 0); think_s: the pause before this turn (0 for turn 0).
    """

    conv: np.ndarray
    turn: np.ndarray
    new_tokens: np.ndarray
    history_tokens: np.ndarray
    output_tokens: np.ndarray
    start_s: np.ndarray
    think_s: np.ndarray

    def __len__(self) -> int:
        return len(self.conv)


def arrival_times(w: Workload, n: int, rng: np.random.Generator, rate_scale: float = 1.0,
                  start_hour: int = 0) -> np.ndarray:
    """n Poisson arrival times of conversations (rate / turns), following the daily curve if any; time 0 is
    the start of hour `start_hour` of the curve."""
    unit = np.cumsum(rng.exponential(1.0, n))
    conv_rate = w.rate_per_s * rate_scale / w.turns
    if not w.daily_curve:
        return unit / conv_rate
    # invert the cumulative intensity, piecewise linear over hours (repeated for as many days as needed)
    hour_mass = np.roll(np.asarray(w.daily_curve), -int(start_hour)) * conv_rate * 3600.0
    days = int(np.ceil(unit[-1] / hour_mass.sum())) + 1
    cum = np.concatenate([[0.0], np.cumsum(np.tile(hour_mass, days))])
    return np.interp(unit, cum, np.arange(len(cum)) * 3600.0)


def sample_requests(w: Workload, n_requests: int, seed: int = 0, rate_scale: float = 1.0,
                    start_hour: int = 0) -> Requests:
    """Exactly n_requests requests: conversations of w.turns turns, the last one cut short if w.turns does not
    divide n_requests. Arrivals start at hour `start_hour` of the daily curve (see arrival_times). `seed`: a
    whole number >= 0 (numpy's generators take no negative seed)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise RooflineError(f"seed must be a whole number >= 0, got {seed!r}", hint="any whole number from 0 up: "
                            "the same seed gives the same requests", exit_code=2, param="seed")
    rng = np.random.default_rng(seed)
    n_conv = max(1, -(-n_requests // w.turns))
    k = w.turns
    n = n_conv * k
    new = w.prompt.sample(rng, n).reshape(n_conv, k)
    out = w.output.sample(rng, n).reshape(n_conv, k)
    per_turn = new + out
    history = np.cumsum(per_turn, axis=1) - per_turn
    start = arrival_times(w, n_conv, rng, rate_scale, start_hour)
    think = rng.exponential(w.think_time_s, (n_conv, k)) if w.think_time_s > 0 else np.zeros((n_conv, k))
    think[:, 0] = 0.0
    keep = slice(0, max(1, n_requests))
    return Requests(np.repeat(np.arange(n_conv), k)[keep], np.tile(np.arange(k), n_conv)[keep], new.ravel()[keep],
                    history.ravel()[keep], out.ravel()[keep], np.repeat(start, k)[keep], think.ravel()[keep])


def context_warning(w: Workload, model_name: str, max_positions: int, seed: int = 0) -> str | None:
    """A warning when (a sample of) the workload's requests reach a context beyond the model's maximum
    positions (prompt, conversation history and output together), like `analyze` gives; None otherwise."""
    r = sample_requests(w, 20_000, seed)
    ctx = r.history_tokens + r.new_tokens + r.output_tokens
    over = ctx > max_positions
    if not over.any():
        return None
    share = "" if over.all() else f" in {over.mean():.1%} of requests"
    return (f"context {int(ctx.max())} exceeds {model_name}'s maximum of {max_positions} positions{share} "
            "(prompt + conversation history + output)")

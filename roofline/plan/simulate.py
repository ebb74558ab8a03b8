"""Discrete-event simulation of serving replicas under a serving engine's scheduler: continuous batching,
chunked prefill, a paged KV cache, optimistic admission with preemption (recompute or swap) or reservation
at admission, eviction of idle conversations and recompute when they return, admission queueing.

Per replica (conversations are routed round-robin, a conversation's turns stick to its replica), every step
(one forward pass), with the engine's settings (`SimSettings.memory`, a `MemorySettings` from an engine file):
  1. arrivals up to the clock join the FIFO admission queue;
  2. admission, by the engine's `admission` rule (`admission_rule`). "reserve_all" (TensorRT-LLM's
     GUARANTEED_NO_EVICT, `preemption` "none"): the queue head is admitted when the KV cache has pages for
     its prompt + output (reserved up front, so a running sequence is never preempted). "optimistic"
     (vLLM): the head is admitted when there are pages for its prompt (in page_tokens units); a decoding
     sequence takes one more page each time its context crosses a page boundary. "reserve_ratio" (SGLang's
     PrefillAdder, "conservative"): pages for the prompt as under "optimistic", and besides, in tokens,
     prompt (the tokens to prefill) + min(output left, clip) + one page < free + idle tokens - new_token_ratio
     x the sum over decoding requests of min(output left, clip) - the sum over admitted, still prefilling
     ones of min(output left, clip) + one page (SGLang charges those in full in the pass that admits them);
     a request is admitted on pages alone when nothing else is in flight (SGLang caps a request's
     max_new_tokens so that it fits alone). The ratio starts at init, falls by the decay each decode step
     down to the floor, becomes retract_decode's estimate after a retraction (step 3) and init again when
     the replica is idle; admission is tried again at the events a decode run stops at (arrivals,
     completions, page shortages). Every rule: fewer than max_seqs sequences run, and idle conversations
     are evicted least recently used first to make room; a returning conversation whose pages are still
     cached prefills only its new tokens (a hit, only when the engine's `prefix_caching` is on), otherwise
     the whole conversation is recomputed;
  3. preemption, when a step's decoding sequences need more pages than are free: victims are taken until
     the rest fit. vLLM (V1 scheduler, vllm/v1/core/sched/scheduler.py: "Preempt the lowest-priority
     request ... preempted_req = self.running.pop()"; `_preempt_request` frees its blocks, sets
     num_computed_tokens = 0 and `self.waiting.prepend_request(request)`): the most recently admitted
     request first (LIFO, prefilling ones included), requeued at the front. SGLang (`retract_decode` in
     python/sglang/srt/managers/schedule_batch.py sorts the decode batch by (len(output_ids),
     -len(origin_input_ids)) and pops from the end; the scheduler re-queues with `waiting_queue.extend`):
     the decoding request with the fewest generated tokens (ties: the longest prompt), requeued at the
     back; under "reserve_ratio" new_token_ratio then becomes min(1, (tokens the remaining decoding
     requests generated + retract_decode_steps x their count) / (their outputs + 1)). A recomputed victim
     re-prefills its prompt and the tokens it generated (counted as
     recompute); under "swap" a decoding victim's KV goes to host memory over PCIe and comes back (the
     transfer time on the step's clock) before any new request is admitted, with no recompute;
  4. the step: `schedule` "mixed" holds every decoding sequence (1 token each) plus prefill first come
     first served, up to max_batched_tokens in all: chunks with chunked prefill, else whole prompts that
     fit the budget left; "prefill_first" (SGLang) runs prefill-only steps (chunks of up to
     max_batched_tokens, or whole prompts) while prompts wait, decode steps otherwise;
  5. its time is the roofline model's for the step's aggregates (`step_time.StepTimeModel`), the engine's
     fixed costs of a pass included (eager kernel launches, the per-step host overhead);
  6. a finished prefill emits a token (the first: TTFT); a sequence finishes when all its output is out.
Runs of pure decode steps with nothing to admit are advanced in one jump to the next arrival, completion or
page shortage (the step time is affine in the context along the run: the sum is the trapezoid, exact within
a regime; the pages a run takes follow from how many sequences sit at each offset within a page).
"""
from __future__ import annotations

import heapq
import math
import os
from collections import OrderedDict, deque
from dataclasses import dataclass, replace

import numpy as np

from roofline.model import memory as mem
from roofline.model.engine import Setup
from roofline.errors import RooflineError
from roofline.model.step_time import StepTimeModel, with_engine_costs
from roofline.specs.engines import Admission, implied_admission
from roofline.specs.workload import Requests, Workload, sample_requests

SAMPLES = 200
#: the most samples one replica keeps: a run that drains long after its last arrival (an overload) halves
#: them and doubles the interval beyond it, so memory and time stay bounded (even)
MAX_SAMPLES = 50 * SAMPLES


@dataclass(frozen=True)
class SimSettings:
    """How the simulated engine schedules: `chunked_prefill` and `page_tokens` (the engine's, as in `memory`
    when built from an engine), the warm-up left out of throughput, and the engine settings in effect
    (`memory`: batch limits, `schedule`, `preemption`, `preemption_victim`, `prefix_caching`, the KV-cache
    rule), and `admission`: the admission rule, None for the engine's (`admission_rule`)."""

    chunked_prefill: bool = True
    page_tokens: int = mem.KV_PAGE_TOKENS
    warmup_fraction: float = 0.1  # of the arrival span, left out of the steady-state throughput
    memory: mem.MemorySettings = mem.MemorySettings()
    admission: Admission | None = None


#: what `summarize` reports as "admission" for each rule
ADMISSION_NAMES = {"reserve_all": "reserved", "optimistic": "optimistic", "reserve_ratio": "conservative"}


def admission_rule(cfg: SimSettings) -> Admission:
    """The admission rule in effect: `cfg.admission` when given, else the engine settings' (`cfg.memory.admission`,
    from the engine file's `admission`), else the one `preemption` implies ("reserve_all" for "none", else
    "optimistic"). RooflineError (exit 2) when the rule contradicts `preemption`: "reserve_all" goes with "none"
    and only with it."""
    ms = cfg.memory
    adm = cfg.admission or ms.admission or Admission(implied_admission(ms.preemption))
    if (adm.rule == "reserve_all") != (ms.preemption == "none") or adm.rule not in ADMISSION_NAMES:
        raise RooflineError(f"admission {adm.rule!r} does not go with preemption {ms.preemption!r}",
                            hint='"reserve_all" admission is the one that never preempts: it goes with a '
                                 '`preemption` of "none", "optimistic" and "reserve_ratio" with the others',
                            exit_code=2, param="admission")
    return adm


@dataclass
class ReplicaTrace:
    """What one replica's run leaves behind (lists indexed like its requests)."""

    idx: list
    first_token_s: list
    done_s: list
    arrive_s: list
    samples: list  # (batch, used_pages, idle_pages, queue_len) at each sample time
    steps: int
    hits: int
    misses: int
    recompute_tokens: int
    prefill_tokens: int
    evictions: int
    rejected: int
    total_pages: int
    window_tokens: float
    preemptions: int = 0
    preempt_recompute_tokens: int = 0
    swapped_bytes: float = 0.0  # per GPU, out and back in
    peak_pages: int = 0  # most pages held at once (in-flight and idle conversations)
    generated_tokens: int = 0
    sample_dt: float = 0.0  # the interval of `samples` (doubled past MAX_SAMPLES; 0: the run's own)


def _window_terms(model):
    """(terms, W, f): terms(c, x) = per-sequence (pairs, kv) of a prefill chunk of c new tokens after x cached,
    averaged over layers; W the sliding window (None without), f the share of windowed layers.

    This is `phases.attention_terms(model, c, x)` for scalars. The simulator calls it once per prefill chunk
    (about a million times per million requests) in its Python loop, where numpy's per-call overhead on
    scalars (~10 us) would dominate the step; so it is the same formula in plain floats, held to the phases
    function by tests/test_simulate.py::test_window_terms_match_phases."""
    W = float(model.sliding_window) if model.sliding_window else None
    f = (model.sliding_window_layers / model.num_layers) if W else 0.0

    def terms(c, x):
        full_p, full_k = c * x + c * (c + 1) * 0.5, x + c
        if not f:
            return full_p, full_k
        lo, hi = x + 1.0, x + c
        m = min(max(W, lo - 1.0), hi)
        win_p = (m * (m + 1.0) - (lo - 1.0) * lo) * 0.5 + W * (hi - m)
        win_k = min(hi, W + c - 1.0)
        return (1 - f) * full_p + f * win_p, (1 - f) * full_k + f * win_k
    return terms, W, f


def _jump_length(k: int, t0: float, d: float, gap: float) -> int:
    """Decode steps (1..k) whose summed time j t0 + d j (j - 1) / 2 first reaches gap (steps grow by d)."""
    if d > 0:
        a = d * 0.5
        bq = t0 - a
        j = math.ceil((-bq + math.sqrt(bq * bq + 4 * a * gap)) / (2 * a))
    else:
        j = math.ceil(gap / t0)
    return 1 if j < 1 else k if j > k else j


class _Replica:
    """One replica's run (see the module docstring): per-request arrays, the scheduler's queues and the KV
    cache's pages. `run` loops over steps; each stage of a step is a method. Hot state lives in slots.

    Under optimistic admission `run_seqs` maps each decoding request to [join step, context at join, finish
    step, page key, tokens generated at join, prompt tokens]; its context at decode step G is context + G -
    join, and it takes a page at step G when that is a multiple of P, i.e. when (key + G) % P == 0 with key
    = (context - join) % P; `keys[r]` counts the decoding sequences with key r.

    Under "reserve_ratio" admission `end_sum` and `out_sum` sum the decoding requests' finish steps and
    outputs (so the output they have left at step G sums to end_sum - B G), `long` holds those whose output
    left exceeded the clip when they joined (i -> finish step), `pending` sums min(output left, clip) + a page
    over the admitted, still prefilling requests, and `ratio` is new_token_ratio."""

    __slots__ = ("n", "new", "hist", "out", "think", "turn", "conv", "has_next", "reuse", "P", "M", "max_seqs",
                 "chunked", "mixed", "optimistic", "swap", "lifo", "terms", "W", "wf", "step_time", "decode_times",
                 "w0", "w1", "sample_dt", "total_pages", "arrive", "first", "done", "starts", "later", "waiting",
                 "prefilling", "fin", "lru", "lru_pages", "free", "B", "C", "G", "clock", "next_sample", "samples",
                 "steps", "hits", "misses", "recompute", "prefill_tok", "evictions", "rejected", "win_tokens",
                 "remaining", "idx", "gen", "again", "run_seqs", "keys", "swapped", "swap_s_per_token",
                 "swap_bytes_per_token", "preemptions", "preempt_recompute", "swapped_bytes", "min_free",
                 "generated", "conservative", "adm", "ratio", "clip", "end_sum", "out_sum", "long", "pending",
                 "retracted")

    def __init__(self, sm: StepTimeModel, r: Requests, idx: np.ndarray, w: Workload, cfg: SimSettings,
                 sample_dt: float, total_pages: int, window: tuple[float, float]):
        n = self.n = len(idx)
        ms = cfg.memory
        self.idx = idx
        self.new, self.hist = r.new_tokens[idx].tolist(), r.history_tokens[idx].tolist()
        self.out, self.think = r.output_tokens[idx].tolist(), r.think_s[idx].tolist()
        self.turn, conv = r.turn[idx].tolist(), r.conv[idx]
        self.conv = conv.tolist()
        self.has_next = np.append(conv[1:] == conv[:-1], False).tolist()  # the conversation goes on
        self.reuse = w.prefix_reuse and ms.prefix_caching
        self.P, self.M, self.max_seqs = cfg.page_tokens, ms.max_batched_tokens, ms.max_seqs
        self.chunked = cfg.chunked_prefill
        self.mixed = ms.schedule == "mixed"
        self.optimistic = ms.preemption != "none"
        self.swap = ms.preemption == "swap"
        self.lifo = ms.preemption_victim == "last_admitted"
        adm = self.adm = admission_rule(cfg)
        self.conservative = adm.rule == "reserve_ratio"
        self.ratio, self.clip = adm.ratio_init, adm.clip_tokens
        self.end_sum = self.out_sum = self.pending = 0
        self.long = {}
        self.retracted = False  # a retraction set the ratio for the coming decode step (no decay on it)
        kv_token = float(mem.kv_cache_bytes_per_token(sm.setup))
        self.swap_bytes_per_token = kv_token
        self.swap_s_per_token = kv_token / float(sm.setup.gpu.pcie_bandwidth_bytes_per_s)
        self.terms, self.W, self.wf = _window_terms(sm.setup.model)
        self.step_time, self.decode_times = sm.time, sm.decode_times
        self.w0, self.w1 = window
        self.sample_dt, self.total_pages = sample_dt, total_pages
        self.arrive, self.first, self.done = [0.0] * n, [0.0] * n, [0.0] * n
        self.gen = [0] * n  # tokens generated before a preemption (0: never preempted)
        self.again = [False] * n  # preempted and requeued: re-prefills everything
        firsts = np.flatnonzero(r.turn[idx] == 0)[::-1]  # pop() from the end = earliest first
        self.starts = list(zip(r.start_s[idx[firsts]].tolist(), firsts.tolist()))
        self.later = []  # heap of (time, i) for follow-up turns
        self.waiting = deque()
        self.prefilling = deque()  # [i, remaining new tokens, tokens in the cache so far, pages]
        self.fin = []  # heap (finish step, i, context at finish (-1: no decode step), pages)
        self.run_seqs = {}  # optimistic admission: decoding request -> state (class docstring), admission order
        self.keys = [0] * self.P
        self.swapped = deque()  # (i, context, tokens generated) swapped out to host memory
        self.lru = OrderedDict()  # conv -> pages held by an idle conversation
        self.lru_pages, self.free = 0, total_pages
        self.min_free = total_pages
        self.B = self.C = self.G = 0  # decoding sequences, the sum of their contexts, decode steps so far
        self.clock = self.next_sample = 0.0
        self.samples = []  # (batch, used_pages, idle_pages, queue_len) at each sample time
        self.steps = self.hits = self.misses = self.recompute = self.prefill_tok = 0
        self.evictions = self.rejected = self.preemptions = self.preempt_recompute = self.generated = 0
        self.win_tokens = self.swapped_bytes = 0.0
        self.remaining = n

    def run(self) -> ReplicaTrace:
        # bound methods and the (never rebound) queues as locals: this loop runs ~2.5 times per request
        arrivals, admit, prefill_step, decode_run, complete = (self._arrivals, self._admit, self._prefill_step,
                                                               self._decode_run, self._complete)
        starts, later, waiting, prefilling, fin = self.starts, self.later, self.waiting, self.prefilling, self.fin
        swapped = self.swapped
        while self.remaining:
            if not (self.B or prefilling or waiting or swapped):
                self._idle_until_next_arrival()
            clock = self.clock
            if (starts and starts[-1][0] <= clock) or (later and later[0][0] <= clock):
                arrivals()
            if waiting or swapped:
                admit()
            if prefilling:
                prefill_step()
            elif self.B:
                decode_run()
            if fin and fin[0][0] <= self.G:
                complete()
            if self.next_sample <= self.clock:
                self._sample(len(waiting))
        return ReplicaTrace(list(self.idx), self.first, self.done, self.arrive, self.samples, self.steps,
                            self.hits, self.misses, self.recompute, self.prefill_tok, self.evictions, self.rejected,
                            self.total_pages, self.win_tokens, self.preemptions, self.preempt_recompute,
                            self.swapped_bytes, self.total_pages - self.min_free, self.generated, self.sample_dt)

    def _next_arrival(self) -> float:
        na = self.starts[-1][0] if self.starts else math.inf
        nl = self.later[0][0] if self.later else math.inf
        return na if na < nl else nl

    def _sample(self, queue: int) -> None:
        """Record (batch, pages in use, idle pages, queue) at every sample time up to the clock. At MAX_SAMPLES
        rows every other one is dropped and the interval doubled (the next sample time stays: MAX_SAMPLES / 2
        rows at 0, 2 dt, ... leave the next at MAX_SAMPLES x dt), so that an overloaded run, whose clock runs far
        past the arrivals the interval was sized on, neither exhausts memory nor loops for hours."""
        row = (self.B, self.total_pages - self.free - self.lru_pages, self.lru_pages, queue)
        samples = self.samples
        while self.next_sample <= self.clock:
            if len(samples) >= MAX_SAMPLES:
                del samples[1::2]
                self.sample_dt *= 2.0
            samples.append(row)
            self.next_sample += self.sample_dt

    def _idle_until_next_arrival(self) -> None:
        if self.conservative:  # SGLang re-inits new_token_ratio when it has no batch to run
            self.ratio, self.retracted = self.adm.ratio_init, False
        nxt = self._next_arrival()
        if nxt > self.clock:
            self.clock = nxt
            self._sample(0)

    def _arrivals(self) -> None:
        """1. Arrivals up to the clock join the FIFO admission queue."""
        starts, later, clock, arrive, waiting = self.starts, self.later, self.clock, self.arrive, self.waiting
        while starts and starts[-1][0] <= clock:
            t, i = starts.pop()
            arrive[i] = t
            waiting.append(i)
        while later and later[0][0] <= clock:
            t, i = heapq.heappop(later)
            arrive[i] = t
            waiting.append(i)

    def _take(self, need: int) -> None:
        """Take `need` free pages, evicting idle conversations (LRU first) as needed (the caller checked that
        free + idle pages suffice)."""
        free = self.free
        if free < need:
            lru = self.lru
            while free < need:
                _, p = lru.popitem(last=False)
                self.lru_pages -= p
                free += p
                self.evictions += 1
        free -= need
        self.free = free
        if free < self.min_free:
            self.min_free = free

    def _admit(self) -> None:
        """2. Swapped-out requests come back first (none is admitted while one waits); then the queue's head is
        admitted while a sequence slot and its KV pages (evicting idle conversations, LRU first) are free:
        pages for prompt + output (reserved), or for the prompt (optimistic, and under "reserve_ratio" the token
        budget of the module docstring besides). A request larger than the whole KV cache is rejected with its
        conversation."""
        if self.swapped and not self._swap_in():
            return
        waiting, prefilling, lru = self.waiting, self.prefilling, self.lru
        hist, new, out, again = self.hist, self.new, self.out, self.again
        P, total_pages, slots = self.P, self.total_pages, self.max_seqs - self.B
        reserve = 0 if self.optimistic else 1
        cons = self.conservative
        if cons:  # tokens held back for what the requests in flight will still generate
            est = self.end_sum - self.B * self.G
            held = self.ratio * (est - self._clip_excess() if self.long else est) + self.pending
            busy = self.B or prefilling
        while waiting and len(prefilling) < slots:
            i = waiting[0]
            h = hist[i]
            if -(-(h + new[i] + out[i]) // P) > total_pages:
                waiting.popleft()
                self._reject(i)
                continue
            if again[i]:  # preempted: its prompt and the tokens it generated, all prefilled again
                todo = h + new[i] + self.gen[i]
                own, cached = 0, 0
                pages = -(-todo // P)
            else:
                pages = -(-(h + new[i] + reserve * out[i]) // P)
                own = lru.get(self.conv[i], 0) if (self.reuse and h) else 0
                cached, todo = (h, new[i]) if own else (0, h + new[i])
            need = pages - own
            if need > self.free + self.lru_pages - own:
                break
            if cons:
                est = self._estimate(i)
                if busy and todo + est >= (self.free + self.lru_pages - own) * P - held:
                    break
                held += est
                self.pending += est
                busy = True
            waiting.popleft()
            if own:
                del lru[self.conv[i]]
                self.lru_pages -= own
                self.hits += 1
            elif h and not again[i]:
                self.misses += 1
                self.recompute += h
            self._take(need)
            self.prefill_tok += todo
            prefilling.append([i, todo, cached, pages])

    def _swap_in(self) -> bool:
        """Swapped-out requests return to decoding, oldest first, while their pages and a slot are free (the
        PCIe transfer on the clock); True when none is left out."""
        swapped, P = self.swapped, self.P
        while swapped and self.B + len(self.prefilling) < self.max_seqs:
            i, ctx, gen = swapped[0]
            pages = -(-ctx // P)
            if pages > self.free + self.lru_pages:
                return False
            swapped.popleft()
            self._take(pages)
            self.clock += ctx * self.swap_s_per_token
            self.swapped_bytes += ctx * self.swap_bytes_per_token
            self._join(i, ctx, gen)
        return not swapped

    def _join(self, i: int, ctx: int, gen: int) -> None:
        """Request i (ctx tokens in its KV cache, gen tokens out) decodes from the next step on."""
        G, left = self.G, self.out[i] - gen
        self.B += 1
        self.C += ctx
        if self.optimistic:
            key = (ctx - G) % self.P
            self.keys[key] += 1
            self.run_seqs[i] = [G, ctx, G + left, key, gen, self.hist[i] + self.new[i]]
            if self.conservative:
                self.end_sum += G + left
                self.out_sum += self.out[i]
                if left > self.clip:
                    self.long[i] = G + left
        heapq.heappush(self.fin, (G + left, i, ctx + left, -(-(ctx + left) // self.P) if self.optimistic else 0))

    def _reject(self, i: int) -> None:
        """Request i can never fit: it and its conversation's later turns are rejected (NaN times)."""
        j = i
        while True:
            self.first[j] = self.done[j] = self.arrive[j] = math.nan
            self.rejected += 1
            self.remaining -= 1
            if not self.has_next[j]:
                break
            j += 1

    # --- "reserve_ratio" admission's bookkeeping ------------------------------------------------------------

    def _clip_excess(self) -> int:
        """What the clip cuts from the decoding requests' outputs left: the sum of min(output left, clip) is
        end_sum - B G less this; a request whose output left falls to the clip leaves `long` for good."""
        G, clip, long = self.G, self.clip, self.long
        cut = 0
        for i, g_end in list(long.items()):
            over = g_end - G - clip
            if over > 0:
                cut += over
            else:
                del long[i]
        return cut

    def _leave(self, i: int, g_end: int) -> None:
        """Decoding request i (finish step g_end) leaves the decode batch (finished, preempted or swapped out)."""
        self.end_sum -= g_end
        self.out_sum -= self.out[i]
        self.long.pop(i, None)

    def _estimate(self, i: int) -> int:
        """What admission charges request i for its output: min(output left, clip) + one page, in tokens."""
        est = self.out[i] - self.gen[i]
        return (est if est < self.clip else self.clip) + self.P

    def _decay(self, steps: int) -> None:
        """new_token_ratio after `steps` decode steps: down by the decay a step, not below the floor; the first
        step after a retraction keeps retract_decode's value."""
        if self.retracted:
            self.retracted = False
            steps -= 1
        if steps > 0:
            r = self.ratio - self.adm.ratio_decay * steps
            self.ratio = r if r > self.adm.ratio_min else self.adm.ratio_min

    # --- 3. preemption (optimistic admission only) ---------------------------------------------------------

    def _step_pages(self) -> int:
        """Pages the decoding sequences take in the next step."""
        return self.keys[-self.G % self.P]

    def _preempt(self) -> None:
        """Take victims (module docstring) until the next step's pages fit in free + idle pages; under
        "reserve_ratio" new_token_ratio becomes retract_decode's estimate over the decoding requests left."""
        retracted = False
        while self._step_pages() > self.free + self.lru_pages:
            if self.lifo and self.prefilling:
                i, _, done, pages = self.prefilling.pop()
                if self.conservative:
                    self.pending -= self._estimate(i)
                self.free += pages
                self.preempt_recompute += done
                self.recompute += done
                self.again[i] = True
                self.waiting.appendleft(i)
                self.preemptions += 1
                continue
            i = self._victim()
            g0, ctx0, g_end, key, gen0, _ = self.run_seqs.pop(i)
            if self.conservative:
                self._leave(i, g_end)
                retracted = True
            steps = self.G - g0
            ctx, gen = ctx0 + steps, gen0 + steps
            self.keys[key] -= 1
            self.B -= 1
            self.C -= ctx
            self.free += -(-ctx // self.P)
            self.preemptions += 1
            if self.swap:
                self.clock += ctx * self.swap_s_per_token
                self.swapped_bytes += ctx * self.swap_bytes_per_token
                self.swapped.append((i, ctx, gen))
                continue
            self.gen[i] = gen
            self.again[i] = True
            self.preempt_recompute += ctx
            self.recompute += ctx
            if self.lifo:
                self.waiting.appendleft(i)
            else:
                self.waiting.append(i)
        if retracted:
            B, G = self.B, self.G
            r = (self.out_sum - (self.end_sum - B * G) + self.adm.retract_decode_steps * B) / (self.out_sum + 1)
            self.ratio = r if r < 1.0 else 1.0
            self.retracted = True
        self._drop_stale()

    def _victim(self) -> int:
        """vLLM: the last admitted decoding request; SGLang: the fewest generated tokens, ties the longest
        prompt."""
        run = self.run_seqs
        if self.lifo:
            return next(reversed(run))
        G = self.G
        return min(run, key=lambda i: (run[i][4] + G - run[i][0], -run[i][5]))

    def _drop_stale(self) -> None:
        """Drop finish entries of preempted requests from the top of the heap."""
        fin, run = self.fin, self.run_seqs
        while fin and fin[0][2] >= 0 and (fin[0][1] not in run or run[fin[0][1]][2] != fin[0][0]):
            heapq.heappop(fin)

    def _fit_steps(self, k: int) -> int:
        """The most decode steps (<= k) whose new pages fit in free + idle pages, and take those pages."""
        keys, P, G, B = self.keys, self.P, self.G, self.B
        avail = self.free + self.lru_pages
        # fast path, all k steps: full cycles of P steps take a page per sequence, the rest the keys met on
        # the way, a contiguous (cyclic) slice of keys ending at -G % P
        r, top = k % P, -G % P
        low = top - r + 1
        need = (k // P) * B + (sum(keys[low:top + 1]) if low >= 0 else sum(keys[:top + 1]) + sum(keys[low:]))
        if need <= avail:
            free = self.free
            if need <= free:
                self.free = free = free - need
                if free < self.min_free:
                    self.min_free = free
            else:
                self._take(need)
            return k
        r_max = k if k < P else P
        pre = [0] * (r_max + 1)
        for j in range(r_max):
            pre[j + 1] = pre[j] + keys[-(G + j) % P]
        cycles = k // P if B == 0 else min(k // P, avail // B)
        left = avail - cycles * B
        r = k - cycles * P if cycles == k // P else P - 1
        r = min(r, r_max)
        while r and pre[r] > left:
            r -= 1
        fit = cycles * P + r
        self._take(cycles * B + pre[r])
        return fit

    # --- 4-6. steps --------------------------------------------------------------------------------------

    def _compose_step(self) -> tuple[int, int, float, float, list]:
        """4. The step's (T, S, pairs, kv) and the prefills it completes: with a mixed schedule every decoding
        sequence (1 token each) plus prefill first come first served up to max_batched_tokens, in chunks
        (chunked prefill) or whole prompts that fit; prefill-first: prefill only."""
        B, wf, chunked = self.B, self.wf, self.chunked
        if self.mixed:
            T = S = B
            pairs = kv = self.C + B
            if wf:
                pairs = kv = (1 - wf) * (self.C + B) + wf * min(self.C + B, B * self.W)
            budget = self.M - B
        else:
            T = S = 0
            pairs = kv = 0.0
            budget = self.M
        emitted = []
        for item in self.prefilling:
            todo, x = item[1], item[2]
            if chunked:
                if budget <= 0:
                    break
                c = todo if todo < budget else budget
            else:  # whole prompts; the first one of a step that has nothing else goes in whatever its size
                if todo > budget and T:
                    break
                c = todo
            if wf:
                p_, k_ = self.terms(c, x)
            else:
                p_, k_ = c * x + c * (c + 1) * 0.5, x + c
            T += c
            S += 1
            pairs += p_
            kv += k_
            budget -= c
            item[1] = todo - c
            item[2] = x + c
            if todo == c:
                emitted.append(item)
        return T, S, pairs, kv, emitted

    def _prefill_step(self) -> None:
        """4-6. One step with prefill: make room (preempting) for its decodes' pages, compose it, time it, emit
        a token from each finished prefill."""
        if self.optimistic and self.mixed and self.B:
            need = self.keys[-self.G % self.P]
            if need > self.free + self.lru_pages:
                self._preempt()  # the step runs with what is left (a decode step if every prefill went)
                if not (self.prefilling or self.B):
                    return
                need = self.keys[-self.G % self.P]
            if need:
                self._take(need)
        T, S, pairs, kv, emitted = self._compose_step()
        self.clock = clock = self.clock + self.step_time(T, S, pairs, kv)
        self.steps += 1
        B = self.B
        if self.mixed:
            self.C += B
            self.G += 1
            gen = B
            if self.conservative and B:
                self._decay(1)
        else:
            gen = 0
        if emitted:
            prefilling, fin, out, first = self.prefilling, self.fin, self.out, self.first
            cons = self.conservative
            for item in emitted:
                prefilling.popleft() if prefilling[0] is item else prefilling.remove(item)
                i = item[0]
                if cons:
                    self.pending -= self._estimate(i)
                g = self.gen[i] + 1
                if g == 1:
                    first[i] = clock
                gen += 1
                if out[i] > g:
                    self._join(i, item[2], g)
                else:
                    heapq.heappush(fin, (self.G, i, -1, item[3]))
        self.generated += gen
        if self.w0 <= clock < self.w1:
            self.win_tokens += gen

    def _decode_run(self) -> None:
        """4-5. A run of pure decode steps up to the next completion, arrival or page shortage, in one jump:
        the step time is affine in the context along the run, so the run's time is the trapezoid sum."""
        if self.optimistic and self.keys[-self.G % self.P] > self.free + self.lru_pages:
            self._preempt()
            if not self.B:
                return
        B, C, wf, G, clock = self.B, self.C, self.wf, self.G, self.clock
        k = self.fin[0][0] - G
        x0 = C + B
        x1 = C + B * k
        if wf:
            x0 = (1 - wf) * x0 + wf * min(x0, B * self.W)
            x1 = (1 - wf) * x1 + wf * min(x1, B * self.W)
        t0, t1 = self.decode_times(B, x0, x1)
        d = 0.0 if k <= 1 else (t1 - t0) / (k - 1)
        starts, later = self.starts, self.later
        na = starts[-1][0] if starts else math.inf
        nl = later[0][0] if later else math.inf
        gap = (na if na < nl else nl) - clock
        if k > 1 and gap < t0 * k + d * k * (k - 1) * 0.5:
            k = _jump_length(k, t0, d, gap)  # stop at the first step that reaches the next arrival
        if self.optimistic:
            k = self._fit_steps(k)  # >= 1: the first step's pages fit
        self.clock = clock = clock + (t0 * k + d * k * (k - 1) * 0.5)
        self.steps += k
        self.C = C + B * k
        self.G = G + k
        self.generated += B * k
        if self.conservative:
            self._decay(k)
        if self.w0 <= clock < self.w1:
            self.win_tokens += B * k

    def _complete(self) -> None:
        """6. Sequences whose last decode step has run finish; a conversation that goes on keeps its pages
        (idle, evictable) when prefixes are cached, else frees them, and its next turn is scheduled."""
        fin, G, clock, done, has_next = self.fin, self.G, self.clock, self.done, self.has_next
        run, cons = self.run_seqs, self.conservative
        while fin and fin[0][0] <= G:
            g_end, i, ctx_end, pages = heapq.heappop(fin)
            if ctx_end >= 0:
                if self.optimistic:
                    state = run.get(i)
                    if state is None or state[2] != g_end:
                        continue  # preempted since: a stale entry
                    del run[i]
                    self.keys[state[3]] -= 1
                    if cons:
                        self._leave(i, g_end)
                else:
                    pages = -(-(self.hist[i] + self.new[i] + self.out[i]) // self.P)
                self.B -= 1
                self.C -= ctx_end
            done[i] = clock
            self.remaining -= 1
            if has_next[i]:
                heapq.heappush(self.later, (clock + self.think[i + 1], i + 1))
                if self.reuse:
                    self.lru[self.conv[i]] = pages
                    self.lru_pages += pages
                    continue
            self.free += pages
        if self.preemptions:
            self._drop_stale()


def simulate_replica(sm: StepTimeModel, r: Requests, idx: np.ndarray, w: Workload, cfg: SimSettings,
                     sample_dt: float, total_pages: int, window: tuple[float, float]) -> ReplicaTrace:
    """Run one replica over the requests idx (ordered by conversation, then turn)."""
    return _Replica(sm, r, idx, w, cfg, sample_dt, total_pages, window).run()


# ---------------------------------------------------------------------------------------------------------
# the whole fleet and its summary

def _pct(x: np.ndarray) -> dict:
    x = x[np.isfinite(x)]
    if not len(x):
        return {"mean": None, "p50": None, "p90": None, "p99": None, "max": None}
    p50, p90, p99 = np.percentile(x, [50, 90, 99])
    return {"mean": float(x.mean()), "p50": float(p50), "p90": float(p90), "p99": float(p99), "max": float(x.max())}


def step_time_model(s: Setup, w: Workload, r: Requests, cfg: SimSettings,
                    cap_tokens: float | None = None) -> StepTimeModel:
    """The step-time table, sized to the largest pass this run can form (a preempted request re-prefills its
    prompt and what it generated), with the fixed costs of a pass the engine settings imply. A step holds at
    most as many sequences as the run has requests and at most `cap_tokens` (the KV cache) prompt tokens,
    whatever max_seqs and max_batched_tokens allow (a table of 2**31 rows would not fit in memory; a pass past
    the table is timed exactly, `StepTimeModel.time`)."""
    s = with_engine_costs(s, cfg.memory)
    longest = int((r.history_tokens + r.new_tokens
                   + (r.output_tokens if cfg.memory.preemption != "none" else 0)).max())
    seqs = min(cfg.memory.max_seqs, len(r.new_tokens))
    chunk = cfg.memory.max_batched_tokens if cap_tokens is None else \
        min(cfg.memory.max_batched_tokens, max(int(cap_tokens), 1))
    t_max = chunk + seqs
    return StepTimeModel(s, t_max if cfg.chunked_prefill else max(t_max, longest + seqs))


class DoesNotFit(RooflineError):
    """The replica's memory holds none of the workload's requests; smallest_tokens: the smallest request."""

    def __init__(self, message: str, hint: str, smallest_tokens: int):
        super().__init__(message, hint)
        self.smallest_tokens = smallest_tokens


def check_fits(s: Setup, r: Requests, total_pages: int, page_tokens: int) -> None:
    """DoesNotFit when the replica's KV cache holds none of the requests (the weights alone may not fit):
    simulating would only reject every request."""
    smallest = int((r.history_tokens + r.new_tokens + r.output_tokens).min())
    if -(-smallest // page_tokens) <= total_pages:
        return
    why = ("the weights and runtime leave no memory for a KV cache" if total_pages <= 0 else
           f"its KV cache holds {total_pages * page_tokens:,} tokens, less than the smallest request's {smallest:,}")
    raise DoesNotFit(f"{s.model.name} does not fit on {s.gpu.name} at TP {int(s.tp)}: {why}",
                     "use a higher `tp`, narrower precisions (fp8, int4) or a GPU with more memory", smallest)


#: the default ceilings on one simulation's work (about 75 s and well under 8 GB at the ceiling on a 2-core
#: machine: 1,000,000 requests take about 7.5 s); raise them with the environment variables named in the error
MAX_REQUESTS, MAX_REPLICAS = 10_000_000, 100_000


def check_work(requests: int, replicas: int, requests_name: str = "requests") -> None:
    """RooflineError (exit 2) before any allocation when the run would exceed the work ceilings
    (ROOFLINE_MAX_REQUESTS, ROOFLINE_MAX_REPLICAS override MAX_REQUESTS, MAX_REPLICAS). `requests_name`: the
    caller's name of its requests argument (the search's `sim_requests`), the one the error names."""
    for name, value, default, env in ((requests_name, requests, MAX_REQUESTS, "ROOFLINE_MAX_REQUESTS"),
                                      ("replicas", replicas, MAX_REPLICAS, "ROOFLINE_MAX_REPLICAS")):
        try:
            limit = int(os.environ.get(env, default))
        except ValueError:
            raise RooflineError(f"{env} must be a whole number, got {os.environ[env]!r}",
                                hint=f"unset it for the default of {default:,}") from None
        if not 1 <= value <= limit:
            raise RooflineError(f"{name} must be between 1 and {limit:,}, got {value:,}",
                                hint=f"a larger run needs more time and memory: set {env} to raise the limit",
                                exit_code=2, param=name)


def simulate(s: Setup, w: Workload, requests: int = 10_000, replicas: int = 1, seed: int = 0,
             cfg: SimSettings | None = None, rate_per_s: float | None = None, start_hour: int | None = None) -> dict:
    """Simulate `requests` requests of workload w (at rate_per_s total, default w.rate_per_s) on `replicas`
    replicas of setup s; with a daily curve, arrivals start at `start_hour` (default: the curve's peak hour,
    the load a fleet is sized for). Returns the JSON-ready summary (see `summarize`)."""
    cfg = cfg or SimSettings()
    check_work(requests, replicas)
    if rate_per_s is not None:
        w = w.with_rate(rate_per_s)
    hour = w.peak_hour if start_hour is None else int(start_hour) % 24
    r = sample_requests(w, requests, seed, start_hour=hour)
    cap_tokens = float(mem.kv_cache_capacity_tokens(s, cfg.memory))
    total_pages = max(int(cap_tokens // cfg.page_tokens), 0)
    check_fits(s, r, total_pages, cfg.page_tokens)
    sm = step_time_model(s, w, r, cfg, total_pages * cfg.page_tokens)
    span = float(r.start_s.max())
    window = (cfg.warmup_fraction * span, span)
    sample_dt = max(span, 1e-3) / SAMPLES
    route = r.conv % replicas
    traces = [simulate_replica(sm, r, np.flatnonzero(route == k), w, cfg, sample_dt, total_pages, window)
              for k in range(replicas)]
    return {**summarize(traces, r, w, replicas, window, sample_dt, cap_tokens, cfg), **_hours(w, hour, span)}


def _hours(w: Workload, start_hour: int, span_s: float) -> dict:
    """Which hours of the daily curve the arrivals covered (None without a curve) and how long the arrivals
    lasted (`arrival_span_s`: first to last arrival; a peak-hour run of a few thousand requests covers minutes)."""
    if not w.daily_curve:
        return {"start_hour": None, "hours_simulated": None, "daily_curve_multipliers": None,
                "arrival_span_s": span_s}
    hours = [(start_hour + k) % 24 for k in range(min(24, int(span_s // 3600) + 1))]
    return {"start_hour": start_hour, "hours_simulated": hours,
            "daily_curve_multipliers": [w.daily_curve[h] for h in hours], "arrival_span_s": span_s}


def _request_times(traces: list[ReplicaTrace], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(arrival, first token, done) per request, NaN for rejected ones."""
    arrive, first, done = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    for tr in traces:
        arrive[tr.idx], first[tr.idx], done[tr.idx] = tr.arrive_s, tr.first_token_s, tr.done_s
    return arrive, first, done


def _littles_law(arrive: np.ndarray, done: np.ndarray, e2e: np.ndarray, window) -> dict:
    """Mean requests in flight over the window vs admitted arrival rate x mean latency."""
    w0, w1 = window
    length = max(w1 - w0, 1e-12)
    in_win = (arrive >= w0) & (arrive < w1)
    grid = np.linspace(w0, w1, 4000, endpoint=False)
    ok = np.isfinite(done)
    in_flight = (np.searchsorted(np.sort(arrive[ok]), grid, side="right")
                 - np.searchsorted(np.sort(done[ok]), grid, side="right"))
    lam = in_win.sum() / length
    latency = float(np.nanmean(e2e[in_win])) if in_win.any() else None
    return {"mean_in_flight": float(in_flight.mean()), "arrival_rate_per_s": float(lam),
            "mean_latency_s": latency, "rate_x_latency": float(lam * latency) if latency is not None else None}


def _over_time(traces: list[ReplicaTrace], replicas: int, sample_dt: float) -> dict:
    """Batch per replica, KV utilisation and queue length at the sample times, and their mean/max (replicas
    whose samples were thinned at different intervals brought to the coarsest, a power of two apart)."""
    dt = max([t.sample_dt for t in traces] + [sample_dt])
    rows = [np.asarray(t.samples, dtype=float).reshape(-1, 4)[::max(round(dt / (t.sample_dt or sample_dt)), 1)]
            for t in traces]
    ns = max(len(a) for a in rows)
    smp = np.zeros((ns, 4))
    for a in rows:
        smp[:len(a)] += a
    sample_dt = dt
    pages_total = max(traces[0].total_pages * replicas, 1)
    util = (smp[:, 1] + smp[:, 2]) / pages_total
    batch = smp[:, 0] / replicas

    def mean_max(x):
        return {"mean": float(x.mean()) if ns else 0.0, "max": float(x.max()) if ns else 0.0}
    return {"batch_size": mean_max(batch),
            "kv_cache_utilization": {**mean_max(util),
                                     "in_flight_mean": float(smp[:, 1].mean() / pages_total) if ns else 0.0},
            "queue_length": mean_max(smp[:, 3]),
            "timeseries": {"time_s": (np.arange(ns) * sample_dt).tolist(), "batch_size": batch.tolist(),
                           "kv_cache_utilization": util.tolist(), "queue_length": smp[:, 3].tolist()}}


def summarize(traces: list[ReplicaTrace], r: Requests, w: Workload, replicas: int, window, sample_dt: float,
              cap_tokens: float, cfg: SimSettings) -> dict:
    """Latency percentiles, throughput over the window after warm-up, the KV cache and queue over time, cache
    hits and recompute, preemption, Little's law. offered_rate_per_s counts every request of the conversations
    that started in the window (rejected ones too); littles_law.arrival_rate_per_s only the admitted ones.
    recompute_tokens counts every token prefilled again: conversation history whose pages were evicted and
    the KV cache of preempted requests (`preemption_recompute_tokens`: the prompt and generated tokens a
    victim had in its cache). Conservation: generated_output_tokens (every token emitted, each once even
    when its request was preempted) equals requested_output_tokens (the outputs of the served requests).
    peak_kv_cache_utilization: the most pages ever held (in flight and idle conversations) over the pages
    of one replica's cache, the highest replica."""
    arrive, first, done = _request_times(traces, len(r))
    out = r.output_tokens.astype(float)
    ttft, e2e = first - arrive, done - arrive
    tpot = np.where(out > 1, (done - first) / np.maximum(out - 1, 1), np.nan)
    w0, w1 = window
    length = max(w1 - w0, 1e-12)
    hits, misses = sum(t.hits for t in traces), sum(t.misses for t in traces)
    recompute, prefill_tok = sum(t.recompute_tokens for t in traces), sum(t.prefill_tokens for t in traces)
    served = np.isfinite(done)
    ms = cfg.memory
    return {
        "requests": len(r), "replicas": replicas, "rejected_requests": sum(t.rejected for t in traces),
        "offered_rate_per_s": float(((r.start_s >= w0) & (r.start_s < w1)).sum() / length),
        "steps": sum(t.steps for t in traces),
        "duration_s": float(np.nanmax(done)) if np.isfinite(done).any() else 0.0,
        "ttft_s": _pct(ttft), "tpot_s": _pct(tpot), "e2e_latency_s": _pct(e2e),
        "throughput_output_tokens_per_s": sum(t.window_tokens for t in traces) / length,
        "throughput_requests_per_s": float(((done >= w0) & (done < w1)).sum() / length),
        "kv_cache_capacity_tokens_per_replica": cap_tokens,
        "cache_hit_rate": (hits / (hits + misses) if hits + misses else None) if w.turns > 1 else None,
        "recompute_tokens": recompute, "recompute_fraction_of_prefill": recompute / max(prefill_tok, 1),
        "evictions": sum(t.evictions for t in traces),
        "admission": ADMISSION_NAMES[admission_rule(cfg).rule], "preemption_mode": ms.preemption,
        "preemptions": sum(t.preemptions for t in traces),
        "preemption_recompute_tokens": sum(t.preempt_recompute_tokens for t in traces),
        "swapped_bytes_per_gpu": sum(t.swapped_bytes for t in traces),
        "peak_kv_cache_utilization": max(t.peak_pages for t in traces) / max(traces[0].total_pages, 1),
        "generated_output_tokens": sum(t.generated_tokens for t in traces),
        "requested_output_tokens": int(r.output_tokens[served].sum()),
        "littles_law": _littles_law(arrive, done, e2e, window),
        **_over_time(traces, replicas, sample_dt),
    }


#: loads tried by `divergence`, as fractions of the analytic saturation rate
LADDER = (0.5, 0.7, 0.85, 0.95, 1.05, 1.2, 1.4)


def divergence(s: Setup, w: Workload, requests: int, replicas: int = 1, seed: int = 0,
               cfg: SimSettings | None = None) -> dict:
    """Simulate a ladder of loads around capacity's saturation estimate; latency diverges at the first load
    whose mean or p99 TTFT is 10x that of the lightest load (the admission queue grows without bound)."""
    from roofline.plan.capacity import replica_capacity
    cfg = cfg or SimSettings()
    w = replace(w, daily_curve=None)  # each rung at its own constant rate
    sat = replica_capacity(s, w.with_rate(1.0), cfg.memory)["saturation_rate_per_replica"] * replicas
    rows, first, base = [], None, None
    for f in LADDER:
        r = simulate(s, w, requests, replicas, seed, cfg, rate_per_s=sat * f)
        ttft = (r["ttft_s"]["mean"] or float("inf"), r["ttft_s"]["p99"] or float("inf"))
        base = ttft if base is None else base
        bad = ttft[0] > 10 * base[0] or ttft[1] > 10 * base[1]
        rows.append({"rate_per_s": sat * f, "throughput_output_tokens_per_s": r["throughput_output_tokens_per_s"],
                     "ttft_p99_s": r["ttft_s"]["p99"], "tpot_p99_s": r["tpot_s"]["p99"],
                     "e2e_latency_p99_s": r["e2e_latency_s"]["p99"], "diverged": bool(bad)})
        if bad and first is None:
            first = sat * f
    return {"divergence_rate_per_s": first, "analytic_saturation_rate_per_s": sat, "load_sweep": rows}

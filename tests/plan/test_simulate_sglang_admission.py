"""SGLang's conservative admission ("reserve_ratio", its PrefillAdder and new_token_ratio) in the simulator: the
token budget by hand, the ratio's decay, floor, idle reset and jump after a retraction, the engine file's
figures and their validation, conservation, determinism, and fewer preemptions than optimistic admission."""
import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from roofline.errors import RooflineError
from roofline.model.engine import make_setup
from roofline.model.memory import MemorySettings, engine_settings
from roofline.model.step_time import StepTimeModel
from roofline.plan.simulate import SimSettings, _Replica, admission_rule, simulate
from roofline.specs.engines import Admission, load_engine, parse_engine
from roofline.specs.hardware import load_gpu
from roofline.specs.models import load_model
from roofline.specs.workload import LengthDist, Requests, Workload, load_workload

H100 = load_gpu("h100-sxm")
S8B = make_setup(H100, load_model("llama-3.1-8b"))
SM = StepTimeModel(S8B, 8192 + 256)
W1 = Workload(1.0, LengthDist("fixed", value=16), LengthDist("fixed", value=40))
SGLANG = engine_settings(load_engine("sglang"), H100)
DECAY = (0.7 - 0.7 * 0.14) / 600  # (init - floor) / decay steps = 0.602 / 600 per decode step
RATIO = Admission("reserve_ratio", 0.7, 0.098, DECAY, 4096, 20)


def _requests(prompts, outs, starts=None) -> Requests:
    n = len(prompts)
    return Requests(np.arange(n), np.zeros(n, int), np.array(prompts), np.zeros(n, int), np.array(outs),
                    np.zeros(n) if starts is None else np.array(starts, float), np.zeros(n))


def _replica(prompts, outs, pages, starts=None, admission=RATIO, **ms) -> _Replica:
    """A replica with SGLang's scheduling (page_tokens 1, prefill-first, fewest-generated retraction)."""
    ms = {"engine": "sglang", "page_tokens": 1, "schedule": "prefill_first", "preemption_victim": "fewest_generated",
          **ms}
    cfg = SimSettings(page_tokens=ms["page_tokens"], chunked_prefill=ms.pop("chunked_prefill", True),
                      memory=MemorySettings(**ms), admission=admission)
    return _Replica(SM, _requests(prompts, outs, starts), np.arange(len(prompts)), W1, cfg, 1.0, pages, (0.0, 1.0))


def test_sglang_engine_file_gives_the_ratio_arithmetic():
    adm = load_engine("sglang").admission()
    # init = min(0.7 x schedule_conservativeness 1.0, 1) = 0.7; floor = 0.7 x 0.14 = 0.098; decay = 0.602 / 600
    assert adm.rule == "reserve_ratio" and adm.clip_tokens == 4096 and adm.retract_decode_steps == 20
    assert adm.ratio_init == pytest.approx(0.7) and adm.ratio_min == pytest.approx(0.098)
    assert adm.ratio_decay == pytest.approx(0.602 / 600)
    assert load_engine("vllm").admission() == Admission("optimistic")
    assert load_engine("trtllm").admission() == Admission("reserve_all")
    # schedule_conservativeness 2: init = min(1.4, 1) = 1.0, floor 0.14
    data = json.loads(open("engines/sglang.json").read())
    data["schedule_conservativeness"]["value"] = 2.0
    adm2 = parse_engine(json.dumps(data), "x.json").admission()
    assert (adm2.ratio_init, adm2.ratio_min) == (1.0, pytest.approx(0.14))


@pytest.mark.parametrize("field, value, message", [
    ("new_token_ratio_init", 1.5, "field 'new_token_ratio_init.value': expected a number in (0, 1]"),
    ("new_token_ratio_min_factor", 0, "field 'new_token_ratio_min_factor.value': expected a number in (0, 1]"),
    ("new_token_ratio_decay_steps", 0.5, "field 'new_token_ratio_decay_steps.value': expected a positive whole"),
    ("schedule_conservativeness", -1, "field 'schedule_conservativeness.value': expected a number >= 0"),
    ("admission", "pessimistic", "field 'admission.value': expected one of 'optimistic', 'reserve_all'"),
    ("admission", "reserve_all", "field 'admission.value': expected \"optimistic\" or \"reserve_ratio\""),
])
def test_a_bad_admission_figure_names_itself(field, value, message):
    data = json.loads(open("engines/sglang.json").read())
    data[field]["value"] = value
    with pytest.raises(RooflineError) as e:
        parse_engine(json.dumps(data), "x.json")
    assert message in e.value.message


def test_ratio_figures_go_with_reserve_ratio_and_only_with_it():
    data = json.loads(open("engines/sglang.json").read())
    del data["retract_decode_steps"]
    with pytest.raises(RooflineError, match="missing field 'retract_decode_steps'"):
        parse_engine(json.dumps(data), "x.json")
    data = json.loads(open("engines/sglang.json").read())
    data["admission"]["value"] = "optimistic"
    with pytest.raises(RooflineError, match="field 'schedule_conservativeness': expected no such field"):
        parse_engine(json.dumps(data), "x.json")
    trt = json.loads(open("engines/trtllm.json").read())
    trt["admission"] = {"value": "optimistic", "source": next(iter(trt["sources"]))}
    with pytest.raises(RooflineError, match="field 'admission.value': expected \"reserve_all\""):
        parse_engine(json.dumps(trt), "x.json")


def test_the_rule_in_effect():
    assert admission_rule(SimSettings(memory=SGLANG)).rule == "reserve_ratio"
    assert admission_rule(SimSettings(memory=engine_settings(load_engine("trtllm"), H100))).rule == "reserve_all"
    assert admission_rule(SimSettings()).rule == "optimistic"
    # settings assembled by hand that name SGLang but not its fixed fields (KV rule, prefill launch ...) are not
    # SGLang's: the rule their preemption implies
    assert admission_rule(SimSettings(memory=MemorySettings(engine="sglang"))).rule == "optimistic"
    with pytest.raises(RooflineError) as e:
        admission_rule(SimSettings(memory=SGLANG, admission=Admission("reserve_all")))
    assert e.value.exit_code == 2 and e.value.param == "admission"


def _two_decoding_then_admit(outputs, pages, free, admission=None):
    """Prompts 100, 100, 200: the first two joined decoding at context 101 with one token out, `free` pages
    left, then the third is offered to `_admit`."""
    rep = _replica([100, 100, 200], outputs, pages, **({} if admission is None else {"admission": admission}))
    rep._join(0, 101, 1)
    rep._join(1, 101, 1)
    rep.free = free
    rep.waiting.append(2)
    rep._admit()
    return rep


@pytest.mark.parametrize("free, admitted", [(790, True), (789, False)])
def test_admission_budget_by_hand(free, admitted):
    # Two requests decode: prompts 100, outputs 300 and 400, one token out each (from their prefill), so
    # 299 and 399 tokens left. Ratio 0.7 holds back 0.7 x (299 + 399) = 488.6 tokens. The third request needs
    # its prompt 200 + min(100, 4096) + one page = 301 < free - 488.6: with 790 free 301.4 is left (admitted),
    # with 789 300.4 (refused). Optimistic admission takes it either way (200 pages free).
    rep = _two_decoding_then_admit([300, 400, 100], 1000, free)
    assert (len(rep.prefilling) == 1) == admitted and (len(rep.waiting) == 0) == admitted
    opt = _two_decoding_then_admit([300, 400, 100], 1000, free, Admission("optimistic"))
    assert len(opt.prefilling) == 1


@pytest.mark.parametrize("free, admitted", [(652, True), (651, False)])
def test_a_request_that_exactly_fills_the_budget_waits(free, admitted):
    # ratio 0.5, 300 and 400 tokens left: 350 held back; the third needs 200 + 100 + 1 = 301, refused when
    # it equals what is left (SGLang: 'total_tokens >= self.rem_total_tokens' -> NO_TOKEN): 651 - 350 = 301
    rep = _two_decoding_then_admit([301, 401, 100], 1000, free, Admission("reserve_ratio", 0.5, 0.5, 0.0, 4096, 20))
    assert (len(rep.prefilling) == 1) == admitted


@pytest.mark.parametrize("free, admitted", [(3378, True), (3377, False)])
def test_the_estimate_is_clipped(free, admitted):
    # outputs 300 and 5000, 299 and 4999 left: the second clipped to 4096, 0.7 x (299 + 4096) = 3076.5 held
    # back; the third needs 200 + 100 + 1 = 301 < free - 3076.5: 3378 free leaves 301.5, 3377 leaves 300.5
    rep = _two_decoding_then_admit([300, 5000, 100], 10_000, free)
    assert (len(rep.prefilling) == 1) == admitted


def test_admitted_prefills_are_charged_in_full():
    # nothing in flight: the first request goes in on pages alone and holds back min(300, 4096) + 1 = 301 in
    # full while it prefills; the second needs 100 + 301 = 401 < 1000 - 100 - 301 = 599: admitted; the third
    # then needs 401 < 1000 - 200 - 602 = 198: refused
    rep = _replica([100, 100, 100], [300, 300, 300], 1000)
    rep.waiting.extend([0, 1, 2])
    rep._admit()
    assert [item[0] for item in rep.prefilling] == [0, 1] and list(rep.waiting) == [2]
    assert rep.pending == 602


def test_ratio_decays_per_decode_step_to_its_floor_and_resets_when_idle():
    # one request, 101 tokens out: its prefill emits the first, then 100 decode steps: 0.7 - 100 x 0.602 / 600
    rep = _replica([10], [101], 1000)
    rep.run()
    assert rep.G == 100 and rep.ratio == pytest.approx(0.7 - 100 * DECAY)
    # 1,001 tokens out: 1,000 decode steps, more than the 600 from init to the floor
    rep = _replica([10], [1001], 2000)
    rep.run()
    assert rep.ratio == pytest.approx(0.098)
    # a second request long after the first finished: the replica idled in between, so the ratio restarted at
    # 0.7 and fell 50 steps (the first request's 1,000 steps would have left the floor)
    rep = _replica([10, 10], [1001, 51], 2000, starts=[0.0, 1000.0])
    rep.run()
    assert rep.G == 1000 + 50 and rep.ratio == pytest.approx(0.7 - 50 * DECAY)


def _three_decoding_then_preempt(outputs, joins):
    """Prompts 50, 60, 40 decoding at the (context, generated) of `joins`, 2 pages free, then `_preempt`."""
    rep = _replica([50, 60, 40], outputs, 1000)
    for i, (ctx, gen) in enumerate(joins):
        rep._join(i, ctx, gen)
    rep.free = 2
    rep._preempt()
    return rep


def test_ratio_after_a_retraction_is_retract_decodes_estimate():
    # three decoding requests (page_tokens 1: each takes a page every step), 2 pages free, 3 needed: the one
    # with the fewest generated tokens (request 1, 10 out) is retracted, freeing its 70 tokens. The ratio
    # becomes (tokens the other two generated + 20 x 2) / (their outputs + 1) = (30 + 50 + 40) / (100 + 200 + 1)
    rep = _three_decoding_then_preempt([100, 100, 200], [(80, 30), (70, 10), (90, 50)])
    assert rep.preemptions == 1 and list(rep.waiting) == [1] and rep.gen[1] == 10
    assert rep.ratio == pytest.approx(120 / 301) and rep.retracted
    rep._decay(5)  # the decode step right after the retraction keeps the estimate: 4 steps of decay
    assert rep.ratio == pytest.approx(120 / 301 - 4 * DECAY)
    # most of their output already out: (95 + 90 + 40) / (100 + 100 + 1) = 225 / 201 > 1, clipped to 1
    rep = _three_decoding_then_preempt([100, 100, 100], [(145, 95), (65, 5), (130, 90)])
    assert list(rep.waiting) == [1] and rep.ratio == 1.0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 200), st.integers(1, 150), st.floats(0, 0.5)), min_size=1, max_size=12),
       st.floats(0.05, 1.0), st.floats(0.05, 1.0), st.integers(1, 600), st.integers(1, 200),
       st.sampled_from(["prefill_first", "mixed"]), st.booleans(), st.sampled_from([1, 16]), st.integers(0, 300))
def test_conservation_under_conservative_admission(reqs, init, factor, steps, clip, schedule, chunked, P, spare):
    prompts, outs, starts = (list(x) for x in zip(*reqs))
    pages = -(-max(p + o for p, o in zip(prompts, outs)) // P) + spare // P
    adm = Admission("reserve_ratio", init, init * factor, (init - init * factor) / steps, clip, 20)
    rep = _replica(prompts, outs, pages, starts=starts, admission=adm, page_tokens=P, schedule=schedule,
                   chunked_prefill=chunked, max_batched_tokens=256)
    t = rep.run()
    assert t.rejected == 0 and np.isfinite(t.done_s).all()  # every request finishes
    assert t.generated_tokens == sum(outs)  # each token once, retracted requests included
    assert rep.B == 0 and rep.end_sum == rep.out_sum == rep.pending == 0 and not rep.long
    assert init * factor - 1e-12 <= rep.ratio <= 1.0


SUMMARIZE = load_workload("examples/workload-summarize.json")
# SGLang on one H100 with Llama-3.1-8B, mem_fraction_static 0.3: KV for ~65,000 tokens, ~15 of the workload's
# 2,000-6,000-token prompts + 200 out: memory-tight at its 5 requests/s
TIGHT = engine_settings(load_engine("sglang"), H100, kv_cache_fraction=0.3)


def test_same_seed_same_result():
    cfg = SimSettings(TIGHT.chunked_prefill, TIGHT.page_tokens, memory=TIGHT)
    a, b = (simulate(S8B, SUMMARIZE, 400, seed=3, cfg=cfg) for _ in range(2))
    assert a == b and a["admission"] == "conservative"
    assert simulate(S8B, SUMMARIZE, 400, seed=4, cfg=cfg)["ttft_s"] != a["ttft_s"]


def test_conservative_admission_preempts_no_more_than_optimistic():
    # measured: 29 retractions conservative vs 98 optimistic (2,000 requests, seed 0)
    res = {}
    for name, adm in (("conservative", None), ("optimistic", Admission("optimistic"))):
        cfg = SimSettings(TIGHT.chunked_prefill, TIGHT.page_tokens, memory=TIGHT, admission=adm)
        r = res[name] = simulate(S8B, SUMMARIZE, 2000, seed=0, cfg=cfg)
        assert r["admission"] == name
        assert r["generated_output_tokens"] == r["requested_output_tokens"] == 2000 * 200
    cons, opt = res["conservative"], res["optimistic"]
    assert 0 < opt["preemptions"] and cons["preemptions"] <= opt["preemptions"]
    assert cons["preemption_recompute_tokens"] <= opt["preemption_recompute_tokens"]

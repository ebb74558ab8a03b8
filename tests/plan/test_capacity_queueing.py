"""capacity's queueing pieces: the in-flight birth-death chain, the per-u cache hit rate, the check's length."""
import math

import numpy as np
from hypothesis import given, settings, strategies as hs

from roofline.model.engine import make_setup
from roofline.model.memory import MemorySettings
from roofline.plan.capacity import check_requests, inflight_chain, operating_curve
from roofline.specs.hardware import load_gpu
from roofline.specs.models import load_model
from roofline.specs.workload import load_workload

N = np.linspace(0.1, 500.0, 2000)  # requests in flight along a curve


def test_light_load_chain_is_poisson():
    """mu(k) = k / R (every request stays R = 2 s whatever the load): the count is Poisson(lambda R).
    lambda = 10/s: Poisson(20), P(X <= 30) = 0.9865 < 0.99 <= P(X <= 31) = 0.9907, so the p99 is 31."""
    cdf = lambda x: sum(math.exp(-20) * 20 ** i / math.factorial(i) for i in range(x + 1))  # noqa: E731
    assert cdf(30) < 0.99 <= cdf(31)
    c = inflight_chain(N, np.array([10.0]), N / 2.0, np.array([800.0]))  # 800 states: one request each
    assert c.n_p99[0] == 31 and c.p_full[0] < 1e-12 and c.wait_p99_s[0] == 0.0


def test_flat_departures_fill_admission_and_queue():
    """Departures flatten at 10.5/s from k = 21 on (a KV- or compute-bound replica); at lambda = 10/s the
    count decays by only r = 10/10.5 per request beyond 21, so admission (100) is full far more than 1% of
    the time: the p99 lies in the queue and arrivals wait; at 11/s > 10.5/s the queue never drains."""
    mu = np.minimum(N / 2.0, 10.5)
    c = inflight_chain(N, np.array([10.0, 11.0]), mu, np.array([100.0, 100.0]))
    # pi(k) ~ r^(k - 21) for k in 21..100; the geometric tail beyond 100 holds pi(100) r / (1 - r) = 20 pi(100)
    r = 10 / 10.5
    assert c.p_full[0] > 0.01 and c.n_p99[0] > 100
    # P(W > t) = p_full exp(-10.5 (1 - r) t) = p_full exp(-0.5 t): the p99 is ln(100 p_full) / 0.5
    assert abs(c.wait_p99_s[0] - math.log(100 * c.p_full[0]) / (10.5 * (1 - r))) < 1e-9
    assert np.isinf(c.n_p99[1]) and np.isinf(c.wait_p99_s[1]) and c.p_full[1] == 1.0


@settings(max_examples=30, deadline=None)
@given(hs.floats(0.5, 9.0), hs.floats(20.0, 400.0))
def test_chain_p99_grows_with_the_rate(lam, cap):
    mu = np.minimum(N / 2.0, 10.0)
    c = inflight_chain(N, np.array([lam, lam * 1.05]), mu, np.array([cap, cap]))
    assert c.n_p99[1] >= c.n_p99[0] and c.p_full[1] >= c.p_full[0] - 1e-12
    assert c.wait_p99_s[1] >= c.wait_p99_s[0]


def test_check_runs_long_enough_for_idle_conversations():
    chat, summarize = (load_workload(f"examples/workload-{n}.json") for n in ("chat", "summarize"))
    # 11 req/s x 20 think times x 30 s = 6,600 requests; single-turn: the floor of 2,000; the ceiling 20,000
    assert check_requests(chat, 11.0) == 6600
    assert check_requests(summarize, 11.0) == 2000 and check_requests(chat, 1000.0) == 20000


def test_hit_rate_is_solved_per_load():
    """Idle conversations keep their KV while the cache has room: all of them at light load, fewer as the
    in-flight requests take the cache."""
    s = make_setup(load_gpu("h100-sxm"), load_model("llama-3.1-8b"))
    op = operating_curve(s, load_workload("examples/workload-chat.json"), MemorySettings())
    assert op.hit_rate[0] > 0.999 and op.hit_rate[np.argmax(op.rate)] < 0.9
    assert np.all(np.diff(op.hit_rate[: np.argmax(op.rate)]) <= 1e-3)

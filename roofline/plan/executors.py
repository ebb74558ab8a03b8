"""Running a search plan (`roofline.plan.search`) shard by shard: on this machine's cores or as Ray tasks.

The plan is deterministic: stage 1's shards are fixed-size chunks of each (model, workload) pair's candidate
index space, stage 2's are the candidates the merged stage 1 picks, one per shard; a shard's seed comes from
the plan id and its index (`search.shard_seed`), never from time or the worker. A worker computes a shard
and returns its document; the driver writes it to `results_dir/<stage>/shard-NNNNNN.json` atomically (`roofline.outfile`:
a temporary file, then a rename), so the directory always holds whole shards. `manifest.json` records the plan
id: a resumed run skips the shards already written and refuses a directory that holds another plan. The
merges read the shard files back, so a resumed run and an uninterrupted one, or a local and a Ray run, write
the same bytes to `result.json`.

A shard whose worker fails or is killed is run again (local: resubmitted, on a new process pool if the old
one broke; Ray: the task's `max_retries`), up to MAX_ATTEMPTS times in all.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from roofline.errors import RooflineError
from roofline.outfile import write_text
from roofline.plan import search

EXECUTORS = ("local", "ray")
#: attempts of one shard before the search stops
MAX_ATTEMPTS = 4
MANIFEST = "manifest.json"
RESULT = "result.json"


@dataclass(frozen=True, eq=False)
class Shard:
    """One unit of work: stage "screen" (payload (pair, lo, hi)) or "simulate" (payload: a candidate row)."""

    stage: str
    index: int
    payload: tuple | dict


@dataclass(frozen=True)
class Fault:
    """Test hook: the first attempt of shard (`stage`, `index`) kills its worker process (a marker file in
    `marker_dir` makes the next attempt run normally)."""

    marker_dir: str
    stage: str
    index: int


class Interrupted(RooflineError):
    """The run stopped before the plan was done (its shards so far are kept; resume continues it)."""

    def __init__(self, done: int):
        super().__init__(f"search stopped after {done} shards", hint="run it again with `resume` to finish it",
                         exit_code=130)


def run_shard(space: search.SearchSpace, plan_id: str, shard: Shard, fault: Fault | None = None) -> str:
    """Compute one shard; its document as the text of its file."""
    if fault is not None and (fault.stage, fault.index) == (shard.stage, shard.index):
        marker = Path(fault.marker_dir) / f"{shard.stage}-{shard.index}.failed"
        if not marker.exists():
            marker.write_text("killed once\n")
            os._exit(3)  # as if the worker were killed mid-shard
    if shard.stage == "screen":
        result = search.screen_shard(space, *shard.payload)
    else:
        result = search.simulate_candidate(space, shard.payload, search.shard_seed(plan_id, "simulate",
                                                                                   shard.index))
    return search.to_json({"plan_id": plan_id, "stage": shard.stage, "index": shard.index, "result": result})


def shard_path(results_dir: Path, shard: Shard) -> Path:
    return Path(results_dir) / shard.stage / f"shard-{shard.index:06d}.json"


def prepare(results_dir: Path, space: search.SearchSpace, resume: bool) -> None:
    """Create or check `results_dir`: a new directory gets the manifest; an existing search is continued only
    with `resume` and only when it is the same plan."""
    plan_id = space.plan_id()
    manifest = Path(results_dir) / MANIFEST
    if manifest.exists():
        try:
            theirs = json.loads(manifest.read_text(encoding="utf-8")).get("plan_id")
        except (ValueError, AttributeError):
            theirs = None
        if not resume:
            raise RooflineError(f"results_dir {results_dir} already holds a search (plan {theirs})",
                                hint="pass `resume` to continue it, or choose another directory", exit_code=2,
                                param="results_dir")
        if theirs != plan_id:
            raise RooflineError(f"results_dir {results_dir} holds plan {theirs}, but this search is plan {plan_id}",
                                hint="resume with the same models, workloads and axes, or choose another directory",
                                exit_code=2, param="resume")
        return
    write_text(manifest, search.to_json({"plan_id": plan_id, "space": space.describe()}), overwrite=True)


#: seconds to wait for a TCP connection to a Ray head (ray.init itself waits minutes on a dead address)
CONNECT_TIMEOUT_S = 5.0
_ADDRESS_HINT = "pass `address` auto or the HOST:PORT a running Ray head prints, or leave it out"


def _check_reachable(address: str | None) -> None:
    """Fail fast on a Ray address no cluster answers: None, "auto" and "local" are Ray's to resolve;
    HOST:PORT (or ray://HOST:PORT) must accept a TCP connection within CONNECT_TIMEOUT_S."""
    if address is None or address in ("auto", "local"):
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RooflineError(f"address {address!r} is not HOST:PORT", hint=_ADDRESS_HINT, exit_code=2, param="address")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise RooflineError(f"no Ray cluster answers at address {address!r} ({e.strerror or e})", hint=_ADDRESS_HINT,
                            exit_code=2, param="address") from None


class Runner:
    """Runs shards on one executor, writes their files, reports progress, honours stop_after."""

    def __init__(self, space, results_dir: Path, executor: str, workers: int | None, address: str | None,
                 progress: Callable[[dict], None] | None, stop_after: int | None, fault: Fault | None):
        if executor not in EXECUTORS:
            raise RooflineError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}",
                                hint="local: this machine's cores; ray: a Ray cluster", exit_code=2,
                                param="executor")
        if workers is not None and workers < 1:
            raise RooflineError(f"workers must be >= 1, got {workers}", hint="processes of the local executor",
                                exit_code=2, param="workers")
        if executor == "ray":
            _check_reachable(address)
        self.space, self.dir, self.executor = space, Path(results_dir), executor
        self.workers = workers or os.cpu_count() or 1
        self.address, self.progress, self.stop_after, self.fault = address, progress, stop_after, fault
        self.plan_id = space.plan_id()
        self.done = 0
        self.counts = {"screened": 0, "simulations": 0}

    def run(self, shards: list[Shard]) -> list[dict]:
        """Every shard's document (written or already there), in plan order."""
        todo = [sh for sh in shards if not shard_path(self.dir, sh).exists()]
        self.total, self.finished = len(shards), len(shards) - len(todo)
        for sh in shards:
            if sh not in todo:
                self._report(sh, shard_path(self.dir, sh).read_text(encoding="utf-8"), len(shards), written=False)
        if todo:
            (self._local if self.executor == "local" else self._ray)(todo)
        return [json.loads(shard_path(self.dir, sh).read_text(encoding="utf-8")) for sh in shards]

    def _report(self, sh: Shard, text: str, total: int, written: bool = True) -> None:
        doc = json.loads(text)
        if doc.get("plan_id") != self.plan_id:
            raise RooflineError(f"{shard_path(self.dir, sh)} belongs to plan {doc.get('plan_id')}",
                                hint="remove the results directory or choose another one", param="results_dir")
        res = doc["result"]
        self.counts["screened"] += res.get("screened", 0)
        self.counts["simulations"] += res.get("simulations", 0)
        if written:
            write_text(shard_path(self.dir, sh), text, overwrite=True)
            self.finished += 1
            self.done += 1
        if self.progress:
            self.progress({"stage": sh.stage, "shards_done": self.finished, "shards_total": total,
                           **self.counts})
        if written and self.stop_after is not None and self.done >= self.stop_after:
            raise Interrupted(self.done)

    def _fail(self, sh: Shard, attempts: dict, error: BaseException) -> bool:
        key = (sh.stage, sh.index)
        attempts[key] = attempts.get(key, 0) + 1
        if attempts[key] >= MAX_ATTEMPTS:
            raise RooflineError(f"shard {sh.index} of stage {sh.stage} failed {attempts[key]} times: {error}",
                                hint="see the error; resume runs the missing shards again") from error
        return True

    def _local(self, todo: list[Shard]) -> None:
        attempts: dict = {}
        while todo:
            pool = ProcessPoolExecutor(max_workers=min(self.workers, len(todo)))
            retry = []
            try:
                running = {pool.submit(run_shard, self.space, self.plan_id, sh, self.fault): sh for sh in todo}
                while running:
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for fut in sorted(finished, key=lambda f: running[f].index):
                        sh = running.pop(fut)
                        try:
                            text = fut.result()
                        except RooflineError:
                            raise
                        except Exception as e:  # noqa: BLE001 - a killed worker (BrokenProcessPool) or a crash
                            self._fail(sh, attempts, e)
                            retry.append(sh)
                            continue
                        self._report(sh, text, self.total)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
            todo = sorted(retry, key=lambda s: s.index)

    def _ray(self, todo: list[Shard]) -> None:
        try:
            import ray
        except ImportError:
            raise RooflineError("the ray executor needs Ray", hint='install it: pip install "roofline[ray]"',
                                exit_code=2, param="executor") from None
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
            except (ValueError, ConnectionError) as e:  # a malformed or unreachable address
                raise RooflineError(f"cannot start Ray at address {self.address!r}: {e}", hint=_ADDRESS_HINT,
                                    exit_code=2, param="address") from None
        task = ray.remote(max_retries=MAX_ATTEMPTS - 1, retry_exceptions=True)(run_shard)
        space_ref = ray.put(self.space)
        running = {task.remote(space_ref, self.plan_id, sh, self.fault): sh for sh in todo}
        try:
            while running:
                finished, _ = ray.wait(list(running), num_returns=1)
                sh = running.pop(finished[0])
                try:
                    text = ray.get(finished[0])
                except Exception as e:  # noqa: BLE001 - retries exhausted
                    raise RooflineError(f"shard {sh.index} of stage {sh.stage} failed {MAX_ATTEMPTS} times: {e}",
                                        hint="see the error; resume runs the missing shards again") from e
                self._report(sh, text, self.total)
        finally:
            for ref in running:
                ray.cancel(ref, force=True)


def run_search(space: search.SearchSpace, results_dir: str | Path | None = None, executor: str = "local",
               workers: int | None = None, address: str | None = None, resume: bool = False,
               progress: Callable[[dict], None] | None = None, stop_after: int | None = None,
               fault: Fault | None = None) -> dict:
    """Run both stages of the search and return its result (also written to `results_dir/result.json`).
    `results_dir` None: a temporary directory, removed afterwards. `stop_after`: stop (Interrupted) once
    this many shards have been written in this run (for checkpoint tests); `fault`: see Fault."""
    tmp = None
    if results_dir is None:
        tmp = results_dir = tempfile.mkdtemp(prefix="roofline-search-")
    try:
        results_dir = Path(results_dir)
        runner = Runner(space, results_dir, executor, workers, address, progress, stop_after, fault)  # checks first
        results_dir.mkdir(parents=True, exist_ok=True)
        prepare(results_dir, space, resume)
        plan_id = space.plan_id()
        screened = runner.run([Shard("screen", i, p) for i, p in enumerate(search.screen_shards(space))])
        merged = search.merge_screen(space, [d["result"] for d in screened])
        cands = search.simulation_list(space, merged)
        sims = runner.run([Shard("simulate", i, c) for i, c in enumerate(cands)])
        text = search.to_json(search.final_result(space, plan_id, merged, [d["result"] for d in sims]))
        write_text(results_dir / RESULT, text, overwrite=True)
        return json.loads(text)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

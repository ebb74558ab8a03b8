"""The serving-engine options shared by analyze, sweep, capacity, simulate, report and spreadsheet: `--engine`
and the knobs users set in practice, turned into `EngineKnobs` (roofline.model.memory).

A command takes them by declaring a parameter `engine: EngineKnobs` and the decorator `engine_options`: the
decorator puts the options in the command's signature in its place (typer reads the signature) and hands the
command one EngineKnobs. `--memory-utilization` (the option before engines existed) stays as a hidden alias of
`--kv-cache-fraction`."""
from __future__ import annotations

import functools
import inspect
from typing import Annotated, Optional

import typer

from roofline.errors import RooflineError
from roofline.model.memory import EngineKnobs, check_memory_utilization
from roofline.specs.engines import DEFAULT_ENGINE, list_engines, load_engine

EngineOpt = Annotated[str, typer.Option("--engine", help=f"Serving engine: {', '.join(list_engines())} (its "
                                        "KV-cache rule, batch limits, chunking, page size, CUDA graphs; see "
                                        "engines/*.json; vllm-v0 and sglang-0.4.6 are older releases' defaults) "
                                        "or an engine file path.")]
MaxSeqsOpt = Annotated[Optional[int], typer.Option("--max-seqs", help="Most sequences in one step (vLLM "
                                                   "max_num_seqs) [default: the engine's on this GPU].")]
MaxTokensOpt = Annotated[Optional[int], typer.Option("--max-batched-tokens", help="Most tokens in one step "
                                                     "(vLLM max_num_batched_tokens, SGLang chunked_prefill_size) "
                                                     "[default: the engine's on this GPU].")]
FractionOpt = Annotated[Optional[float], typer.Option("--kv-cache-fraction", help="The engine's memory fraction, "
                                                      "read by its rule: vLLM gpu_memory_utilization (of total "
                                                      "memory), TensorRT-LLM free_gpu_memory_fraction (of memory "
                                                      "free after weights), SGLang mem_fraction_static "
                                                      "[default: the engine's].")]
PageOpt = Annotated[Optional[int], typer.Option("--page-tokens", help="Tokens per KV-cache page (block) "
                                                "[default: the engine's].")]
ChunkedOpt = Annotated[Optional[bool], typer.Option("--chunked-prefill/--no-chunked-prefill",
                                                    help="Split prompts into chunks that share steps with decode "
                                                    "[default: the engine's].")]
GraphsOpt = Annotated[Optional[bool], typer.Option("--cuda-graphs/--no-cuda-graphs", help="Replay decode steps "
                                                   "from CUDA graphs (off: vLLM --enforce-eager) [default: on].")]
MemUtilOpt = Annotated[Optional[float], typer.Option("--memory-utilization", hidden=True,
                                                     help="Alias of --kv-cache-fraction.")]

_OPTIONS = (("engine", EngineOpt, DEFAULT_ENGINE), ("max_seqs", MaxSeqsOpt, None),
            ("max_batched_tokens", MaxTokensOpt, None), ("kv_cache_fraction", FractionOpt, None),
            ("page_tokens", PageOpt, None), ("chunked_prefill", ChunkedOpt, None), ("cuda_graphs", GraphsOpt, None),
            ("memory_utilization", MemUtilOpt, None))


def engine_knobs(engine: str = DEFAULT_ENGINE, max_seqs=None, max_batched_tokens=None, kv_cache_fraction=None,
                 page_tokens=None, chunked_prefill=None, cuda_graphs=None, memory_utilization=None) -> EngineKnobs:
    """The options as EngineKnobs; RooflineError (exit 2) for an unknown engine or both fraction options."""
    if memory_utilization is not None and kv_cache_fraction is not None and memory_utilization != kv_cache_fraction:
        raise RooflineError("--memory-utilization and --kv-cache-fraction disagree",
                            hint="give one: --memory-utilization is the old name of --kv-cache-fraction", exit_code=2)
    if memory_utilization is not None:
        check_memory_utilization(memory_utilization)  # named as the user wrote it
    spec = load_engine(engine)
    return EngineKnobs(spec, kv_cache_fraction if kv_cache_fraction is not None else memory_utilization, max_seqs,
                       max_batched_tokens, page_tokens, chunked_prefill, cuda_graphs)


def engine_echo(knobs: EngineKnobs) -> dict:
    """The engine and the knobs set, for JSON where the values in effect differ per GPU (capacity's rows carry
    their own max_seqs, max_batched_tokens and kv_cache_fraction): None = the engine's default on each GPU."""
    return {"name": knobs.spec.name, "version": knobs.spec.version, "kv_cache_rule": knobs.spec.value("kv_cache_rule"),
            "kv_cache_fraction": knobs.kv_cache_fraction, "max_seqs": knobs.max_seqs,
            "max_batched_tokens": knobs.max_batched_tokens, "page_tokens": knobs.page_tokens,
            "chunked_prefill": knobs.chunked_prefill, "cuda_graphs": knobs.cuda_graphs}


def engine_options(fn):
    """Replace `fn`'s parameter `engine` (an EngineKnobs) by the engine options in the signature typer reads."""
    sig = inspect.signature(fn, eval_str=True)  # typer reads the Annotated options from the signature
    params = list(sig.parameters.values())
    at = [p.name for p in params].index("engine")
    new = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=ann)
           for name, ann, default in _OPTIONS]
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params]
    exposed = sig.replace(parameters=params[:at] + new + params[at + 1:])

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        knobs = engine_knobs(**{name: kwargs.pop(name, default) for name, _, default in _OPTIONS})
        return fn(*args, engine=knobs, **kwargs)

    wrapper.__signature__ = exposed
    hints = {k: v for k, v in fn.__annotations__.items() if k != "engine"}
    wrapper.__annotations__ = {**hints, **{name: ann for name, ann, _ in _OPTIONS}}
    return wrapper

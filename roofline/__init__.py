"""roofline: an ops:bytes (arithmetic-intensity) model of LLM inference on GPUs, checked against measurements.

The Python API (`roofline.api`, loaded on first use so that `import roofline` and the command line stay fast):

    import roofline
    a = roofline.analyze(gpu="h100-sxm", model="llama-3.1-8b", batch=8)   # an Analysis
    a.tpot_s, a.decode_bound, a.max_batch, a.operators                     # figures, a DataFrame
    roofline.sweep(batch=[1, 8, 64], context=[2048, 8192])                 # a DataFrame, one row a config
    roofline.capacity(model="llama-3.1-70b", workload="examples/workload-chat.json")

Also `train` / `train_search` (training layouts), `load_gpu`, `load_model`, `load_profile`, `list_gpus`,
`list_models`, `validate`, `published`,
`Analysis`, `RooflineError` and `RooflineWarning`.
"""
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: the names `roofline.api` provides here (imported from it on first access)
_API = ("Analysis", "RooflineError", "RooflineWarning", "analyze", "capacity", "list_gpus", "list_models",
        "load_gpu", "load_model", "load_profile", "published", "sweep", "train", "train_search", "validate")

__all__ = ["__version__", *_API]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ imports them on first use
    from roofline.api import (Analysis, RooflineError, RooflineWarning, analyze, capacity, list_gpus, list_models,
                              load_gpu, load_model, load_profile, published, sweep, train, train_search, validate)


def __getattr__(name: str) -> Any:
    if name in _API:
        from roofline import api

        value = getattr(api, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'roofline' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})

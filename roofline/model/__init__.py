"""The model: the operator registry (FLOPs, bytes, kernels per operator), the one roofline time formula,
efficiencies, phases (prefill, decode step, whole generation), memory and KV capacity, analysis, the
vectorized sweep and the per-step time the planners use.

Imports only `roofline.specs` and the base modules."""

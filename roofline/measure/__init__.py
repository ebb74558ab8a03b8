"""Measuring real devices and checking the model against measurements: the microbenchmark suite behind
`roofline bench` (torch + NVML; torch imported lazily), profiles, calibration, building a measured device
from a profile, validation, and the comparison with published measurements.

Never imports `roofline.report` or `roofline.cli`."""

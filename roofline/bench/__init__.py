"""Measure the device (torch microbenchmarks + NVML telemetry), save profiles, calibrate and validate.

Entry points for the CLI are in `roofline.bench.commands`; `roofline.bench.cli.register(app)` mounts them.
"""

"""Serving-engine files (vllm.json, trtllm.json, sglang.json, and older releases: vllm-v0.json,
sglang-0.4.6.json), installed as package data `roofline.engines`."""

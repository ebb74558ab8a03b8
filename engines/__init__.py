"""Serving-engine files (vllm.json, trtllm.json, sglang.json), installed as package data `roofline.engines`."""

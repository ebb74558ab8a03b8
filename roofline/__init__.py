"""roofline: an ops:bytes (arithmetic-intensity) model of LLM inference on GPUs, checked against measurements."""

__version__ = "0.1.0"

"""Inputs: GPU spec files, Hugging Face model configs and the catalog, precisions, workload and fleet files.

Depends only on the base modules (`roofline.errors`, `roofline.units`, `roofline.jsonfile`)."""

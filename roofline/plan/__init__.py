"""Planning on top of the model: per-replica capacity within SLOs, the cheapest fleet mix, and the
discrete-event serving simulator. Never imports `roofline.report` or `roofline.cli`."""

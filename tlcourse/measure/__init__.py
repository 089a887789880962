"""Measuring networks and their results: parameters, FLOPs, latency, shapes (``profile``), receptive
fields, activations, backbone costs and Pareto fronts (``compare``), the architecture timeline,
error analysis (``metrics``) and the course's figures (``plots``)."""

"""Analysis of built models: summaries, FLOP counts, profiling.

- ``summary``: per-layer shapes, parameters, exact FLOPs (``layerforge inspect``).
- ``compare.profile_configs``: the entry point of ``layerforge profile`` (several configs, sweeps), built on
  ``run`` (conditions of a run), ``profiler`` (one model), ``timing``, ``layer_timing``, ``memory``,
  ``machine``, ``verdict``, ``sweep``; results are the dataclasses of ``report``; the spec's ``profile:``
  section is ``profile_schema`` (torch-free).
"""

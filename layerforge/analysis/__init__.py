"""Analysis of built models: summaries, FLOP counts, profiling."""

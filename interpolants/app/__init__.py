"""The app layer over the library: the command line and what it runs.

- :mod:`.cli`: the ``interpolants`` command (train, generate, evaluate, sample-target, demo,
  bench);
- :mod:`.training_runs`: training runs from YAML configs, their evaluation and generation;
- :mod:`.sample_target`: the ``sample-target`` command, one sampler run on a target, on disk;
- :mod:`.demo`: the demos; :mod:`.bench`, :mod:`.sampler_bench`: the benchmarks
  (:mod:`.machine`: what they ran on);
- :mod:`.plots`, :mod:`.sampler_plots`: PNG plots (matplotlib).

The library (everything outside this package) never imports it.
"""

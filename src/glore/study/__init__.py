"""Multi-seed studies: a grid of config variants x seeds, each a ``glore train`` run, and the
statistics that say whether a difference between variants is larger than the seeds' spread.

- :mod:`glore.study.spec`: the study file (``configs/studies/*.yaml``) and the runs it expands to;
- :mod:`glore.study.launch`: running them, on local worker processes or through submitit (SLURM);
- :mod:`glore.study.stats`: means, confidence intervals, paired differences and tests (scipy.stats);
- :mod:`glore.study.report`: the tables (Markdown, CSV, JSON) and plots of a study's results.
"""

"""The systems the benchmark compares, one module each: how to start it, feed it and read it.

Each module's ``run_*`` or ``measure_*`` takes the running doubles and returns a dict of
figures that ``bench.report`` tabulates; what they share (the doubles, the /proc readings, the
check that each job did the same work) is ``bench.measure``. The code the naive systems run in
their own processes stays beside this package, where those processes find it by module name:
``bench.naive_agent`` (the agent run they both make), ``bench.baseline`` (the Celery app of
``celery -A bench.baseline worker``) and ``bench.limit`` (``python -m bench.limit``).
"""

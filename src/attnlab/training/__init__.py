"""Run machinery: one run from built parts (run.py: fit, test, averaging choice, pruning, requeue), checkpoints, the
time horizon and its schedules, averaging, pruning, preemption, precision and the callbacks of a run (each one a node
under conf/callbacks). It takes plain values, never a Hydra config. It knows Lightning and the data contract, never a model or a task (those are :mod:`attnlab.lit`)."""

"""Run machinery: checkpoints, the time horizon and its schedules, averaging, pruning, preemption, precision and
the callbacks of a run. It knows Lightning and the data contract, never a model or a task (those are :mod:`attnlab.lit`)."""

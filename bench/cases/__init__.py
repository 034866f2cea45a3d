"""The benchmark cases, each a function ``run(ctx) -> CaseResult`` (see ``bench.run.CASES``)."""

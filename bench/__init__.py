"""attnlab's benchmark suite: ``make bench`` / ``python bench/run.py`` (see ``bench/run.py``)."""

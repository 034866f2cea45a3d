"""Trained models in a notebook or a tool: ``attnlab.load(path)`` restores a run (checkpoint or run dir) as an
object of its family that translates, fills masks, classifies or regresses, and shows every attention map.

This layer sits above ``lit`` (it rebuilds LightningModules from the run config a checkpoint carries) and below
``cli``, whose tools are thin wrappers over it.
"""

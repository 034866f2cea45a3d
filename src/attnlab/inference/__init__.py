"""Trained models in a notebook or a tool: ``attnlab.load(path)`` restores a run (checkpoint or run dir) as an
object of its family that translates, fills masks, classifies or regresses, and shows every attention map.

This layer sits above ``lit`` (it rebuilds LightningModules from the run config a checkpoint carries) and below
``cli``, whose tools are thin wrappers over it.
"""
from attnlab.inference.bert import LoadedBert, LoadedBertClassifier, LoadedBertPretraining
from attnlab.inference.load import load
from attnlab.inference.loaded import LoadedModel
from attnlab.inference.regression import LoadedNadarayaWatson
from attnlab.inference.results import (
    AttentionMap, AttentionResult, NextSentence, Prediction, TokenFeatures, TokenProbability,
)
from attnlab.inference.translation import LoadedTranslator, cross_alignment, decoder_attention

__all__ = [
    "AttentionMap", "AttentionResult", "LoadedBert", "LoadedBertClassifier", "LoadedBertPretraining", "LoadedModel",
    "LoadedNadarayaWatson", "LoadedTranslator", "NextSentence", "Prediction", "TokenFeatures", "TokenProbability",
    "cross_alignment", "decoder_attention", "load",
]

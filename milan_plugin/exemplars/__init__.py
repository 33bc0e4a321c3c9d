"""The single-pass exemplar engine and the ExemplarSet storage format."""

from milan_plugin.exemplars.engine import compute_exemplar_state, compute_exemplars, exemplar_sets
from milan_plugin.exemplars.exemplar_set import ExemplarSet
from milan_plugin.exemplars.state import EngineState, merge_states

__all__ = [
    "EngineState",
    "ExemplarSet",
    "compute_exemplar_state",
    "compute_exemplars",
    "exemplar_sets",
    "merge_states",
]

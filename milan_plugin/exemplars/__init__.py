"""The single-pass exemplar engine and the ExemplarSet storage format."""

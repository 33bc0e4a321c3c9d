"""Exemplar sources: image folders, ``datasets`` datasets, in-memory tensors, seeded latents."""

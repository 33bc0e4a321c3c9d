"""Scorers for candidate descriptions (wPMI, CLIP-style) and evaluation metrics (BLEU, CIDEr, BERTScore)."""

"""A procedural concept world with ground truth: scenes, planted neurons, synthetic MILANNOTATIONS."""

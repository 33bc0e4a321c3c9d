"""MILANNOTATIONS, annotation sets and MILAN weights on the Hugging Face Hub."""

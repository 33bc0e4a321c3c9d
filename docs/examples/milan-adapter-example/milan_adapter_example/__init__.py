"""An example milan-plugin adapter plugin for a small capsule network."""

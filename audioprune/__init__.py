"""audioprune: token pruning for audio-language models (reproduction and extension harness)."""

__version__ = "0.1.0"

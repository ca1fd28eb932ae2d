"""ember.training: the training loop behind `ember train`, and resumable checkpoint directories."""

from .checkpoint import checkpoint_exists, load_checkpoint, read_meta, save_checkpoint

__all__ = ["save_checkpoint", "load_checkpoint", "read_meta", "checkpoint_exists"]

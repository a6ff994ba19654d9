"""Data: the manifest format, sources, translation, shards and the training input pipeline."""

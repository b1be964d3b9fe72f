"""Errors the user can cause. The CLI prints them as one line, never a traceback."""


class ModelError(Exception):
    """Base class: bad input, bad file, bad option. str(e) is the one-line message."""


class VectorFileError(ModelError):
    """A classic vector file is malformed; the message reads 'path:line: reason'."""


class PsumOverflowError(ModelError):
    """A value does not fit the hardware width it is meant to travel in."""


class CheckpointError(ModelError):
    """A checkpoint is missing, corrupt, or needs pickle code to load."""


class DataError(ModelError):
    """A data directory or data file is missing or corrupt."""


class LayerError(ModelError):
    """A layer name/index does not exist, or the layer cannot be mapped to the array."""

"""Every error instit raises on purpose.

All of them derive from :class:`InstitError`, so ``except instit.InstitError`` catches
anything the package reports about bad input or a bad checkpoint.  Errors about a bad *value*
also derive from :class:`ValueError`, errors about a wrong *type* from :class:`TypeError`,
so code written against the standard exceptions keeps working.

Each message names what was wrong and what to do about it.
"""

from __future__ import annotations


class InstitError(Exception):
    """Base class of every error instit raises deliberately."""


class InstitValueError(InstitError, ValueError):
    """A value the caller passed is not acceptable."""


class InstitTypeError(InstitError, TypeError):
    """An argument has a type instit cannot use."""


# -- media and instances -------------------------------------------------------------------------


class MediaError(InstitValueError):
    """An image, frame or file could not be read or has an unsupported layout."""


class InstancesError(InstitValueError):
    """Instance geometry or IDs are invalid (shape mismatch, duplicate IDs, empty masks ...)."""


class VideoError(MediaError):
    """A video source is missing, unreadable, empty or inconsistent."""


# -- models and checkpoints ----------------------------------------------------------------------


class CheckpointError(InstitError):
    """A checkpoint is missing files or weights, or has an unknown architecture."""


class ModelInputError(InstitValueError):
    """Inputs do not fit the model (media/instance mismatch, too many frames for the context)."""


class DependencyError(InstitError, ImportError):
    """An optional dependency or hardware capability (CUDA, bitsandbytes ...) is missing."""


class NotEnoughMemoryError(InstitError, MemoryError):
    """A load would need more memory than is available (raised before any weight is read)."""


# -- benchmark and dataset -----------------------------------------------------------------------


class DatasetError(InstitValueError):
    """A benchmark or dataset file does not follow its schema (names the record and field)."""


class JudgeError(InstitError):
    """The open-ended judge endpoint failed or answered something unusable."""

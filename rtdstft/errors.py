"""The exception for a bad parameter: a value outside its valid range, an option that does not fit
with another, a request too large for the machine.

Validation code raises :class:`ParameterError` (a ``ValueError``) with a message that names the
parameter, the value given and the valid range; the command line prints such errors as one line and
exits with status 2. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["ParameterError"]


class ParameterError(ValueError):
    """A parameter outside its valid range; the message names it, the value and what would work."""

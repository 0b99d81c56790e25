"""The error a boot ends with: what did not come up, and whether trying again can help."""
from __future__ import annotations


class BootError(RuntimeError):
    """The kernel did not come up; the message names it and quotes the console.
    retryable is False when a second attempt cannot help (bad image, missing config)."""

    def __init__(self, message: str, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable

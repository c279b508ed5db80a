"""The SDK's exceptions. Each has a stable machine-readable `code`.

A failing *guest* function is data (`RunResult`), never an exception: these are raised
only for bad input from the developer or the platform (an invalid module, an invalid
input query, an invalid output) and for faults of the SDK itself.
"""

from __future__ import annotations

from typing import Any


class CartwheelError(Exception):
    """Root of every error the SDK raises."""

    code: str = "INTERNAL_ERROR"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details: dict[str, Any] = details

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.details}

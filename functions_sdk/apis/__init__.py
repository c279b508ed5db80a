"""Function API targets and their input schemas.

`TARGETS` lists every target in checkout order; `get_target(name)` looks one up. The
input schema of a target is a Strawberry schema (`functions_sdk.apis.inputs`); its
output schema lives in `functions_sdk.apis.outputs`.
"""

from functions_sdk.apis.registry import TARGETS, Target, UnknownTargetError, get_target

__all__ = ["TARGETS", "Target", "UnknownTargetError", "get_target"]

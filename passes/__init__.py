"""HAI passes: the pass manager, pipeline strings, instruments and one module per pass.

Imports only `ir` (DESIGN.md's layering); target facts arrive as plain data in
`PassContext.target`.
"""

from __future__ import annotations

from passes.manager import (
    Diagnostic,
    Instrument,
    Pass,
    PassContext,
    PassFailedError,
    PassManager,
)
from passes.pipeline import DEFAULT_PIPELINE, PipelineError, parse_pipeline
from passes.registry import PassRegistryError, available_passes

__all__ = [
    "DEFAULT_PIPELINE", "Diagnostic", "Instrument", "Pass", "PassContext", "PassFailedError",
    "PassManager", "PassRegistryError", "PipelineError", "available_passes", "parse_pipeline",
]

"""How the runtime's benchmark commands (`python -m runtime.transfer_bench`, `stream_bench`,
`power_bench`) end: the measurement run, its report printed, its JSON written where asked.

Rule: a runtime error becomes one `error: ...` line on stderr and exit code 1, never a traceback.
Imports the standard library and `runtime` only.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runtime.errors import HaiRuntimeError


def report(
    measure: Callable[[], dict[str, Any]], lines: Callable[[dict[str, Any]], list[str]], json_path: str | None
) -> int:
    """Run `measure`, print `lines(result)`, write the result as JSON to `json_path` (None: nowhere);
    the exit code."""
    try:
        result = measure()
    except HaiRuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines(result)))
    if json_path is not None:
        Path(json_path).write_text(json.dumps(result, indent=2) + "\n")
    return 0

"""How the CLI shows a `HaiWarning` (ir/errors.py): one `warning: ...` line on stderr when it is raised.

Rule: HAI's library code warns through Python's `warnings` with a `HaiWarning` subclass, so a
Python caller may filter them or turn them into errors. Every `hai` command runs inside
`printed_warnings` (the app's callback enters it, hai_compiler/cli.py), which prints each
HaiWarning, every time it is raised, as one `warning: MESSAGE` line: never Python's
`file:line: Category:` format with the source line. Other warnings keep Python's format.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ir.errors import HaiWarning


@contextmanager
def printed_warnings() -> Iterator[None]:
    """Inside: each HaiWarning is one `warning: ...` line on stderr (others as Python shows them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", HaiWarning)
        shown = warnings.showwarning

        def show(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
            if issubclass(category, HaiWarning):
                sys.stdout.flush()
                sys.stderr.write(f"warning: {message}\n")
            else:
                shown(message, category, *args, **kwargs)

        warnings.showwarning = show
        yield

"""The error family users see: every message names the node, op, file or option.

`HaiError` is the root; a traceback is for our bugs, a `HaiError` for the user's
input. `HaiWarning` is the root of what HAI tells the user without failing: it is
raised through Python's `warnings` (a caller may filter it or make it an error) and
the CLI prints each as one `warning: ...` line (hai_compiler/warning_lines.py).
This module imports nothing.
"""

from __future__ import annotations


class HaiError(Exception):
    """An error in the user's input or options, with a message that says what to fix."""


class HaiWarning(UserWarning):
    """Something the user should fix or know that did not stop the command; the message says what."""


class IRError(HaiError):
    """A graph that breaks an IR rule (bad operand count, unknown attribute, bad type)."""


class VerificationError(IRError):
    """The verifier found a broken invariant; the message names the offending node."""


class UnknownOpError(IRError):
    """An op name that is not in the op registry."""

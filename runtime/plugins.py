"""Finding plugins by name: built-in `module:attribute` sources, then a distribution entry-point group.

Device drivers (`hai.devices`) and, on the compiler side, targets (`hai.targets`)
are found this way. Listing never imports a plugin; a broken one is reported
only when it is asked for. Imports the standard library only.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping


def plugin_sources(group: str, builtins: Mapping[str, str]) -> dict[str, str]:
    """Name -> `module:attribute`: the built-ins, then every entry point of `group` (built-ins win)."""
    from importlib.metadata import entry_points  # only when plugins are listed: ~3 MB at import

    sources = dict(builtins)
    for entry in entry_points(group=group):
        sources.setdefault(entry.name, entry.value)
    return sources


def load_plugin(
    what: str,
    name: str,
    sources: Mapping[str, str],
    base: type,
    unknown: type[Exception],
    broken: type[Exception],
) -> type:
    """The class `sources[name]` names, checked to subclass `base`.

    `unknown` is raised for a name not in `sources` (listing the known ones),
    `broken` for a source that fails to import or is not a `base` subclass.
    """
    if name not in sources:
        raise unknown(f"no HAI {what} named {name!r}; known {what}s: {', '.join(sorted(sources))}")
    source = sources[name]
    module_name, _, attribute = source.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise broken(f"{what} {name!r} ({source}) failed to load: {exc}") from exc
    if not (isinstance(found, type) and issubclass(found, base)):
        raise broken(f"{what} {name!r} ({source}) is not a {base.__module__}.{base.__qualname__} subclass")
    return found

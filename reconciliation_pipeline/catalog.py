"""Every reconciled domain, found the way `definitions.py` finds them: the `defs/` folder.

Each `defs/<domain>/definitions.py` builds its domain from its spec with
`core.factory.build_domain`; this module collects those `BuiltDomain`s so
tools outside Dagster's code location (the API's launches) know the domains,
their scopes, jobs and asset keys without a list kept by hand.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

from reconciliation_pipeline import defs as defs_package
from reconciliation_pipeline.core.factory import BuiltDomain


@functools.cache
def built_domains() -> dict[str, BuiltDomain]:
    """domain name -> its built definitions, for every domain folder under `defs/`."""
    found: dict[str, BuiltDomain] = {}
    for module in pkgutil.iter_modules(defs_package.__path__):
        if not module.ispkg:
            continue
        try:
            definitions = importlib.import_module(f"{defs_package.__name__}.{module.name}.definitions")
        except ModuleNotFoundError:
            continue
        for value in vars(definitions).values():
            if isinstance(value, BuiltDomain):
                found[value.spec.domain] = value
    return dict(sorted(found.items()))

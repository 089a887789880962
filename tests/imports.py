"""What a Python file imports, read with ``ast`` (imports inside functions count too); shared by the tests."""

from __future__ import annotations

import ast
from pathlib import Path


def imported_names(path: Path) -> list[str]:
    """Every absolute name ``path`` imports: ``import a.b`` gives ``a.b``; ``from a import b`` gives ``a`` and ``a.b``.

    A relative import (``from . import x``) raises ``ValueError``: the package imports absolutely.
    """
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                raise ValueError(f"relative import in {path}: from {'.' * node.level}{node.module or ''}")
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return names

"""The seams of docs/architecture.md, checked: which package may import which.

Read from the source with ``ast`` (imports inside functions count too), so a shortcut
across a seam fails here rather than in a review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parents[2] / "server"

#: package → the packages of ours it may import (besides itself and server/types.py).
ALLOWED: dict[str, set[str]] = {
    "sync": set(),
    "transport": set(),
    "admission": set(),
    "metrics": set(),
    "auth": {"config"},
    "bus": {"config"},
    "persistence": {"config"},
    "rooms": {"admission", "bus", "cache", "config", "persistence", "sync", "transport"},
    "live": {"bus", "config", "persistence", "rooms", "transport"},
    "progress": {"config", "persistence", "rooms", "sync"},
    "notifications": {"config", "persistence"},
    "assignments": {"bus", "config", "notifications", "persistence", "progress", "rooms"},
    "revocation": {"bus", "transport"},
    "sessions": {"bus", "cache", "config", "persistence"},
    "roster": {"config", "persistence"},
    "privacy": {"bus", "config", "persistence", "progress", "revocation", "sessions"},
    "api": {
        "admission",
        "assignments",
        "auth",
        "context",
        "live",
        "notifications",
        "persistence",
        "progress",
        "privacy",
        "revocation",
        "rooms",
        "sessions",
        "roster",
        "sync",
        "transport",
        "config",
    },
}

#: Third-party packages a layer must not touch: sync/ is sans-I/O.
FORBIDDEN_LIBS: dict[str, set[str]] = {
    "sync": {"asyncio", "starlette", "uvicorn", "redis", "sqlalchemy", "sqlmodel"},
    "admission": {"starlette", "uvicorn", "redis", "sqlalchemy", "sqlmodel"},
    "rooms": {"starlette", "uvicorn", "redis", "sqlalchemy"},
    "live": {"starlette", "uvicorn", "redis", "sqlalchemy"},
    "progress": {"starlette", "uvicorn", "redis", "sqlalchemy"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _files(package: str) -> list[Path]:
    return sorted((SERVER / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_its_seam_allows(package: str) -> None:
    # server/metrics is importable by every package, like types.py: it imports nothing of
    # ours and recording is a counter increment (sync/ stays pure: it records nothing).
    allowed = ALLOWED[package] | {package, "types"} | ({"metrics"} if package != "sync" else set())
    crossings = []
    for path in _files(package):
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] != "server" or len(parts) < 2:
                continue
            if parts[1] not in allowed:
                crossings.append(f"{path.relative_to(SERVER)} imports {name}")
    assert crossings == []


@pytest.mark.parametrize("package", sorted(FORBIDDEN_LIBS))
def test_package_keeps_off_io_libraries(package: str) -> None:
    found = [
        f"{path.relative_to(SERVER)} imports {name}"
        for path in _files(package)
        for name in _imports(path)
        if name.split(".")[0] in FORBIDDEN_LIBS[package]
    ]
    assert found == []


def test_every_package_is_placed() -> None:
    """A new folder under server/ must say where it sits (add it to ALLOWED)."""
    packages = {p.name for p in SERVER.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(ALLOWED)

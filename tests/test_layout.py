"""The layout's rules, read from the source: which folder may import which."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names, relative ones resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def offenders(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for name in sorted(imported(path)):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


def test_live_never_imports_the_api() -> None:
    assert (ROOT / "server/live/session.py").is_file()
    assert offenders("server/live", ("server.api", "server.app", "server.cli")) == []


def test_models_never_import_the_server_or_clients() -> None:
    assert offenders("models", ("server", "client")) == []


def test_the_rule_finds_what_it_looks_for(tmp_path: Path) -> None:
    sample = ROOT / "server/api/sessions.py"
    assert "server.live.session" in imported(sample)
    assert offenders("server/api", ("server.live",)) != []


TORCH_FOLDERS = ("models/training", "models/edtalk/nets")  # training and export only


def test_torch_is_imported_only_in_its_folders() -> None:
    found = []
    for folder in ("server", "models", "client"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith(TORCH_FOLDERS):
                continue
            if any(n == "torch" or n.startswith("torch.") for n in imported(path)):
                found.append(rel)
    assert found == []
    assert any(  # the rule sees the imports it is about
        n == "torch" for n in imported(ROOT / "models/edtalk/nets/generator.py")
    )

"""The layout's rules, read from the source: which folder may import which."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names, relative ones resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(("headcast", *path.relative_to(ROOT).with_suffix("").parts[:-1]))
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
    assert (
        offenders(
            "server/live", ("headcast.server.api", "headcast.server.app", "headcast.server.cli")
        )
        == []
    )


def test_models_never_import_the_server_or_clients() -> None:
    assert offenders("models", ("headcast.server", "headcast.client")) == []


def test_the_rule_finds_what_it_looks_for(tmp_path: Path) -> None:
    sample = ROOT / "server/api/sessions.py"
    assert "headcast.server.live.session" in imported(sample)
    assert offenders("server/api", ("headcast.server.live",)) != []


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


BARE = ("server", "models", "client")


def test_everything_imports_through_the_namespace() -> None:
    """``server``, ``models`` and ``client`` are folders; the importable names are
    ``headcast.server`` etc., so nothing imports the bare names (which would load a
    second copy of a module, or someone else's package)."""
    found = []
    for folder in (*BARE, "tests", "scripts"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for name in sorted(imported(path)):
                if name.split(".")[0] in BARE:
                    found.append(f"{path.relative_to(ROOT)} imports {name}")
    assert found == []


def test_every_package_folder_is_installed() -> None:
    """pyproject lists the packages by hand (the namespace maps folders to names):
    a new package folder that is not listed would be missing from an install."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    folders = {
        "headcast." + ".".join(init.parent.relative_to(ROOT).parts)
        for top in BARE
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert folders - listed == set()
    for name in listed:
        top = ".".join(name.split(".")[:2])
        assert config["package-dir"][top] == top.split(".")[1]

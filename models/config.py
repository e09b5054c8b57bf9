"""Typed configuration: YAML files under ``configs/`` -> frozen pydantic models.

Precedence (lowest first): model defaults, the YAML file, environment variables
``<PREFIX>__<FIELD>[__<SUBFIELD>]`` (values parsed as YAML scalars), explicit
overrides (CLI flags). Unknown keys are errors at every level.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "configs"


class StrictModel(BaseModel):
    """Base for every config: frozen, rejects unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")


M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A config file, env var or flag that does not fit its schema."""


def _set_path(tree: dict[str, Any], path: list[str], value: Any) -> None:
    node = tree
    for key in path[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set {'.'.join(path)}: {key} is not a section")
        node = child
    node[path[-1]] = value


def env_overrides(prefix: str, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``HEADCAST_SERVE__PORT=9000`` -> ``{"port": 9000}`` for prefix ``HEADCAST_SERVE``."""
    environ = os.environ if environ is None else environ
    tree: dict[str, Any] = {}
    head = prefix.upper() + "__"
    for name, raw in environ.items():
        if name.startswith(head):
            path = [p.lower() for p in name[len(head) :].split("__") if p]
            if path:
                _set_path(tree, path, yaml.safe_load(raw))
    return tree


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping from ``path``; a clear ``ConfigError`` otherwise."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        # one line: the problem and where (PyYAML's own text quotes the file over lines)
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"config {path} is not valid YAML{where}: {problem}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping at the top level")
    return data


def load_config(
    model: type[M],
    path: Path | Sequence[Path] | None = None,
    env_prefix: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> M:
    """Build ``model`` from defaults < YAML ``path`` (several: each overlays the ones
    before it, key by key) < env vars < ``overrides``."""
    paths = [] if path is None else [path] if isinstance(path, Path) else list(path)
    data: dict[str, Any] = {}
    source: dict[str, str] = {}  # top-level key -> where its value came from
    for layer in paths:
        layer_data = read_yaml(layer)
        data = _merge(data, layer_data)
        source.update(dict.fromkeys(layer_data, str(layer)))
    if env_prefix:
        env_data = env_overrides(env_prefix, environ)
        data = _merge(data, env_data)
        source.update(dict.fromkeys(env_data, f"environment {env_prefix}__*"))
    if overrides:
        given = {k: v for k, v in overrides.items() if v is not None}
        data = _merge(data, given)
        source.update(dict.fromkeys(given, "command line"))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid {model.__name__}: {problems(exc, source)}") from exc


def problems(exc: ValidationError, source: Mapping[str, str] | None = None) -> str:
    """A validation error on one line: ``field (where it was set): what is wrong; ...``;
    an error about several fields at once is its message alone."""
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        if not loc:
            out.append(msg)
            continue
        where = (source or {}).get(str(err["loc"][0]))
        out.append(f"{loc} ({where}): {msg}" if where else f"{loc}: {msg}")
    return "; ".join(out)

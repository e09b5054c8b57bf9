"""Emotion presets: named expression-coefficient vectors from ``configs/emotions.yaml``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from pydantic import RootModel, field_validator

from headcast.models.channels import EXPRESSION_CHANNELS, EXPRESSION_SLICE, NUM_CHANNELS
from headcast.models.config import CONFIG_DIR, ConfigError, read_yaml

EMOTIONS_FILE = CONFIG_DIR / "emotions.yaml"


class EmotionPresets(RootModel[dict[str, dict[str, float]]]):
    """``{preset: {expression channel: 0..1}}``; unknown channels are rejected."""

    @field_validator("root")
    @classmethod
    def _check(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for preset, channels in value.items():
            for name, v in channels.items():
                if name not in EXPRESSION_CHANNELS:
                    raise ValueError(f"preset {preset!r}: {name!r} is not an expression channel")
                if not 0.0 <= v <= 1.0:
                    raise ValueError(f"preset {preset!r}: {name}={v} outside 0..1")
        if "neutral" not in value:
            raise ValueError("a 'neutral' preset is required")
        return value


@lru_cache(maxsize=4)
def load_presets(path: Path = EMOTIONS_FILE) -> dict[str, np.ndarray]:
    """``{name: float32 (K,)}`` full coefficient vectors (zeros outside the expression bank)."""
    try:
        presets = EmotionPresets.model_validate(read_yaml(path)).root
    except ValueError as exc:
        raise ConfigError(f"invalid emotion presets {path}: {exc}") from exc
    out: dict[str, np.ndarray] = {}
    for name, channels in presets.items():
        vec = np.zeros(NUM_CHANNELS, np.float32)
        for ch, v in channels.items():
            vec[EXPRESSION_SLICE.start + EXPRESSION_CHANNELS.index(ch)] = v
        out[name] = vec
    return out


def preset(name: str) -> np.ndarray:
    """float32 (K,) for a preset name; ``KeyError`` lists the known names."""
    presets = load_presets()
    if name not in presets:
        raise KeyError(f"unknown emotion {name!r}; known: {', '.join(sorted(presets))}")
    return presets[name].copy()

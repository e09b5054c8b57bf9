"""The training mixture of `headcast train motion`: synthetic voices and recorded
speakers, each kind built once and cached on its own in ``--data-cache``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from headcast.models.training import real
from headcast.models.training.corpora import CORPORA, KINDS, is_recorded
from headcast.models.training.dataset import (
    TRAIN_VOICES,
    Example,
    build,
    build_real,
    hours,
    load,
    save,
)
from headcast.models.training.fotaq import MAX_CLIPS

if TYPE_CHECKING:
    from headcast.models.training.train import TrainConfig

log = logging.getLogger(__name__)

DATA_VERSION = 3  # bump when synthesis/augmentation changes, so old caches are not reused


def training_examples(cfg: TrainConfig) -> list[Example]:
    """Synthetic and recorded training sessions, each kind cached on its own in
    ``data_cache`` (so adding a speaker does not synthesise the voices again)."""
    synth_name = (
        f"train-v{cfg.voices}-u{cfg.utts_per_voice}-c{cfg.copies}-s{cfg.seed}-d{DATA_VERSION}"
    )
    examples = _cached(cfg, synth_name, lambda: build(
        TRAIN_VOICES[: cfg.voices], cfg.utts_per_voice, cfg.copies, cfg.seed, cfg.workers
    ))  # fmt: skip
    if cfg.hesitations:
        from headcast.models.training.hesitations import build_hesitant

        name = f"hesitant-u{cfg.utts_per_voice}-c{cfg.copies}-s{cfg.seed}-d{DATA_VERSION}"
        examples += _cached(cfg, name, lambda: build_hesitant(
            cfg.utts_per_voice, cfg.copies, cfg.seed, cfg.workers
        ))  # fmt: skip
    if cfg.real_copies:
        # Asterisk voices, KLettres and Tux Paint speakers are cached apart: adding one
        # kind does not rebuild the others.
        for kind in KINDS:
            keys = tuple(k for k in cfg.speakers if CORPORA[k].kind == kind)
            if keys:
                name = (
                    f"recorded-{'-'.join(keys)}-r{cfg.real_copies}-{cfg.real_prompts}"
                    f"-s{cfg.seed}-d{DATA_VERSION}"
                )
                if "fotaq" in keys and cfg.game_clips != MAX_CLIPS:
                    name += f"-g{cfg.game_clips}"
                examples += _cached(cfg, name, partial(_recorded, cfg, keys))
    return examples


def _cached(cfg: TrainConfig, name: str, make: Callable[[], list[Example]]) -> list[Example]:
    cache = None if cfg.data_cache is None else cfg.data_cache / f"{name}.npz"
    if cache is not None and cache.is_file():
        log.info("data: reusing %s", cache)
        return load(cache)
    examples = make()
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        save(examples, cache)
    return examples


def _recorded(cfg: TrainConfig, speakers: tuple[str, ...]) -> list[Example]:
    prompts = real_prompts(cfg, "train", speakers)
    recorded = build_real(prompts, cfg.real_copies, cfg.seed, cfg.workers)
    log.info(
        "data: %d recorded prompts (%s, train split) -> %.2f h of features",
        len(prompts), ", ".join(speakers), hours(recorded),
    )  # fmt: skip
    return recorded


def real_prompts(
    cfg: TrainConfig, split: str, speakers: tuple[str, ...] | None = None
) -> list[real.Prompt]:
    """Aligned recorded prompts of one split from ``speakers`` (default
    ``cfg.speakers``; ``real_prompts`` of each speaker when set)."""
    cache = None if cfg.data_cache is None else cfg.data_cache / "alignments.json"
    todo: list[real.Prompt] = []
    for key in cfg.speakers if speakers is None else speakers:
        prompts = [p for p in real.prompts(key, cfg.game_clips) if real.prompt_split(p) == split]
        if cfg.real_prompts is not None:
            speech = [p for p in prompts if p.words][: cfg.real_prompts]
            prompts = speech + [p for p in prompts if not p.words][:1]
        todo += prompts
    return real.aligned(todo, cfg.workers, cache)


def recorded_summary(examples: list[Example], cfg: TrainConfig) -> str:
    """What recorded speech the model was trained on, for its metadata."""
    recorded = [e for e in examples if is_recorded(e.voice)]
    if not recorded:
        return "none"
    speakers = sorted({e.voice for e in recorded})
    return (
        f"{', '.join(speakers)} prompts (train split; held out: {', '.join(sorted(real.HELDOUT_FAMILIES))}"
        f" and the speaker {', '.join(c.speaker for c in CORPORA.values() if c.heldout)}"
        f"; validation: {', '.join(sorted(real.VALIDATION_FAMILIES))}), {cfg.real_copies} copies,"
        f" {hours(recorded):.2f} h of features, {100 * cfg.real_share:.0f} % of training crops"
    )

"""``headcast train motion``: synthesise data, train :class:`MotionNet`, export ONNX.

One command from nothing to a shipped model: data synthesis (multi-process), training on
random crops with closure-weighted losses, export with metadata, and a recorded command
line. ``tiny=True`` is the CI smoke version (seconds, same code path).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from pydantic import Field, field_validator
from torch import nn

from headcast.models.audio.features import silence_feature
from headcast.models.config import StrictModel
from headcast.models.training.corpora import CORPORA, GAMES, is_recorded
from headcast.models.training.dataset import (
    TRAIN_VOICES,
    Example,
    hours,
)
from headcast.models.training.export import export_onnx
from headcast.models.training.fotaq import MAX_CLIPS
from headcast.models.training.mixture import real_prompts, recorded_summary, training_examples
from headcast.models.training.net import JAW, N_MOUTH, MotionNet, NetConfig, count_parameters
from headcast.models.training.warp import mask_bands, warp_mel

log = logging.getLogger(__name__)

JAW_WEIGHT = 3.0  # jawOpen matters most for how a mouth reads
CLOSURE_FRAME_WEIGHT = 4.0  # extra coefficient-loss weight inside /p b m/ closures
CLOSURE_POS_WEIGHT = 3.0  # BCE positive weight of the closure head
AUX_WEIGHT = 0.5  # speech and closure BCE relative to the coefficient L1
CHECKPOINT_EVERY = 500  # steps
# Closure-gate candidates (lo, hi) tried on the validation split after training.
GATE_LOS = (0.0, 0.15, 0.3)
GATE_HIS = (0.4, 0.5, 0.6, 0.7, 0.8, 1.0)
# The targets of the evaluation: the gate is chosen to bring the worse of the two, as a
# fraction of its target, as close as it can (a sharper gate closes more /p b m/ but
# also shuts the mouth on some vowels next to them, which costs r).
R_TARGET = 0.85
CLOSURE_TARGET = 0.80


# The default recorded speakers: the Asterisk voices not held out and the two games'
# casts (measured beside a control run, docs/motion.md); KLettres' and Tux Paint's
# speakers train only when asked for ("klettres" / "tuxpaint" in ``speakers``).
TRAIN_SPEAKERS = tuple(
    k for k, c in CORPORA.items() if not c.heldout and c.kind in ("asterisk", *GAMES)
)
KLETTRES_SPEAKERS = tuple(k for k, c in CORPORA.items() if not c.heldout and c.klettres)
TUXPAINT_SPEAKERS = tuple(k for k, c in CORPORA.items() if c.kind == "tuxpaint")
SPEAKER_GROUPS = {"klettres": KLETTRES_SPEAKERS, "tuxpaint": TUXPAINT_SPEAKERS}


class TrainConfig(StrictModel):
    out: Path = Path("models/assets/motion/motion.onnx")
    utts_per_voice: int = Field(default=100, ge=1)
    copies: int = Field(default=2, ge=1)
    voices: int = Field(default=len(TRAIN_VOICES), ge=1, le=len(TRAIN_VOICES))
    steps: int = Field(default=10000, ge=1)
    batch: int = Field(default=32, ge=1)
    crop_frames: int = Field(default=300, ge=20)  # output frames per crop (10 ms each)
    lr: float = Field(default=2e-3, gt=0)
    jaw_l2: float = Field(default=4.0, ge=0)  # squared-error weight on jawOpen, next to L1
    warmup: int = Field(default=100, ge=0)
    channels: int = Field(default=160, ge=8)
    lookahead_ms: int = Field(default=40, ge=0, le=200)
    seed: int = 0
    workers: int = Field(default=2, ge=1)
    threads: int = Field(default=2, ge=1)
    # Training time budget: the cosine schedule runs on max(step / steps, elapsed / budget),
    # so a busy machine gets fewer steps but always a fully annealed model.
    minutes: float = Field(default=30.0, gt=0)  # with the data from nothing: < 60 min
    data_cache: Path | None = None  # reuse synthesised data from here when present
    # Start from the weights of an exported motion model of the same shape (fine-tuning)
    # instead of a random initialisation.
    init: Path | None = None
    checkpoint: Path | None = None  # exported every CHECKPOINT_EVERY steps when set
    # Validation split (training voices only) on which the closure gate is chosen.
    val_utts_per_voice: int = Field(default=6, ge=0)
    # Recorded speech (models/training/real.py): rate-shifted augmented copies of each
    # training session (0: none), the share of training crops drawn from it (so 14
    # minutes of one speaker are not drowned by hours of synthetic voices), and how
    # many aligned training prompts to use (None: all; the smoke run takes a few).
    real_copies: int = Field(default=8, ge=0)
    real_share: float = Field(default=0.4, ge=0, lt=1)
    real_prompts: int | None = Field(default=None, ge=2)
    # Recorded speakers trained on (keys of models/training/corpora.CORPORA; a held-out
    # speaker is refused).
    speakers: tuple[str, ...] = TRAIN_SPEAKERS
    # Flight of the Amazon Queen's clips kept (of ~4500 with text, ~190 minutes); the
    # default keeps the whole command from nothing within an hour on two cores.
    game_clips: int = Field(default=MAX_CLIPS, ge=1)
    # BCE positive weight of the closure head: higher makes it fire more readily on the
    # /p b m/ whose silent gap reverberation and noise have filled.
    closure_pos_weight: float = Field(default=CLOSURE_POS_WEIGHT, gt=0)
    # Vocal-tract-length warp (models/training/warp.py): each crop's mel axis is
    # stretched by a factor drawn from 1 - warp .. 1 + warp (0: off; the shipped models
    # were fine-tuned with 0.15, see docs/motion.md).
    warp: float = Field(default=0.15, ge=0, le=0.3)
    # Frequency masking (models/training/warp.py): two bands of up to this many mel bins
    # per crop hidden behind the frame's mean level (0: off; the shipped live model was
    # fine-tuned with 8, see docs/motion.md).
    freq_mask: int = Field(default=8, ge=0, le=20)
    # Hesitant and whispered synthetic speech (models/training/hesitations.py): filled
    # pauses between utterances of the flite and espeak-ng voices, and espeak-ng's two
    # whisper variants (off by default, see docs/motion.md).
    hesitations: bool = False

    @field_validator("speakers")
    @classmethod
    def _known_speakers(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        v = tuple(dict.fromkeys(k for x in v for k in SPEAKER_GROUPS.get(x, (x,))))
        bad = [k for k in v if k not in CORPORA or CORPORA[k].heldout]
        if bad:
            raise ValueError(
                f"not a training speaker: {', '.join(bad)} (choose from "
                f"{', '.join(TRAIN_SPEAKERS)}, klettres, tuxpaint or one of "
                f"{', '.join(KLETTRES_SPEAKERS + TUXPAINT_SPEAKERS)})"
            )
        return v

    @classmethod
    def tiny(cls, out: Path) -> TrainConfig:
        return cls(out=out, utts_per_voice=3, copies=1, voices=2, steps=6, batch=2,
                   crop_frames=60, channels=16, warmup=0, workers=1, threads=1,
                   val_utts_per_voice=0, real_copies=1, real_prompts=2,
                   speakers=("en", "fr"))  # fmt: skip


class TrainingDataError(ValueError):
    """The data made cannot train a model (e.g. too little of it for one crop)."""


class Crops:
    """Random training crops from padded examples (the pad is the stream-start state)."""

    def __init__(
        self,
        examples: list[Example],
        net_cfg: NetConfig,
        crop: int,
        seed: int,
        real_share: float = 0.0,
        warp: float = 0.0,
        freq_mask: int = 0,
    ) -> None:
        self.pad = net_cfg.receptive_field - 1
        self.la = net_cfg.lookahead_frames
        self.crop = crop
        self.warp = warp
        self.freq_mask = freq_mask
        self.rng = np.random.default_rng(seed)
        pad = np.tile(silence_feature().astype(np.float16), (self.pad, 1))
        self.examples = [e for e in examples if len(e.feats) >= crop + self.la]
        if not self.examples:
            raise TrainingDataError("no example is long enough for one crop")
        self.inputs = [np.concatenate([pad, e.feats]) for e in self.examples]
        self.p = crop_probabilities(
            np.array([len(e.feats) for e in self.examples], np.float64),
            np.array([is_recorded(e.voice) for e in self.examples]),
            real_share,
        )

    def batch(self, n: int) -> dict[str, torch.Tensor]:
        """mel (n, crop + pad, 80); coeffs (n, crop, 16); speech, closure (n, crop)."""
        idx = self.rng.choice(len(self.examples), size=n, p=self.p)
        mel, co, sp, cl = [], [], [], []
        for i in idx:
            e = self.examples[i]
            # Output q sees mel frames <= q and is the target of mel frame q - lookahead.
            q0 = int(self.rng.integers(self.la, len(e.feats) - self.crop + 1))
            x = self.inputs[i][q0 : q0 + self.crop + self.pad]
            if self.warp:
                x = warp_mel(x, self.rng.uniform(1 - self.warp, 1 + self.warp))
            mel.append(mask_bands(x, self.rng, self.freq_mask))
            t0 = q0 - self.la
            co.append(e.coeffs[t0 : t0 + self.crop])
            sp.append(e.speech[t0 : t0 + self.crop])
            cl.append(e.closure[t0 : t0 + self.crop])

        def stack(xs: list[np.ndarray]) -> torch.Tensor:
            return torch.from_numpy(np.stack(xs).astype(np.float32))

        return {"mel": stack(mel), "coeffs": stack(co), "speech": stack(sp), "closure": stack(cl)}


def load_onnx_weights(net: MotionNet, path: Path) -> None:
    """Copy an exported model's weights into ``net`` (the export names its initialisers
    ``net.<parameter>``); TrainingDataError when the file does not fit the network."""
    import onnx
    from onnx import numpy_helper

    try:
        graph = onnx.load(str(path)).graph
    except Exception as exc:  # onnx raises its own untyped errors
        raise TrainingDataError(f"--init {path}: not an ONNX model ({exc})") from exc
    weights = {
        t.name.removeprefix("net."): torch.from_numpy(numpy_helper.to_array(t).copy())
        for t in graph.initializer
    }
    own = net.state_dict()
    bad = [k for k, v in own.items() if k not in weights or weights[k].shape != v.shape]
    if bad:
        raise TrainingDataError(
            f"--init {path}: its weights do not fit this network ({len(bad)} tensors differ, "
            f"e.g. {bad[0]})"
        )
    net.load_state_dict({k: weights[k] for k in own})


def crop_probabilities(lengths: np.ndarray, is_real: np.ndarray, real_share: float) -> np.ndarray:
    """Sampling probability per example: proportional to length within each kind, with
    recorded speech getting ``real_share`` of the draws (when there is any of both).

    lengths: float64 (E,) frames; is_real: bool (E,) -> float64 (E,) summing to 1."""
    p = lengths / lengths.sum()
    if is_real.any() and (~is_real).any() and real_share > 0:
        p = np.where(
            is_real,
            real_share * lengths / lengths[is_real].sum(),
            (1 - real_share) * lengths / lengths[~is_real].sum(),
        )
    return p


def loss_fn(
    net: MotionNet,
    b: dict[str, torch.Tensor],
    jaw_l2: float = 0.0,
    closure_pos_weight: float = CLOSURE_POS_WEIGHT,
) -> tuple[torch.Tensor, dict[str, float]]:
    coeffs, speech_logit, closure_logit, _ = net(b["mel"])
    w_ch = torch.ones(N_MOUTH)
    w_ch[JAW] = JAW_WEIGHT
    w_frame = 1.0 + CLOSURE_FRAME_WEIGHT * b["closure"]
    diff = coeffs - b["coeffs"]
    l1 = (diff.abs() * w_ch).mean(-1) + jaw_l2 * diff[..., JAW] ** 2
    l_coef = (l1 * w_frame).sum() / w_frame.sum()
    bce = nn.functional.binary_cross_entropy_with_logits
    l_speech = bce(speech_logit, b["speech"])
    l_closure = bce(closure_logit, b["closure"], pos_weight=torch.tensor(closure_pos_weight))
    total = l_coef + AUX_WEIGHT * (l_speech + l_closure)
    return total, {"coef": l_coef.item(), "speech": l_speech.item(), "closure": l_closure.item()}


def lr_at(step: int, progress: float, cfg: TrainConfig) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine over ``progress`` 0..1 to 2 %."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def train(cfg: TrainConfig, command: str | None = None) -> Path:
    """Run the whole recipe; returns the written .onnx path."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    t0 = time.monotonic()
    examples = training_examples(cfg)
    t_data = time.monotonic() - t0
    log.info(
        "data: %d sessions, %.2f h of features in %.0f s", len(examples), hours(examples), t_data
    )
    net_cfg = NetConfig(channels=cfg.channels, lookahead_frames=round(cfg.lookahead_ms / 10))
    net = MotionNet(net_cfg)
    if cfg.init is not None:
        load_onnx_weights(net, cfg.init)
        log.info("net: weights from %s", cfg.init)
    log.info(
        "net: %d parameters, receptive field %d frames",
        count_parameters(net),
        net_cfg.receptive_field,
    )
    crops = Crops(
        examples, net_cfg, cfg.crop_frames, cfg.seed, cfg.real_share, cfg.warp, cfg.freq_mask
    )
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    t1 = time.monotonic()
    running: dict[str, float] = {}
    budget_s = 60.0 * cfg.minutes
    step = 0
    while True:
        progress = max(step / cfg.steps, (time.monotonic() - t1) / budget_s)
        if progress >= 1.0:
            break
        lr = lr_at(step, progress, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        loss, parts = loss_fn(net, crops.batch(cfg.batch), cfg.jaw_l2, cfg.closure_pos_weight)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        running = {k: 0.98 * running.get(k, v) + 0.02 * v for k, v in parts.items()}
        if step % 100 == 0:
            log.info(
                "step %d (%.0f %%) lr %.2e %s (%.0f s)", step, 100 * progress, lr,
                " ".join(f"{k} {v:.4f}" for k, v in running.items()), time.monotonic() - t1,
            )  # fmt: skip
        if cfg.checkpoint is not None and step and step % CHECKPOINT_EVERY == 0:
            export_onnx(net, cfg.checkpoint, {"train_steps": str(step)})
            net.train()
        step += 1
    t_train = time.monotonic() - t1
    cmd = command or "headcast train motion"
    t2 = time.monotonic()
    chosen = tune_closure_gate(net, cfg)
    t_tune = time.monotonic() - t2
    extra = {
        "train_command": cmd,
        "train_steps": str(step),
        "train_hours_of_features": f"{hours(examples):.2f}",
        "train_voices": ",".join(str(v) for v in TRAIN_VOICES[: cfg.voices])
        + (",whispers and filled pauses" if cfg.hesitations else ""),
        "train_seconds": f"{t_data + t_train + t_tune:.0f}",
        "train_validation": chosen,
        "train_recorded": recorded_summary(examples, cfg),
        "train_init": "random" if cfg.init is None else f"weights of {cfg.init.name}",
    }
    path = export_onnx(net, cfg.out, extra)
    log.info("wrote %s (data %.0f s, training %.0f s, gate %.0f s)", path, t_data, t_train, t_tune)
    return path


def choose_gate(results: dict[tuple[float, float], dict[str, float]]) -> tuple[float, float]:
    """The gate maximising min(r / R_TARGET, closure / CLOSURE_TARGET); ties go to r."""

    def worst(g: tuple[float, float]) -> tuple[float, float]:
        m = results[g]
        return min(m["r"] / R_TARGET, m["closure"] / CLOSURE_TARGET), m["r"]

    return max(results, key=worst)


def tune_closure_gate(net: MotionNet, cfg: TrainConfig) -> str:
    """Pick the closure-gate mapping on a validation split made from *training* voices.

    Fresh sentences from every third training voice, augmented like a recording, and the
    recorded prompts of the validation families (clean and augmented), scored
    with the evaluation's own metrics for every (lo, hi) candidate; :func:`choose_gate`
    picks one. Sets ``net.cfg``
    and returns a summary for the model metadata ("" when there is no validation split).
    """
    if cfg.val_utts_per_voice == 0:
        return ""
    from headcast.models.motion import load_motion_model
    from headcast.models.training.evaluate import Report, evaluate_sessions, validation_sessions

    sessions = validation_sessions(cfg.val_utts_per_voice, workers=cfg.workers)
    if cfg.real_copies:
        # Recorded prompts of the validation families (never trained on), clean and
        # augmented: the gate must suit a real voice as well as the synthetic ones.
        from headcast.models.training.evaluate import VALIDATION_SEED
        from headcast.models.training.heldout import real_heldout_audio

        val = real_prompts(cfg, "validation")
        for strength in (0.0, 1.0):
            sessions += real_heldout_audio(val, VALIDATION_SEED, strength)
    results: dict[tuple[float, float], dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for lo in GATE_LOS:
            for hi in GATE_HIS:
                net.cfg = dataclasses.replace(net.cfg, closure_gate=(lo, hi))
                path = export_onnx(net, Path(tmp) / "gate.onnx")
                report = evaluate_sessions(
                    load_motion_model(path, provider="cpu"), sessions, closures=False
                )
                results[(lo, hi)] = Report.mean(report.model)
                log.info(
                    "gate (%.2f, %.2f): validation r %.3f closure %.3f silence %.3f", lo, hi,
                    results[(lo, hi)]["r"], results[(lo, hi)]["closure"],
                    results[(lo, hi)]["silence"],
                )  # fmt: skip
    chosen = choose_gate(results)
    net.cfg = dataclasses.replace(net.cfg, closure_gate=chosen)
    m = results[chosen]
    summary = (
        f"closure_gate {chosen[0]:.2f}..{chosen[1]:.2f}: r {m['r']:.3f}, closure "
        f"{m['closure']:.3f}, silence {m['silence']:.3f} on {len(sessions)} validation files"
    )
    log.info("chose %s", summary)
    return summary

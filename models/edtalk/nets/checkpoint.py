"""Loading the published EDTalk checkpoints (torch only).

``torch.load`` of an arbitrary pickle can run code from the file, so files are read
with ``weights_only=True`` first. The upstream training scripts also store their
``argparse.Namespace`` under ``"args"``; that one standard-library class is
allow-listed, since rebuilding it only sets attributes. Anything else that needs
the full unpickler is refused with an explanation unless the caller opts in with
``allow_pickle=True`` (for a file from a source they trust).

Each file wraps the state dict under one key, as the upstream demo scripts read it:
``EDTalk.pt`` and ``EDTalk_lip_pose.pt`` -> ``"gen"``, ``Audio2Lip.pt`` -> ``"audio2lip"``.
"""

from __future__ import annotations

import argparse
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from headcast.models.edtalk.files import AUDIO2LIP_FILE, EDTALK_FILE, LIP_POSE_FILE, WeightsError
from headcast.models.edtalk.nets.audio2lip import Audio2Lip
from headcast.models.edtalk.nets.generator import Generator

STATE_KEYS: dict[str, str] = {EDTALK_FILE: "gen", LIP_POSE_FILE: "gen", AUDIO2LIP_FILE: "audio2lip"}

# torch >= 1.6 writes a zip archive; older torch a bare pickle stream (protocol 2).
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_MAGIC = b"\x80"


class CheckpointError(WeightsError):
    """A checkpoint file that cannot be used; the message says why and what to do."""


def read_checkpoint(path: str | Path, allow_pickle: bool = False) -> dict:
    """The top-level dict of a torch checkpoint, tensors on CPU.

    Raises :class:`CheckpointError` for a missing, empty, truncated or non-torch file,
    and for a file that needs the unsafe unpickler while ``allow_pickle`` is False.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    with path.open("rb") as fh:
        head = fh.read(4)
    if not head:
        raise CheckpointError(f"{path}: the file is empty (an interrupted download?)")
    if head != _ZIP_MAGIC and not head.startswith(_PICKLE_MAGIC):
        raise CheckpointError(
            f"{path}: not a PyTorch checkpoint (starts with {head!r}); a download page "
            "saved instead of the file, or the wrong file?"
        )
    if head == _ZIP_MAGIC and not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: the archive is truncated or corrupt; download it again")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not allow_pickle:
            raise CheckpointError(
                f"{path}: the file holds Python objects beyond tensors, and loading them "
                "runs code stored in the file. Only if you trust where it came from, allow "
                "it explicitly (allow_pickle=True; for the export tool, "
                f"python -m headcast.models.edtalk.nets.export DIR --allow-pickle). Detail: {_first_line(exc)}"
            ) from exc
        obj = _load_unsafe(path)
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        raise CheckpointError(
            f"{path}: cannot be read as a checkpoint (truncated or corrupt? download it "
            f"again): {_first_line(exc)}"
        ) from exc
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict at the top level, got {type(obj).__name__}")
    return obj


def _load_unsafe(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot be unpickled: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = _ANSI.sub("", str(exc)).strip()  # torch colours its hints for terminals
    return text.splitlines()[0] if text else type(exc).__name__


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def state_dict_of(checkpoint: Mapping, key: str, path: str | Path) -> dict[str, torch.Tensor]:
    """The wrapped state dict ``checkpoint[key]``; a readable error names what is there."""
    if key not in checkpoint:
        raise CheckpointError(
            f"{path}: no {key!r} entry (found: {', '.join(map(str, checkpoint)) or 'nothing'}); "
            "is this the right file?"
        )
    state = checkpoint[key]
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise CheckpointError(f"{path}: {key!r} is not a state dict of tensors")
    return dict(state)


def load_into(module: nn.Module, state: Mapping[str, torch.Tensor], path: str | Path) -> None:
    """``load_state_dict(strict=True)`` with the mismatch summarised, not a wall of keys."""
    ours = module.state_dict()
    missing = sorted(set(ours) - set(state))
    unexpected = sorted(set(state) - set(ours))
    wrong = sorted(k for k in set(ours) & set(state) if ours[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape", wrong)):
            if keys:
                more = f" (+{len(keys) - 3} more)" if len(keys) > 3 else ""
                parts.append(f"{len(keys)} {label}: {', '.join(keys[:3])}{more}")
        raise CheckpointError(
            f"{path}: does not fit {type(module).__name__}: {'; '.join(parts)}; is this the "
            "right file?"
        )
    module.load_state_dict(state, strict=True)


def load_generator(path: str | Path, allow_pickle: bool = False) -> Generator:
    """EDTalk.pt (36 coefficients) or EDTalk_lip_pose.pt (26), eval mode, on CPU.

    The variant is told from the state dict (the lip+pose file has no ``direction_exp``),
    the image size from its number of decoder levels.
    """
    state = state_dict_of(read_checkpoint(path, allow_pickle), "gen", path)
    # one ToFlow per decoder level 8..size: the published files are 256 (6 levels)
    levels = len({k.split(".")[2] for k in state if k.startswith("dec.to_flows.")})
    if levels < 1:
        raise CheckpointError(f"{path}: 'gen' has no decoder; is this the right file?")
    gen = Generator(size=2 ** (levels + 2), with_expression="direction_exp.weight" in state)
    load_into(gen, state, path)
    return gen.eval()


def load_audio2lip(path: str | Path, allow_pickle: bool = False) -> Audio2Lip:
    """Audio2Lip.pt, eval mode (BatchNorm uses its running statistics), on CPU."""
    model = Audio2Lip()
    load_into(model, state_dict_of(read_checkpoint(path, allow_pickle), "audio2lip", path), path)
    return model.eval()

"""EDTalk (arXiv 2404.01647) as an optional renderer backend.

Importing this package loads no torch: :func:`create_edtalk_renderer` needs only the
exported ONNX files (``python -m headcast.models.edtalk.nets.export DIR`` makes them, with torch,
from the upstream checkpoints the user downloaded; see docs/edtalk.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from headcast.models.edtalk.files import (
    EXP_WEIGHTS_DIR,
    Precision,
    Variant,
    WeightsError,
    audio2lip_onnx,
    check_weights,
    frame_onnx,
    source_onnx,
)
from headcast.models.onnx_session import Provider, load_error_reason

if TYPE_CHECKING:
    from headcast.models.avatar.pack import AvatarPack
    from headcast.models.edtalk.runtime import Audio2LipRunner, EdtalkRenderer

__all__ = [
    "WeightsError",
    "check_weights",
    "create_audio2lip",
    "create_edtalk_renderer",
]


def create_edtalk_renderer(
    weights_dir: str | Path,
    portrait_image: np.ndarray,
    size: int = 256,
    provider: Provider = "auto",
    precision: Precision = "fp32",
    variant: Variant = "edtalk",
    pack: AvatarPack | None = None,
) -> EdtalkRenderer:
    """A :class:`models.render.base.Renderer` for one portrait (uint8 (H, W, 3) RGB face crop); frames are size x size.

    Raises :class:`WeightsError` naming the missing files when the folder is incomplete.
    """
    from headcast.models.edtalk.coeffs import load_expression_weights
    from headcast.models.edtalk.runtime import EdtalkRenderer
    from headcast.models.emotions import load_presets
    from headcast.models.onnx_session import create_session

    weights_dir = Path(weights_dir).expanduser()
    check_weights(weights_dir, variant, precision, inspect_graphs=False)  # the CLI inspected
    with _exported_graphs(weights_dir):
        return EdtalkRenderer(
            create_session(source_onnx(weights_dir, variant), provider),
            create_session(frame_onnx(weights_dir, variant, precision), provider),
            portrait_image,
            size=size,
            expression_weights=load_expression_weights(weights_dir / EXP_WEIGHTS_DIR),
            presets=load_presets(),
            pack=pack,
        )


def create_audio2lip(weights_dir: str | Path, provider: Provider = "auto") -> Audio2LipRunner:
    """EDTalk's Audio2Lip on ONNX Runtime: speech -> native mouth weights."""
    from headcast.models.edtalk.runtime import Audio2LipRunner
    from headcast.models.onnx_session import create_session

    weights_dir = Path(weights_dir).expanduser()
    path = audio2lip_onnx(weights_dir)
    if not path.is_file():
        raise WeightsError(
            f"missing {path}; export it with `python -m headcast.models.edtalk.nets.export {weights_dir}`"
        )
    with _exported_graphs(weights_dir):
        return Audio2LipRunner(create_session(path, provider))


@contextmanager
def _exported_graphs(weights_dir: Path) -> Iterator[None]:
    """A damaged or mismatched exported graph becomes a WeightsError saying what to do."""
    try:
        yield
    except WeightsError:
        raise
    except Exception as exc:  # ONNX Runtime's untyped load errors, missing metadata keys
        reason = load_error_reason(exc)
        raise WeightsError(
            f"the exported EDTalk graphs in {weights_dir / 'onnx'} are damaged or do not "
            f"match ({reason}); export them again with "
            f"`python -m headcast.models.edtalk.nets.export {weights_dir}`"
        ) from exc

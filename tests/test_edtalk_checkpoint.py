"""Loading checkpoints: strict, safe by default, and readable errors for bad files."""

from __future__ import annotations

import shutil

import pytest
import torch

from headcast.models.edtalk.nets.checkpoint import (
    CheckpointError,
    load_audio2lip,
    load_generator,
    read_checkpoint,
)
from tests.edtalk_support import TEST_SIZE, save_upstream, small_audio2lip, small_generator


class Opaque:
    """Stands for any class a training script might pickle next to the weights."""

    def __init__(self) -> None:
        self.step = 3


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    gen, lip_pose, a2l = small_generator(True), small_generator(False, seed=1), small_audio2lip()
    return {
        "gen": gen,
        "lip_pose": lip_pose,
        "a2l": a2l,
        "EDTalk.pt": save_upstream(root / "EDTalk.pt", "gen", gen),
        "EDTalk_lip_pose.pt": save_upstream(root / "EDTalk_lip_pose.pt", "gen", lip_pose),
        "Audio2Lip.pt": save_upstream(root / "Audio2Lip.pt", "audio2lip", a2l),
        "root": root,
    }


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_generators_load_strict_and_variant_is_detected(files):
    full = load_generator(files["EDTalk.pt"])
    assert full.with_expression and full.num_coeffs == 36 and full.dec.size == TEST_SIZE
    assert _same(full, files["gen"]) and not full.training
    lp = load_generator(files["EDTalk_lip_pose.pt"])
    assert not lp.with_expression and lp.num_coeffs == 26 and _same(lp, files["lip_pose"])


def test_audio2lip_loads_with_batchnorm_statistics(files):
    model = load_audio2lip(files["Audio2Lip.pt"])
    assert _same(model, files["a2l"]) and not model.training


def test_argparse_namespace_is_allowed_without_unsafe_unpickling(files):
    ckpt = read_checkpoint(files["Audio2Lip.pt"])
    assert ckpt["args"].size == TEST_SIZE


def test_arbitrary_objects_need_explicit_opt_in(files, tmp_path):
    path = tmp_path / "with_object.pt"
    torch.save({"audio2lip": files["a2l"].state_dict(), "extra": Opaque()}, path)
    with pytest.raises(CheckpointError, match="allow_pickle=True") as err:
        load_audio2lip(path)
    assert "runs code" in str(err.value) and "--allow-pickle" in str(err.value)
    assert "\x1b[" not in str(err.value), "no terminal colour codes in the message"
    assert _same(load_audio2lip(path, allow_pickle=True), files["a2l"])
    # the export tool: the same refusal as one line and exit 2, then the named opt-in works
    from headcast.models.edtalk.nets.export import main as export_main

    folder = tmp_path / "weights"
    folder.mkdir()
    shutil.copy(path, folder / "Audio2Lip.pt")
    torch.save({"gen": {}}, folder / "EDTalk.pt")
    assert export_main([str(folder)]) == 2
    assert export_main([str(tmp_path / "nowhere")]) == 2


def test_truncated_file(files, tmp_path):
    data = files["Audio2Lip.pt"].read_bytes()
    path = tmp_path / "Audio2Lip.pt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_audio2lip(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"<!DOCTYPE html><html>Google Drive - virus scan warning</html>", "not a PyTorch"),
    ],
)
def test_not_a_checkpoint(tmp_path, content, message):
    path = tmp_path / "EDTalk.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_generator(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_generator(tmp_path / "EDTalk.pt")


def test_wrong_file_for_the_role(files):
    # Audio2Lip.pt has no 'gen' entry; the error names what the file does hold
    with pytest.raises(CheckpointError, match=r"no 'gen' entry \(found: audio2lip, args\)"):
        load_generator(files["Audio2Lip.pt"])


def test_mismatched_state_dict_is_summarised(files, tmp_path):
    state = dict(files["a2l"].state_dict())
    state.pop("mapping.bias")
    state["mapping.weight"] = torch.zeros(10, 512)
    path = tmp_path / "bad.pt"
    torch.save({"audio2lip": state}, path)
    with pytest.raises(
        CheckpointError, match=r"1 missing: mapping\.bias; 1 shape: mapping\.weight"
    ):
        load_audio2lip(path)


def test_legacy_pickle_without_zip_container(files, tmp_path):
    path = tmp_path / "legacy.pt"
    torch.save({"audio2lip": files["a2l"].state_dict()}, path, _use_new_zipfile_serialization=False)
    assert path.read_bytes()[:1] == b"\x80"
    assert _same(load_audio2lip(path), files["a2l"])

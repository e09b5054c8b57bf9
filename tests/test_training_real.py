"""Recorded speech: transcripts, splits, forced alignment, non-speech events, sampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from headcast.models.audio.features import SAMPLE_RATE
from headcast.models.training import ipa, nonspeech, real
from headcast.models.training.corpora import OTHER_PACKAGES
from headcast.models.training.visemes import BILABIAL, SILENCE

HAVE_PROMPTS = not real.missing_packages()
try:
    import pocketsphinx  # noqa: F401

    HAVE_ALIGNER = True
except ImportError:
    HAVE_ALIGNER = False
needs_prompts = pytest.mark.skipif(not HAVE_PROMPTS, reason="asterisk prompt packages missing")
needs_aligner = pytest.mark.skipif(
    not (HAVE_PROMPTS and HAVE_ALIGNER), reason="prompts or pocketsphinx missing"
)


def test_transcripts_normalise_to_dictionary_words() -> None:
    assert real.normalise("Please press 1, or 8 to exit.") == [
        "please", "press", "one", "or", "eight", "to", "exit",
    ]  # fmt: skip
    assert real.normalise("Dial 500 now") == ["dial", "five", "hundred", "now"]
    assert real.normalise("Call-Forward on Busy.") == ["call", "forward", "on", "busy"]
    assert real.normalise("[this is a simple beep tone]") == []
    # Readings that are not one word sequence are refused rather than guessed.
    assert real.normalise("extension 1234") is None
    assert real.normalise("a 28.8 kilobit modem") is None
    assert real.normalise("3D audio enabled") is None
    assert real.number_words(47) == ["forty", "seven"]
    assert real.number_words(110) == ["one", "hundred", "ten"]


def test_splits_are_by_prompt_family() -> None:
    assert real.family("conf-getpin") == "conf" == real.family("conf-full")
    assert real.family("digits/h-7") == "digits/h"
    assert real.family("silence/5") == "silence"
    assert real.split_of("conf-getpin") == "heldout"
    assert real.split_of("confbridge-join") == "train"  # another family
    assert real.split_of("spy-agent") == "validation"
    assert not real.HELDOUT_FAMILIES & real.VALIDATION_FAMILIES


@needs_prompts
def test_every_prompt_family_is_in_exactly_one_split() -> None:
    prompts = real.prompts()
    assert len(prompts) > 500
    by_family: dict[str, set[str]] = {}
    for p in prompts:
        by_family.setdefault(p.family, set()).add(real.split_of(p.name))
    assert all(len(splits) == 1 for splits in by_family.values())
    splits = [real.split_of(p.name) for p in prompts]
    assert 60 < splits.count("heldout") < 150 and splits.count("validation") > 15
    assert any(p.family == "silence" and not p.words for p in prompts)


@needs_aligner
def test_forced_alignment_gives_ordered_phones_and_closes_the_lips() -> None:
    prompt = next(p for p in real.prompts() if p.name == "conf-getpin")
    assert prompt.words == ("please", "enter", "the", "conference", "pin", "number")
    audio = real.load_prompt_audio(prompt)
    # Half a second of quiet room tone after the prompt: the last phone must not
    # stretch over it (the aligner does that on its own; the edge trim undoes it).
    rng = np.random.default_rng(0)
    padded = np.concatenate([audio, 1e-4 * rng.standard_normal(SAMPLE_RATE // 2)]).astype(
        np.float32
    )
    aligned = real.align(prompt, padded)
    assert aligned is not None
    starts = [s for _, s, _ in aligned.phones]
    assert starts == sorted(starts) and all(e > s for _, s, e in aligned.phones)
    speech = [(p, s, e) for p, s, e in aligned.phones if p != "SIL"]
    assert speech[0][0] == "P" and [p for p, _, _ in speech].count("P") == 2  # please, pin
    assert speech[-1][2] <= len(audio) / SAMPLE_RATE + 0.1
    visemes = real.visemes(aligned)
    assert sum(v == BILABIAL for v, _, _ in visemes) == 4  # p, p, m, b
    assert visemes[-1][0] == SILENCE and visemes[-1][2] == pytest.approx(
        len(padded) / SAMPLE_RATE, abs=0.011
    )


needs_other_speakers = pytest.mark.skipif(
    not (HAVE_ALIGNER and not real.missing_packages(OTHER_PACKAGES)),
    reason="other-language prompts or pocketsphinx missing",
)


@needs_other_speakers
def test_other_language_prompts_align_through_espeak_phones() -> None:
    # "Veuillez composer le code d'accès de la conférence."
    prompt = next(p for p in real.prompts("fr") if p.name == "conf-getpin")
    assert prompt.speaker == "asterisk:june" and prompt.key == "fr:conf-getpin"
    assert real.prompt_split(prompt) == "heldout"  # the same families as in English
    audio = real.load_prompt_audio(prompt)
    aligned = real.align(prompt, audio)
    assert aligned is not None and aligned.corpus == "fr"
    speech = [p for p, _, _ in aligned.phones if p != "SIL"]
    assert speech == [p for w in prompt.words for p in ipa.word_phones(w).split()]
    # The lips close on the /p/ of "composer" (a nasal vowel, no /m/, before it) where
    # the sound dips between vowels.
    hop = SAMPLE_RATE // 100
    db = 10 * np.log10(np.mean(audio[: len(audio) // hop * hop].reshape(-1, hop) ** 2, 1) + 1e-12)
    level: dict[str, list[float]] = {"P": [], "vowel": []}
    for ph, s, e in aligned.phones:
        key = "P" if ph == "P" else "vowel" if ph in ("AA", "AO", "OW", "EY", "EH") else None
        if key:
            level[key].append(db[int(s * 100) : max(int(e * 100), int(s * 100) + 1)].min())
    assert len(level["P"]) == 1
    assert level["P"][0] < np.median(level["vowel"]) - 10
    # The Russian speaker is held out whole, for evaluation.
    ru = real.prompts("ru")
    assert ru and {real.prompt_split(p) for p in ru} == {"speaker"}


def test_klettres_lists_name_and_text_of_each_recording(tmp_path: Path) -> None:
    from headcast.models.training import corpora

    xml = tmp_path / "sounds.xml"
    rows = "".join(f'<sound name="B{i:03d}" file="xx/syllab/b{i:03d}.ogg" />\n' for i in range(300))
    xml.write_text(f"<klettres><syllables>\n{rows}</syllables></klettres>", "utf-8")
    texts = corpora.klettres_texts(xml)
    assert len(texts) == corpora.KLETTRES_MAX  # spread evenly over a long list
    assert texts["syllab/b000"] == "b000" and texts["syllab/b298"] == "b298"
    # English and British English speakers are held out whole; the rest train.
    from headcast.models.training.train import KLETTRES_SPEAKERS, TRAIN_SPEAKERS, TrainConfig

    assert set(corpora.ENGLISH_KLETTRES) <= {k for k, c in corpora.CORPORA.items() if c.heldout}
    # KLettres only when asked for; the games' casts by default.
    assert TRAIN_SPEAKERS == ("en", "es", "fr", "it", "drascula", "fotaq")
    assert len(KLETTRES_SPEAKERS) == 16 and "kl-es" in KLETTRES_SPEAKERS
    assert not set(corpora.ENGLISH_KLETTRES) & set(KLETTRES_SPEAKERS)
    asked = TrainConfig(speakers=("en", "klettres", "kl-es")).speakers
    assert asked == ("en", *KLETTRES_SPEAKERS)
    for held in (corpora.HELDOUT_SPEAKER, "kl-en_GB"):
        with pytest.raises(ValueError, match="not a training speaker"):
            TrainConfig(speakers=("en", held))


def test_tux_paint_pairs_each_recording_with_its_languages_line(tmp_path: Path) -> None:
    from headcast.models.training import corpora
    from headcast.models.training.train import TUXPAINT_SPEAKERS, TrainConfig

    birds = tmp_path / "animals" / "birds"
    birds.mkdir(parents=True)
    (birds / "owl.txt").write_text("An owl.\nro.utf8=O bufniță.|\nbg.utf8=Сова.\n", "utf-8")
    (birds / "owl_desc_ro.ogg").write_bytes(b"")
    (birds / "owl_desc_bg.ogg").write_bytes(b"")
    (birds / "crow.txt").write_text("A crow.\nbg.utf8=Врана.\n", "utf-8")
    (birds / "crow_desc_ro.ogg").write_bytes(b"")  # no Romanian line: left out
    (birds / "lark_desc_ro.ogg").write_bytes(b"")  # no text file: left out
    assert corpora.tuxpaint_texts(tmp_path, "ro") == {"animals/birds/owl_desc_ro": "O bufniță."}
    assert corpora.tuxpaint_texts(tmp_path, "bg") == {"animals/birds/owl_desc_bg": "Сова."}
    tp = corpora.CORPORA["tp-ro"]
    assert tp.kind == "tuxpaint" and tp.suffix == ".ogg" and not tp.heldout
    assert tp.packages == (corpora.TUXPAINT_PACKAGE,)
    assert len(TUXPAINT_SPEAKERS) == 8 and "tp-ru" not in corpora.CORPORA  # held-out language
    assert TrainConfig(speakers=("en", "tuxpaint")).speakers == ("en", *TUXPAINT_SPEAKERS)


@pytest.mark.skipif(
    not (HAVE_ALIGNER and not real.missing_packages(("klettres-data",))),
    reason="klettres-data or pocketsphinx missing",
)
def test_klettres_syllables_align_with_the_lips_shut_in_the_dip() -> None:
    prompt = next(p for p in real.prompts("kl-es") if p.name == "syllab/ba")
    assert prompt.speaker == "klettres:es" and real.prompt_split(prompt) == "train"
    audio = real.load_prompt_audio(prompt)
    aligned = real.align(prompt, audio)
    assert aligned is not None
    speech = [(p, s, e) for p, s, e in aligned.phones if p != "SIL"]
    assert [p for p, _, _ in speech] == ["B", "AA"]
    hop = SAMPLE_RATE // 100
    db = 10 * np.log10(np.mean(audio[: len(audio) // hop * hop].reshape(-1, hop) ** 2, 1) + 1e-12)
    (_, bs, be), (_, vs, ve) = speech
    # the (voiced, so not silent) closure sits well under the vowel's loud part
    closure = db[int(bs * 100) : int(be * 100) + 1].min()
    assert closure < np.percentile(db[int(vs * 100) : int(ve * 100)], 90) - 10
    assert {real.prompt_split(p) for p in real.prompts("kl-en_GB")} == {"speaker"}


@needs_aligner
def test_out_of_dictionary_words_are_not_aligned() -> None:
    prompt = real.Prompt("added", ("qxzvbnw",))
    assert real.align(prompt, np.zeros(SAMPLE_RATE, np.float32)) is None


def test_alignment_cache_is_reused(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    calls = []

    def fake_align(p: real.Prompt) -> real.Prompt:
        calls.append(p.name)
        return real.Prompt(p.name, p.words, (("AA", 0.0, 0.5),))

    monkeypatch.setattr(real, "_align_job", fake_align)
    todo = [real.Prompt("a", ("x",)), real.Prompt("b", ("y",))]
    cache = tmp_path / "al.json"
    first = real.aligned(todo, workers=1, cache=cache)
    again = real.aligned(todo, workers=1, cache=cache)
    assert calls == ["a", "b"] and first == again and again[0].phones == (("AA", 0.0, 0.5),)
    # A changed transcript is aligned anew.
    real.aligned([real.Prompt("a", ("z",))], workers=1, cache=cache)
    assert calls == ["a", "b", "a"]


def test_events_only_touch_pauses_and_keep_their_labels() -> None:
    rng = np.random.default_rng(3)
    audio = np.zeros(3 * SAMPLE_RATE, np.float32)
    audio[SAMPLE_RATE : 2 * SAMPLE_RATE] = 0.1 * rng.standard_normal(SAMPLE_RATE)
    segs = [(SILENCE, 0.0, 1.0), ("AA", 1.0, 2.0), (SILENCE, 2.0, 3.0)]
    music = [nonspeech.event("breath", 4 * SAMPLE_RATE, rng, ())]
    for kind in nonspeech.EVENT_KINDS:
        out = nonspeech.fill_pauses(audio, segs, rng, 1.0, music, kinds=(kind,))
        changed = np.flatnonzero(np.abs(out - audio) > 0)
        assert len(changed), kind
        speech = (changed >= SAMPLE_RATE) & (changed < 2 * SAMPLE_RATE)
        assert not speech.any(), kind
        edge = int(nonspeech.EDGE_S * SAMPLE_RATE)
        assert changed.min() >= edge and changed.max() < 3 * SAMPLE_RATE - edge + 1, kind
    # prob 0 changes nothing
    assert np.array_equal(nonspeech.fill_pauses(audio, segs, rng, 0.0, music), audio)


def test_music_bed_sits_at_the_asked_level() -> None:
    rng = np.random.default_rng(1)
    speech = (0.1 * rng.standard_normal(2 * SAMPLE_RATE)).astype(np.float32)
    music = [nonspeech.event("tone", 5 * SAMPLE_RATE, rng, ())]
    out = nonspeech.music_bed(speech, rng, music)
    snr = 10 * np.log10(np.mean(speech**2) / np.mean((out - speech) ** 2))
    assert nonspeech.MUSIC_BED_SNR_DB[0] - 0.5 < snr < nonspeech.MUSIC_BED_SNR_DB[1] + 0.5


@needs_aligner
def test_recorded_sessions_label_speech_where_it_is_loud(monkeypatch: pytest.MonkeyPatch) -> None:
    from headcast.models.training.dataset import build_real
    from headcast.models.training.heldout import real_heldout_audio

    monkeypatch.setattr(real, "music_tracks", lambda heldout: [])  # decoding them takes seconds
    todo = [p for p in real.prompts() if real.split_of(p.name) == "train" and p.words][:4]
    prompts = real.aligned(todo, workers=1)
    assert len(prompts) == 4
    examples = build_real(prompts, copies=1, seed=0, workers=1, clean_prob=1.0)
    assert examples and all(e.voice == "asterisk:allison" for e in examples)
    for e in examples:
        assert len(e.feats) == len(e.coeffs) == len(e.speech)
        level = e.feats.astype(np.float32).mean(1)
        assert level[e.speech > 0.5].mean() > level[e.speech < 0.5].mean() + 0.3
    held = [p for p in real.prompts() if p.name in ("conf-getpin", "conf-full", "dir-nomatch")]
    sessions = real_heldout_audio(real.aligned(held, workers=1), seed=1, strength=0.0)
    names = {p.name for p in held}
    assert len(names) == 3
    assert sessions and all(n.split("+")[0] in names for n, _, _ in sessions)


def test_recorded_speech_gets_its_share_of_training_crops() -> None:
    pytest.importorskip("torch")
    from headcast.models.training.train import crop_probabilities

    lengths = np.array([1000.0, 3000.0, 500.0, 500.0])
    is_real = np.array([False, False, True, True])
    p = crop_probabilities(lengths, is_real, 0.3)
    assert p.sum() == pytest.approx(1.0)
    assert p[is_real].sum() == pytest.approx(0.3) and p[2] == pytest.approx(p[3])
    assert p[1] == pytest.approx(3 * p[0])  # by length within a kind
    # Without recorded speech (or with a share of 0) it is plain length weighting.
    assert np.allclose(crop_probabilities(lengths, np.zeros(4, bool), 0.3), lengths / 5000)
    assert np.allclose(crop_probabilities(lengths, is_real, 0.0), lengths / 5000)


@pytest.mark.skipif(
    not (HAVE_ALIGNER and not real.missing_packages(("klettres-data", *real.PACKAGES))),
    reason="recorded-speech packages or pocketsphinx missing",
)
def test_klettres_speakers_are_cached_apart_from_the_asterisk_voices(tmp_path: Path) -> None:
    from headcast.models.training.mixture import DATA_VERSION, training_examples
    from headcast.models.training.train import TrainConfig

    cfg = TrainConfig.tiny(tmp_path / "m.onnx").model_copy(
        update={"speakers": ("en", "kl-es"), "data_cache": tmp_path}
    )
    examples = training_examples(cfg)
    assert {e.voice for e in examples} >= {"asterisk:allison", "klettres:es"}
    names = sorted(p.name for p in tmp_path.glob("recorded-*.npz"))
    tail = f"r1-2-s0-d{DATA_VERSION}.npz"
    assert names == [f"recorded-en-{tail}", f"recorded-kl-es-{tail}"]


@pytest.mark.skipif(
    not (HAVE_ALIGNER and not real.missing_packages()), reason="packages or pocketsphinx missing"
)
def test_aligning_in_worker_processes_ends_them_quietly(capfd: pytest.CaptureFixture[str]) -> None:
    """Under the CLI's SIGTERM handler (an interrupt), the alignment pool's workers end
    without a traceback each."""
    import signal

    from headcast.server import cli

    todo = [p for p in real.prompts("en") if p.words][:8]
    before = signal.signal(signal.SIGTERM, cli._interrupt)
    try:
        done = real.aligned(todo, workers=2)
    finally:
        signal.signal(signal.SIGTERM, before)
    assert len(done) >= 6
    err = capfd.readouterr().err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err

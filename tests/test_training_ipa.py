"""Pronunciations of the other-language recorded speakers (models/training/ipa.py)."""

from __future__ import annotations

import shutil

import pytest

from headcast.models.training import ipa


def test_ipa_phonemes_map_to_english_phones_keeping_lips_and_rounding() -> None:
    # Stress, length, nasalisation and palatalisation marks go; geminates merge.
    assert ipa.phones_of("k_ɔ̃_p_o_z_ˈe") == ["K", "AO", "P", "OW", "Z", "EY"]
    assert ipa.phones_of("a_tː_t_i_v_ˈa_t_o") == ["AA", "T", "IY", "V", "AA", "T", "OW"]
    assert ipa.phones_of("pʲ_i_r_ˈɑ") == ["P", "IY", "R", "AA"]
    # Front rounded vowels stay rounded; clusters written as one phoneme split.
    assert ipa.phones_of("n_y_m_e_ʁ_ˈo") == ["N", "UW", "M", "EY", "R", "OW"]
    assert ipa.phones_of("ts_a") == ["T", "S", "AA"]
    # A foreign word inside a sentence carries espeak-ng's language switches.
    assert ipa.phones_of("(en)wˈɜːld(fr)") == ["W", "ER", "L", "D"]
    assert ipa.phones_of("ʘ_a") is None  # a click has no English phone


def test_pseudo_words_round_trip_to_phones() -> None:
    word = ipa.PREFIX + "p_r_eh"
    assert ipa.word_phones(word) == "P R EH"
    assert ipa.word_phones("press") is None  # a dictionary word


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng missing")
def test_espeak_reads_each_language_into_pseudo_words() -> None:
    fr = ipa.pseudo_words("Composez votre numéro.", "fr")
    assert fr is not None and len(fr) == 3 and fr[0].startswith(ipa.PREFIX + "k_")
    assert "m" in ipa.word_phones(fr[2]).lower().split()  # numéro keeps its /m/
    it = ipa.pseudo_words("Benvenuti 12", "it")  # numbers read in the language
    assert it is not None and len(it) >= 2
    assert ipa.pseudo_words("", "ru") is None

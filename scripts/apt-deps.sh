#!/usr/bin/env bash
# Debian packages headcast needs. Usage: scripts/apt-deps.sh serve|test
set -euo pipefail
role=${1:-serve}
# flite and espeak-ng: the built-in text-to-speech voices (`say`, `render --text`)
pkgs=(python3 python3-venv python3-dev build-essential flite espeak-ng)
if [[ $role == test ]]; then
  # speech synthesis with phone timings and recorded speech with transcripts plus
  # music beds (audio-to-motion training and evaluation data), the browser the client
  # tests drive.
  pkgs+=(flite festival festvox-kallpc16k festvox-us-slt-hts espeak-ng libespeak-ng1
         asterisk-core-sounds-en-g722 asterisk-core-sounds-en asterisk-moh-opsound-wav
         asterisk-core-sounds-es-g722 asterisk-core-sounds-es asterisk-core-sounds-fr-g722
         asterisk-core-sounds-fr asterisk-core-sounds-it-g722 asterisk-core-sounds-it
         asterisk-core-sounds-ru-g722 asterisk-core-sounds-ru ktuberling-data klettres-data
         chromium chromium-driver fonts-dejavu-core)
fi
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

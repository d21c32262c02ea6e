#!/usr/bin/env bash
# Installs the Debian packages rtdstft needs that are not there yet: PortAudio (sounddevice's wheel
# has none on Linux), PulseAudio with its ALSA plugin (the tests' virtual sound card), Xvfb and the
# xcb libraries Qt's xcb platform plugin loads. Does nothing when all are present or when not root.
set -euo pipefail
pkgs=(libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins xvfb xauth
      libxcb-icccm4 libxcb-keysyms1 libxcb-xkb1 libxkbcommon-x11-0 libxcb-xinerama0 libxcb-randr0
      libxcb-render-util0 libxcb-image0 libxcb-shape0 libxcb-cursor0 libegl1 libgl1 libfontconfig1
      libdbus-1-3)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "system-deps: missing Debian packages: ${missing[*]} (run as root, or install them yourself)" >&2
    exit 0
fi
echo "system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

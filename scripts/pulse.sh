#!/usr/bin/env bash
# start | stop a private PulseAudio daemon whose null sink `vsink` is the default output and whose
# monitor is the default capture device, so that tests play into a real PortAudio stream and record
# what they played. `start` prints `export PULSE_SERVER=...` for eval.
set -uo pipefail
D=${RTDSTFT_PULSE_DIR:-/tmp/rtdstft-audio}
case "${1:-}" in
start)
    command -v pulseaudio >/dev/null || { echo "pulse.sh: pulseaudio is not installed" >&2; exit 0; }
    mkdir -p "$D/run" "$D/home"; chmod 700 "$D/run"
    cat > "$D/default.pa" <<PA
load-module module-native-protocol-unix auth-anonymous=1 socket=$D/run/native
load-module module-null-sink sink_name=vsink rate=48000 channels=2
set-default-sink vsink
set-default-source vsink.monitor
PA
    export PULSE_SERVER=unix:$D/run/native
    if ! pactl info >/dev/null 2>&1; then
        HOME=$D/home XDG_RUNTIME_DIR=$D/run pulseaudio -n -F "$D/default.pa" --daemonize=yes \
            --exit-idle-time=-1 --log-target=file:"$D/pulse.log" >&2 || true
        for _ in $(seq 50); do pactl info >/dev/null 2>&1 && break; sleep 0.1; done
    fi
    if pactl info >/dev/null 2>&1; then
        # Keeps the monitor source awake: without a reader the first capture can stall for a second.
        if [ ! -s "$D/parec.pid" ] || ! kill -0 "$(cat "$D/parec.pid")" 2>/dev/null; then
            setsid parec --latency-msec=20 -d vsink.monitor >/dev/null 2>&1 < /dev/null &
            echo $! > "$D/parec.pid"
        fi
        echo "export PULSE_SERVER=$PULSE_SERVER"
    else
        echo "pulse.sh: PulseAudio did not start (see $D/pulse.log)" >&2
    fi
    ;;
stop)
    export PULSE_SERVER=unix:$D/run/native
    [ -s "$D/parec.pid" ] && kill "$(cat "$D/parec.pid")" 2>/dev/null; rm -f "$D/parec.pid"
    pactl exit >/dev/null 2>&1 || true
    ;;
*) echo "usage: pulse.sh start|stop" >&2; exit 2 ;;
esac

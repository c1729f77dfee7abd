#!/bin/bash
# Pacemaker's monitor_hook for a failstop-protected service run by the
# `anything` agent (ocf:heartbeat:anything):
#
#   check_heartbeat.sh ADDR PORT [GRACE]
#
# Exits 0 when the service's heartbeat thread, at ADDR:PORT, answers
# HEALTHY; 1 when it answers anything else (UNHEALTHY: failstop gave a
# verdict, and the `unhealthy` action keeps the process for inspection),
# refuses the connection, or says nothing within a second. The heartbeat
# is a thread of its own: it answers while the serving loop works slowly,
# so only failstop's verdict (or the end of the process) fails the monitor.
#
# The agent runs its monitor, and so this hook, right after starting the
# program, before the program listens: while the process (the agent's
# pidfile parameter, OCF_RESKEY_pidfile) is younger than GRACE seconds
# (default 10), a refused connection is tried again every 0.1 s. After
# that a refused connection fails the monitor at once (the agent checks
# that the process exists before it runs the hook: a process that exists
# and does not answer is ending, or cannot end).
set -u
addr=${1:?usage: check_heartbeat.sh ADDR PORT [GRACE]}
port=${2:?usage: check_heartbeat.sh ADDR PORT [GRACE]}
grace=${3:-10}
pid=$(cat "${OCF_RESKEY_pidfile:?set the pidfile parameter of the anything agent}") || exit 1
while ! exec 3<>"/dev/tcp/$addr/$port"; do
    age=$(ps -o etimes= -p "$pid") || exit 1
    [ "$age" -lt "$grace" ] || exit 1
    sleep 0.1
done 2>/dev/null
IFS= read -r -t 1 answer <&3 || exit 1
[ "$answer" = HEALTHY ]

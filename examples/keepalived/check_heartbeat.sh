#!/bin/bash
# keepalived's check of a failstop-protected service (a vrrp_script):
#
#   check_heartbeat.sh ADDR PORT
#
# Exits 0 when the service's heartbeat thread, at ADDR:PORT, answers
# HEALTHY; 1 when it answers anything else (UNHEALTHY: failstop gave a
# verdict, and the `unhealthy` action keeps the process for inspection),
# refuses the connection (the process has ended, `abort` or `exit:N`), or
# says nothing within a second. The heartbeat is a thread of its own, so it
# answers while the serving loop works slowly: only failstop's verdict (or
# the end of the process) turns the answer into a failure.
set -u
addr=${1:?usage: check_heartbeat.sh ADDR PORT}
port=${2:?usage: check_heartbeat.sh ADDR PORT}
exec 3<>"/dev/tcp/$addr/$port" || exit 1
IFS= read -r -t 1 answer <&3 || exit 1
[ "$answer" = HEALTHY ]

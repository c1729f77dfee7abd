#!/bin/sh
# The cluster's configuration, loaded once on either node when both are
# online (`crm_mon -1` lists them): fencing, the service, its address.
# The service is examples/c/echo_server.c, installed on both nodes as
# /usr/local/bin/echo_server; the monitor hook is check_heartbeat.sh (this
# directory) in /usr/local/bin; the fence agent is fence_netns in /usr/sbin.
set -eu

# Fencing on: a node where a resource cannot be stopped is fenced before the
# resource starts elsewhere (a stop failure's default, on-fail=fence).
crm_attribute --type crm_config --name stonith-enabled --update true
# `off`, not `reboot`: nothing brings a fenced node back by itself.
crm_attribute --type crm_config --name stonith-action --update off
# A fence that has not succeeded within 30 s has failed (the lab's agent
# takes a fraction of a second; a BMC or a hypervisor may take seconds).
crm_attribute --type crm_config --name stonith-timeout --update 30s
# A resource stays where it runs once it moved (no failback).
crm_attribute --type rsc_defaults --name resource-stickiness --update 100

cibadmin --create --scope resources --xml-text '
<primitive id="fence_nodes" class="stonith" type="fence_netns">
  <instance_attributes id="fence_nodes-params">
    <nvpair id="fence_nodes-hosts" name="pcmk_host_list" value="node-a node-b"/>
  </instance_attributes>
  <operations>
    <op id="fence_nodes-monitor" name="monitor" interval="60s"/>
  </operations>
</primitive>'

# The service: `anything` runs binfile with cmdline_options through a
# shell (as root), so env sets failstop's budgets and the node's name is the
# one Pacemaker gives the agent. --allow-faults lets the test inject its
# faults: leave it out in production. migration-threshold=1: one failed
# monitor moves the service (the default restarts it in place first).
# Monitor every second (the hook's answer is cheap; its 10 s timeout only
# guards against a loaded node: the hook fails within a second on its own);
# a stop waits 2 s after SIGTERM, then sends SIGKILL; a stop that cannot
# end the process fails after 8 s, and the node is fenced.
# shellcheck disable=SC2016 # $OCF_RESKEY_CRM_meta_on_node is the agent's to expand
cibadmin --create --scope resources --xml-text '
<primitive id="echo" class="ocf" provider="heartbeat" type="anything">
  <instance_attributes id="echo-params">
    <nvpair id="echo-binfile" name="binfile" value="/usr/bin/env"/>
    <nvpair id="echo-cmdline" name="cmdline_options" value="FAILSTOP_CPU_BUDGET_MS=500 FAILSTOP_STALL_BUDGET_MS=1500 /usr/local/bin/echo_server --allow-faults --bind 0.0.0.0 --heartbeat 7001 --name $OCF_RESKEY_CRM_meta_on_node 7000"/>
    <nvpair id="echo-pidfile" name="pidfile" value="/run/echo_server.pid"/>
    <nvpair id="echo-logfile" name="logfile" value="/var/log/pacemaker/echo_server.log"/>
    <nvpair id="echo-errlogfile" name="errlogfile" value="/var/log/pacemaker/echo_server.err"/>
    <nvpair id="echo-stop-timeout" name="stop_timeout" value="2"/>
    <nvpair id="echo-hook" name="monitor_hook" value="/usr/local/bin/check_heartbeat.sh 127.0.0.1 7001"/>
  </instance_attributes>
  <meta_attributes id="echo-meta">
    <nvpair id="echo-migration-threshold" name="migration-threshold" value="1"/>
  </meta_attributes>
  <operations>
    <op id="echo-monitor" name="monitor" interval="1s" timeout="10s"/>
    <op id="echo-start" name="start" interval="0s" timeout="20s"/>
    <op id="echo-stop" name="stop" interval="0s" timeout="8s"/>
  </operations>
</primitive>'

# Its address, on the node that runs it, started after it.
cibadmin --create --scope resources --xml-text '
<primitive id="echo_ip" class="ocf" provider="heartbeat" type="IPaddr2">
  <instance_attributes id="echo_ip-params">
    <nvpair id="echo_ip-ip" name="ip" value="10.231.20.100"/>
    <nvpair id="echo_ip-netmask" name="cidr_netmask" value="24"/>
  </instance_attributes>
  <operations>
    <op id="echo_ip-monitor" name="monitor" interval="5s" timeout="10s"/>
  </operations>
</primitive>'
cibadmin --create --scope constraints --xml-text '
<rsc_colocation id="echo_ip-with-echo" rsc="echo_ip" with-rsc="echo" score="INFINITY"/>'
cibadmin --create --scope constraints --xml-text '
<rsc_order id="echo-then-echo_ip" first="echo" then="echo_ip" kind="Mandatory"/>'

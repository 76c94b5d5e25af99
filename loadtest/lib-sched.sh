# Sourced by the latency benchmarks: says how the kernel schedules PostgreSQL here.
# PostgreSQL makes every backend a session of its own (setsid), and with
# kernel.sched_autogroup_enabled=1 each session is its own scheduling group: on a
# busy 2-core machine single backends were then seen waiting on the run queue for
# up to 1.7 s (`perf sched latency`), which is the p99/max tail of these
# benchmarks, not the node (README "Benchmarks", "The page's p99 tail").
# Tail figures are taken with `sysctl kernel.sched_autogroup_enabled=0`.
sched_note() {
  local ag=/proc/sys/kernel/sched_autogroup_enabled
  if [[ -r $ag && $(cat "$ag") == 1 ]]; then
    echo "note: kernel.sched_autogroup_enabled=1: PostgreSQL backends are scheduled as groups of their own; p99/max include run-queue waits of seconds on a busy machine (sysctl kernel.sched_autogroup_enabled=0 for tail figures)"
  else
    echo "kernel.sched_autogroup_enabled=$(cat "$ag" 2>/dev/null || echo n/a)"
  fi
}

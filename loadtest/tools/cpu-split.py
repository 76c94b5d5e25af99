#!/usr/bin/env python3
"""CPU split for loadtest/jobs.sh, every 2 s, in cores: the benchmark's PostgreSQL (benchpg),
the worker processes, the driver, other PostgreSQL clusters (pg), the rest (other, new
processes not counted), and the machine's busy cores. Usage: cpu-split.py OUT."""
import os, sys, time
out = open(sys.argv[1] if len(sys.argv) > 1 else '/tmp/cpu-split.txt', 'w', buffering=1)
def snap():
    d = {}
    for p in os.listdir('/proc'):
        if not p.isdigit(): continue
        try:
            c = open(f'/proc/{p}/cmdline','rb').read().replace(b'\0', b' ').decode(errors='replace')
            s = open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()
        except OSError: continue
        k = 'worker' if 'jobs worker' in c else 'driver' if 'jobs run' in c else 'pg' if 'postgres' in c else 'other'
        if k == 'pg':
            pp = s[1]
            try: pc = open(f'/proc/{pp}/cmdline','rb').read()
            except OSError: pc = b''
            if b'meridian-jobs' in c.encode() or b'meridian-jobs' in pc: k = 'benchpg'
        d[p] = (k, int(s[11]) + int(s[12]))
    return d
def cpu():
    f = open('/proc/stat').readline().split()[1:]
    v = list(map(int, f)); return sum(v[:8]), v[3] + v[4]
prev, (t0, i0) = snap(), cpu()
while True:
    time.sleep(2)
    cur, (t1, i1) = snap(), cpu()
    agg = {}
    for p, (k, t) in cur.items():
        agg[k] = agg.get(k, 0) + t - (prev[p][1] if p in prev else 0 if k != 'other' else t)
    busy = (t1 - t0) - (i1 - i0)
    out.write(f"{time.strftime('%H:%M:%S')} cores_busy={busy/ (t1-t0) * 2:.2f} " + ' '.join(f"{k}={v/200:.2f}" for k, v in sorted(agg.items())) + f" load={open('/proc/loadavg').read().split()[0]}\n")
    prev, t0, i0 = cur, t1, i1

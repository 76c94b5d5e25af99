# Probe of one Radicale under concurrent PROPFINDs (issue 17: why the active
# health check lost checks at 64 at once). Starts Radicale with htpasswd auth
# (plain, delay 0) and `max_connections` as given, sends TOTAL PROPFINDs with
# CONCURRENCY at once (new connection each, 3 s connect bound, 10 s read bound,
# like Meridian's client), prints the outcomes and latencies. Bounded: TOTAL
# requests to 127.0.0.1 only. Compare `nstat -az TcpExtListenOverflows` before
# and after.
# Usage: python3 radicale-probe.py RADICALE_BIN MAX_CONNECTIONS CONCURRENCY TOTAL
#   (RADICALE_BIN: target/tmp/pytools/bin/radicale or target/tmp/radicale/bin/radicale)
import socket, threading, time, sys, subprocess, os, tempfile
py = sys.argv[1]
maxc = sys.argv[2]; conc = int(sys.argv[3]); total = int(sys.argv[4])
d = tempfile.mkdtemp()
os.makedirs(d+"/col")
open(d+"/users","w").write("alice:pw\n")
s=socket.socket(); s.bind(("127.0.0.1",0)); port=s.getsockname()[1]; s.close()
open(d+"/config","w").write(f"[server]\nhosts = 127.0.0.1:{port}\nmax_connections = {maxc}\n[auth]\ntype = htpasswd\nhtpasswd_filename = {d}/users\nhtpasswd_encryption = plain\ndelay = 0\n[storage]\nfilesystem_folder = {d}/col\n[rights]\ntype = owner_only\n[logging]\nlevel = warning\n")
p = subprocess.Popen([py,"--config",d+"/config"],stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)
while True:
    try: socket.create_connection(("127.0.0.1",port)).close(); break
    except OSError: time.sleep(0.05)
import base64, shutil
auth = base64.b64encode(b"alice:pw").decode()
body = b'<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:resourcetype/></d:prop></d:propfind>'
req = (f"PROPFIND /alice/ HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nDepth: 0\r\nContent-Type: application/xml\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()+body
res = {}; lock = threading.Lock(); idx=[0]; lat=[]
def worker():
    while True:
        with lock:
            if idx[0] >= total: return
            idx[0]+=1
        t=time.time()
        try:
            c = socket.create_connection(("127.0.0.1",port), timeout=3)
            c.settimeout(10)
            c.sendall(req)
            data=b""
            while True:
                b=c.recv(65536)
                if not b: break
                data+=b
            k = data.split(b" ",2)[1].decode() if data else "empty"
        except socket.timeout as e: k="timeout"
        except OSError as e: k=type(e).__name__
        with lock:
            res[k]=res.get(k,0)+1; lat.append(time.time()-t)
t0=time.time()
ts=[threading.Thread(target=worker) for _ in range(conc)]
[t.start() for t in ts]; [t.join() for t in ts]
lat.sort()
print(f"max_connections={maxc} concurrency={conc} n={total}: {time.time()-t0:.2f}s {res} p50={lat[len(lat)//2]*1000:.0f}ms max={lat[-1]*1000:.0f}ms")
p.kill()
p.wait()
shutil.rmtree(d)

# Every DNS query from a new source port (as resolvers send them), paced
# at RATE/s for SECS, from 127.77.5.5: counts answers and losses (no answer
# within 2 s) and samples the proxy's open descriptors every 5,000 queries.
#   python3 benches/dns/new_ports.py IP PORT RATE SECS PROXY_PID
import os, selectors, socket, struct, sys, time
target = (sys.argv[1], int(sys.argv[2])); rate = int(sys.argv[3]); secs = int(sys.argv[4]); pid = sys.argv[5]
q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\x01a\x03svc\x04test\x00" + struct.pack(">HH", 1, 1)
sel = selectors.DefaultSelector(); sent = got = 0; pending = {}; maxfds = 0
start = time.monotonic(); end = start + secs
while True:
    now = time.monotonic()
    due = int((min(now, end) - start) * rate)
    while sent < due:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.setblocking(False)
        s.bind(("127.77.5.5", 0)); s.sendto(q, target); sel.register(s, selectors.EVENT_READ); pending[s] = now; sent += 1
    for key, _ in sel.select(0.001):
        s = key.fileobj
        try: s.recv(512); got += 1
        except OSError: pass
        sel.unregister(s); s.close(); del pending[s]
    if sent % 5000 == 0:
        maxfds = max(maxfds, len(os.listdir(f"/proc/{pid}/fd")))
    for s, t in list(pending.items()):
        if now - t > 2: sel.unregister(s); s.close(); del pending[s]
    if now > end and not pending: break
print(f"sent {sent} answered {got} lost {sent-got} proxy max fds {maxfds}")

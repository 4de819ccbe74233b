"""The pieces of benches/scrape/run.sh.

`probe.py manifests N`: N Services on 127.97.x.y:80, each with an
EndpointSlice of 3 endpoints (127.98/99/100.x.y:8080).
`probe.py probe SECONDS URL|none`: echo backends for the first Service,
then a connection to it every 2 ms for SECONDS (scraping URL back to back
meanwhile, unless `none`); prints the connections' latency.
"""

import asyncio
import socket
import subprocess
import sys
import threading
import time


def manifests(n):
    for i in range(n):
        x, y = i >> 8, i & 255
        print(f"""---
apiVersion: v1
kind: Service
metadata: {{name: s{i}}}
spec:
  clusterIP: 127.97.{x}.{y}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: s{i}-a
  labels: {{kubernetes.io/service-name: s{i}}}
addressType: IPv4
ports: [{{name: http, port: 8080}}]
endpoints:
- addresses: [127.98.{x}.{y}]
- addresses: [127.99.{x}.{y}]
- addresses: [127.100.{x}.{y}]""")


async def echo(reader, writer):
    while data := await reader.read(4096):
        writer.write(data)
        await writer.drain()
    writer.close()


async def backends():
    for ip in ("127.98.0.0", "127.99.0.0", "127.100.0.0"):
        await asyncio.start_server(echo, ip, 8080, reuse_address=True)
    await asyncio.Event().wait()


def probe(secs, url):
    threading.Thread(target=lambda: asyncio.run(backends()), daemon=True).start()
    time.sleep(0.5)
    stop = time.time() + secs
    scrapes = [0]

    def scrape():
        while time.time() < stop:
            subprocess.run(["curl", "-s", "-o", "/dev/null", url], check=False)
            scrapes[0] += 1

    scraper = threading.Thread(target=scrape)
    if url != "none":
        scraper.start()
    took = []
    while time.time() < stop:
        started = time.perf_counter()
        with socket.create_connection(("127.97.0.0", 80), timeout=5) as s:
            s.sendall(b"x")
            s.recv(16)
        took.append((time.perf_counter() - started) * 1000)
        time.sleep(0.002)
    if url != "none":
        scraper.join()
    took.sort()
    at = lambda q: took[min(len(took) - 1, int(len(took) * q))]
    print(f"{len(took)} connections, {scrapes[0]} scrapes: p50 {at(0.5):.2f} ms, "
          f"p99 {at(0.99):.2f} ms, p99.9 {at(0.999):.2f} ms, max {took[-1]:.2f} ms")


if __name__ == "__main__":
    if sys.argv[1] == "manifests":
        manifests(int(sys.argv[2]))
    else:
        probe(float(sys.argv[2]), sys.argv[3])

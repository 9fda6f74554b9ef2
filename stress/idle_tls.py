#!/usr/bin/env python3
"""Holds N idle TLS keep-alive connections to 127.0.0.1:PORT, each after one `GET /small`,
for stress/tls-handshakes.sh's idle-memory figure. Prints `READY <ok> <failed>`, then waits for a
line on stdin (or --max-hold seconds) and closes everything. Certificates are not verified (the
harness's self-signed one)."""
import argparse, asyncio, ssl, sys


async def hold(port, n, max_hold):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    conns, failed = [], 0
    sem = asyncio.Semaphore(100)

    async def one():
        nonlocal failed
        async with sem:
            try:
                r, w = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port, ssl=ctx), 10)
                w.write(b"GET /small HTTP/1.1\r\nHost: bench\r\n\r\n")
                head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 10)
                length = 0
                for line in head.split(b"\r\n"):
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        length = int(v)
                await asyncio.wait_for(r.readexactly(length), 10)
                conns.append(w)
            except Exception:
                failed += 1

    await asyncio.gather(*(one() for _ in range(n)))
    print("READY %d %d" % (len(conns), failed), flush=True)
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), max_hold)
    except asyncio.TimeoutError:
        pass
    for w in conns:
        w.close()


ap = argparse.ArgumentParser()
ap.add_argument("port", type=int)
ap.add_argument("-n", type=int, default=2000)
ap.add_argument("--max-hold", type=float, default=60)
a = ap.parse_args()
asyncio.run(hold(a.port, a.n, a.max_hold))

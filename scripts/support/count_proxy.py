#!/usr/bin/env python3
"""A TCP proxy that counts the bytes clients send upstream.

Usage: count_proxy.py LISTEN_PORT UPSTREAM_PORT COUNT_FILE
Every connection is forwarded to 127.0.0.1:UPSTREAM_PORT; the running total of client-to-server
bytes is rewritten into COUNT_FILE whenever a connection closes; callers take differences.
"""
import asyncio, sys

listen, upstream, count_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
total = 0


async def pipe(reader, writer, count):
    global total
    try:
        while data := await reader.read(1 << 16):
            if count:
                total += len(data)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def handle(client_reader, client_writer):
    up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream)
    await asyncio.gather(pipe(client_reader, up_writer, True), pipe(up_reader, client_writer, False))
    with open(count_file, "w") as f:
        f.write(str(total))


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    async with server:
        await server.serve_forever()

asyncio.run(main())

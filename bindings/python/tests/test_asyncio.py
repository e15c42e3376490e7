"""The asyncio API."""

import asyncio
import threading

import pytest

import wsnative
import wsnative.asyncio as wa

WAIT = 10.0


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def echo(conn):
    async for m in conn:
        await conn.send(m)


def test_echo_text_binary_and_close():
    async def main():
        async with wa.serve("127.0.0.1", 0, echo) as server:
            async with wa.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                for m in ("hi", b"\x00\xff", "", b"x" * (1 << 20)):
                    await ws.send(m)
                    assert await asyncio.wait_for(ws.recv(), WAIT) == m
                assert ws.state == wsnative.State.OPEN and ws.remote_address
            assert ws.close_code == 1000 and ws.was_clean
            with pytest.raises(wsnative.ConnectionClosedOK):
                await ws.recv()
            with pytest.raises(wsnative.ConnectionClosed):
                await ws.send("late")

    run(main())


def test_many_messages_batch_and_arrive_in_order():
    async def main():
        async with wa.serve("127.0.0.1", 0, echo) as server:
            ws = await wa.connect(f"ws://127.0.0.1:{server.port}/")
            n = 5000
            for i in range(n):
                await ws.send(str(i))
            got = [await asyncio.wait_for(ws.recv(), WAIT) for _ in range(n)]
            assert got == [str(i) for i in range(n)]
            await ws.close(4000, "enough")
            assert (ws.close_code, ws.close_reason) == (4000, "enough")

    run(main())


def test_async_iteration_ends_on_normal_close_and_handler_sees_codes():
    seen = {}

    async def handler(conn):
        await conn.send("one")
        await conn.send("two")
        await conn.close(1000, "server done")
        seen["info"] = conn.close_info

    async def main():
        async with wa.serve("127.0.0.1", 0, handler) as server:
            async with wa.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                got = [m async for m in ws]
            assert got == ["one", "two"]
            assert (ws.close_code, ws.close_reason) == (1000, "server done")
        assert seen["info"].clean

    run(main())


def test_connect_errors_and_refusals():
    async def main():
        async with wa.serve("127.0.0.1", 0, echo, accept=lambda r: 403 if r.path == "/no" else None) as server:
            with pytest.raises(wsnative.HandshakeError) as e:
                await wa.connect(f"ws://127.0.0.1:{server.port}/no")
            assert e.value.status == 403
            with pytest.raises(wsnative.InvalidArgument):
                await wa.connect("nope://")

    run(main())


def test_chat_broadcast_between_clients():
    async def main():
        clients = set()

        async def chat(conn):
            clients.add(conn)
            try:
                async for m in conn:
                    for c in list(clients):
                        if c is not conn:
                            try:
                                await c.send(m)
                            except wsnative.ConnectionClosed:
                                pass
            finally:
                clients.discard(conn)

        async with wa.serve("127.0.0.1", 0, chat) as server:
            url = f"ws://127.0.0.1:{server.port}/"
            a, b, c = [await wa.connect(url) for _ in range(3)]
            for _ in range(100):
                if len(clients) == 3:
                    break
                await asyncio.sleep(0.01)
            await a.send("hello from a")
            assert await asyncio.wait_for(b.recv(), WAIT) == "hello from a"
            assert await asyncio.wait_for(c.recv(), WAIT) == "hello from a"
            for x in (a, b, c):
                await x.close()

    run(main())


def test_events_from_native_threads_reach_the_loop_thread():
    async def main():
        loop_thread = threading.get_ident()
        threads = set()

        async def handler(conn):
            threads.add(threading.get_ident())
            async for m in conn:
                threads.add(threading.get_ident())
                await conn.send(m)

        async with wa.serve("127.0.0.1", 0, handler) as server:
            async with wa.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                await ws.send("x")
                assert await asyncio.wait_for(ws.recv(), WAIT) == "x"
        assert threads == {loop_thread}

    run(main())


def test_server_close_ends_clients_with_1001():
    async def main():
        server = await wa.serve("127.0.0.1", 0, echo, drain_timeout=2.0)
        ws = await wa.connect(f"ws://127.0.0.1:{server.port}/")
        await ws.send("x")
        assert await asyncio.wait_for(ws.recv(), WAIT) == "x"
        server.close()
        await asyncio.wait_for(server.wait_closed(), WAIT)
        info = await asyncio.wait_for(ws.wait_closed(), WAIT)
        assert info.code == 1001

    run(main())


def test_unread_messages_pause_reading_and_reading_resumes():
    async def flood(conn):
        for i in range(300):
            await conn.send(b"%06d" % i + b"x" * 65530)
        async for _ in conn:
            pass

    async def main():
        async with wa.serve("127.0.0.1", 0, flood) as server:
            async with wa.connect(f"ws://127.0.0.1:{server.port}/", max_queue=8) as ws:
                loop = asyncio.get_running_loop()
                end = loop.time() + WAIT
                while len(ws._inbox) < 8 and loop.time() < end:
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.3)
                settled = len(ws._inbox)
                assert settled <= 10, settled  # the core stopped reading at 8 unacknowledged
                await asyncio.sleep(0.3)
                assert len(ws._inbox) == settled
                got = [await asyncio.wait_for(ws.recv(), WAIT) for _ in range(300)]
                assert [int(m[:6]) for m in got] == list(range(300))

    run(main())

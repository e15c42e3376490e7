"""The handshake response (issue 13): the 101's status and headers on the open connection, and
a refusal's in HandshakeError, against Python ``websockets`` servers that add or refuse; the
request's Cookie and Authorization go out as extra headers (the documented way)."""

import asyncio
import threading

import pytest
from conftest import WAIT

import wsnative


def _websockets_server(process_request):
    """A websockets server on its own loop thread: (port, stop)."""
    import websockets.asyncio.server as ws_server

    ready = threading.Event()
    state = {}

    async def echo(ws):
        async for m in ws:
            await ws.send(m)

    async def main():
        state["stop"] = asyncio.get_running_loop().create_future()
        async with ws_server.serve(echo, "127.0.0.1", 0, process_request=process_request[0],
                                   process_response=process_request[1]) as server:
            state["port"] = server.sockets[0].getsockname()[1]
            ready.set()
            await state["stop"]

    loop = asyncio.new_event_loop()
    t = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    t.start()
    assert ready.wait(WAIT)

    def stop():
        loop.call_soon_threadsafe(state["stop"].set_result, None)
        t.join(WAIT)

    return state["port"], stop


def test_the_101_headers_and_a_refusal_are_readable():
    seen = []

    def process_request(connection, request):
        seen.append((request.headers.get("Cookie"), request.headers.get("Authorization")))
        if request.path == "/private":
            r = connection.respond(401, "log in first\n")
            r.headers["WWW-Authenticate"] = 'Bearer realm="chat"'
            return r
        return None

    def process_response(connection, request, response):
        response.headers["Set-Cookie"] = "session=abc123; HttpOnly"
        response.headers["X-Server-Choice"] = "blue"
        return response

    port, stop = _websockets_server((process_request, process_response))
    try:
        headers = {"Cookie": "theme=dark", "Authorization": "Bearer t0ken"}
        with wsnative.connect(f"ws://127.0.0.1:{port}/", headers=headers) as ws:
            assert ws.response is not None and ws.response.status == 101
            assert ws.response.header("set-cookie") == "session=abc123; HttpOnly"
            assert ws.response.header("X-Server-Choice") == "blue"
        with pytest.raises(wsnative.HandshakeError) as e:
            wsnative.connect(f"ws://127.0.0.1:{port}/private", headers=headers)
        assert e.value.status == 401
        assert e.value.response.status == 401
        assert e.value.response.header("www-authenticate") == 'Bearer realm="chat"'

        async def through_asyncio():
            async with wsnative.asyncio.connect(f"ws://127.0.0.1:{port}/") as ws:
                return ws.response.header("x-server-choice")

        assert asyncio.run(through_asyncio()) == "blue"
    finally:
        stop()
    assert seen[0] == ("theme=dark", "Bearer t0ken")

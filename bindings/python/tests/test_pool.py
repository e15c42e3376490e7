"""The connection pool (issue 13) through the Python binding: ready connections handed out at
once, refilled in the background."""

from conftest import WAIT, wait_until

import wsnative


def test_pool_hands_out_open_connections_and_refills(url):
    with wsnative.Pool(url, size=2) as pool:
        assert wait_until(lambda: pool.ready == 2)
        ws = pool.take()
        assert ws is not None and ws.state == wsnative.State.OPEN
        ws.send("pooled")
        assert ws.recv(timeout=WAIT) == "pooled"
        ws.close()
        assert wait_until(lambda: pool.ready == 2)


def test_an_empty_pool_returns_none():
    with wsnative.Pool("ws://127.0.0.1:9/", size=1, open_timeout=1.0) as pool:
        assert pool.take() is None

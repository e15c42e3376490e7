"""Certificates (issue 13): mutual TLS with the subject in the accept hook, a pinning
``cert_check``, exact trust by fingerprint, and a quick ``openssl req -x509`` certificate given
as the CA file, accepted as Python's own ``ssl`` accepts it. Certificates come from the openssl
command line (test.sh installs it)."""

import asyncio
import socket
import ssl
import subprocess

import pytest
from conftest import WAIT, echo_handler

import wsnative


def _openssl(*args):
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


def _ca(tmp_path, name):
    ca, key = tmp_path / f"{name}-ca.pem", tmp_path / f"{name}-ca.key"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", ca, "-days", "2",
             "-subj", f"/CN={name} CA")
    return ca, key


def _leaf(tmp_path, ca, ca_key, name, cn, ext):
    cert, key, csr = tmp_path / f"{name}.pem", tmp_path / f"{name}.key", tmp_path / f"{name}.csr"
    extfile = tmp_path / f"{name}.cnf"
    extfile.write_text(ext)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", f"/CN={cn}/O=wsnative tests")
    _openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "2",
             "-extfile", extfile)
    return cert, key


def _quick(tmp_path, name):
    """The quick way: one command, CA:TRUE, CN only."""
    cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
             "-subj", "/CN=localhost")
    return cert, key


def test_mtls_requires_a_client_certificate_and_accept_sees_its_subject(tmp_path):
    sca, sca_key = _ca(tmp_path, "server")
    cca, cca_key = _ca(tmp_path, "client")
    scert, skey = _leaf(tmp_path, sca, sca_key, "server", "localhost", "subjectAltName=DNS:localhost\n")
    ccert, ckey = _leaf(tmp_path, cca, cca_key, "alice", "alice", "extendedKeyUsage=clientAuth\n")
    subjects = []

    def accept(request):
        subjects.append(request.peer_cert_subject)

    with wsnative.serve("127.0.0.1", 0, echo_handler, accept=accept, tls_cert=scert, tls_key=skey,
                        client_ca=cca) as server:
        u = f"wss://localhost:{server.port}/"
        with pytest.raises(wsnative.TLSError) as e:
            wsnative.connect(u, ca_file=sca)
        assert "requires a client certificate" in e.value.message
        with wsnative.connect(u, ca_file=sca, client_cert=ccert, client_key=ckey) as ws:
            ws.send("mutual")
            assert ws.recv(timeout=WAIT) == "mutual"
    assert len(subjects) == 1 and "CN=alice" in subjects[0], subjects
    with pytest.raises(wsnative.InvalidArgument):
        wsnative.connect(u, client_cert=ccert)  # the key goes with it


def test_cert_check_pins_a_fingerprint_and_sees_the_default_verdict(tmp_path):
    pinned_cert, pinned_key = _quick(tmp_path, "pinned")
    other_cert, other_key = _quick(tmp_path, "other")
    der = ssl.PEM_cert_to_DER_cert(pinned_cert.read_text())
    want = wsnative.cert_fingerprint(der)
    seen = []

    def pin(host, chain, default_error):
        seen.append((host, len(chain), default_error))
        return wsnative.cert_fingerprint(chain[0]) == want

    with wsnative.serve("127.0.0.1", 0, echo_handler, tls_cert=pinned_cert, tls_key=pinned_key) as a, \
            wsnative.serve("127.0.0.1", 0, echo_handler, tls_cert=other_cert, tls_key=other_key) as b:
        with wsnative.connect(f"wss://localhost:{a.port}/", cert_check=pin) as ws:
            ws.send("pinned")
            assert ws.recv(timeout=WAIT) == "pinned"
        with pytest.raises(wsnative.TLSError) as e:
            wsnative.connect(f"wss://localhost:{b.port}/", cert_check=pin)
        assert "certificate check refused" in e.value.message
        # The same pin as an option, without a callback; with no roots it is the only trust.
        with wsnative.connect(f"wss://localhost:{a.port}/", trust_fingerprint=want, tls_roots="none") as ws:
            ws.send("by fingerprint")
            assert ws.recv(timeout=WAIT) == "by fingerprint"
        with pytest.raises(wsnative.TLSError):
            wsnative.connect(f"wss://localhost:{b.port}/", trust_fingerprint=want, tls_roots="none")

        async def through_asyncio():
            async with wsnative.asyncio.connect(f"wss://localhost:{a.port}/", cert_check=pin) as ws:
                await ws.send("async")
                return await asyncio.wait_for(ws.recv(), WAIT)

        assert asyncio.run(through_asyncio()) == "async"
    # The quick certificate is CA:TRUE and self-signed: the default verdict says so, with its fingerprint.
    assert seen and all(h == "localhost" and n == 1 and "fingerprint" in (err or "") for h, n, err in seen)


def test_quick_self_signed_certificate_as_ca_file_is_accepted_like_pythons_ssl(tmp_path):
    cert, key = _quick(tmp_path, "quick")
    with wsnative.serve("127.0.0.1", 0, echo_handler, tls_cert=cert, tls_key=key) as server:
        # Python's ssl accepts it as the CA file ...
        ctx = ssl.create_default_context(cafile=str(cert))
        with socket.create_connection(("localhost", server.port), timeout=WAIT) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                assert tls.version()
        # ... and so does wsnative.
        with wsnative.connect(f"wss://localhost:{server.port}/", ca_file=cert) as ws:
            ws.send("quick")
            assert ws.recv(timeout=WAIT) == "quick"
        # Without it: an error that says what to do, with the fingerprint to pin.
        with pytest.raises(wsnative.TLSError) as e:
            wsnative.connect(f"wss://localhost:{server.port}/")
        assert "fingerprint" in e.value.message and "OtherError" not in e.value.message

"""TLS end to end from Python: replicas started with --tls-cert/--tls-key/--tls-ca
(and --tls-client-auth), certificates made by the test with the ``openssl``
command; the threaded and asyncio clients and a proxy call over TLS, and a
plaintext client, a client trusting another CA and a client without a required
certificate are refused with ``TlsError``."""

import asyncio
import shutil
import subprocess

import pytest

import concoord.aio
from concoord.client import Client, status_of
from concoord.exception import TlsError
from concoord.proxy.counter import Counter
from concoord.tls import client_context


def openssl(*args):
    if shutil.which("openssl") is None:
        pytest.fail("the TLS tests make their certificates with the openssl command: install openssl")
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True)


class Ca:
    """A test CA in ``dir``: ``issue`` signs certificates for given names."""

    def __init__(self, dir, name):
        self.dir = dir
        self.name = name
        self.key = dir / ("%s-ca-key.pem" % name)
        self.cert = dir / ("%s-ca.pem" % name)
        openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(self.key), "-out", str(self.cert), "-days", "2",
            "-subj", "/CN=%s test CA" % name,
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )

    def issue(self, who, sans):
        """Signs a certificate whose subject alternative names are ``sans``
        (``IP:127.0.0.1``, ``DNS:localhost``); returns (cert, key) paths."""
        key = self.dir / ("%s-%s-key.pem" % (self.name, who))
        csr = self.dir / ("%s-%s.csr" % (self.name, who))
        cert = self.dir / ("%s-%s.pem" % (self.name, who))
        ext = self.dir / ("%s-%s.ext" % (self.name, who))
        ext.write_text("subjectAltName=%s\nbasicConstraints=CA:FALSE\n" % ",".join(sans))
        openssl(
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(csr), "-subj", "/CN=%s" % who,
        )
        openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self.key),
            "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext),
        )
        return cert, key


def replica_flags(cert, ca):
    return ["--tls-cert", str(cert[0]), "--tls-key", str(cert[1]), "--tls-ca", str(ca.cert)]


def test_tls_cluster_from_python(cluster_factory, tmp_path):
    ca = Ca(tmp_path, "good")
    other = Ca(tmp_path, "other")
    context = client_context(ca.cert)
    cluster = cluster_factory(
        3,
        extra=replica_flags(ca.issue("replica", ["IP:127.0.0.1"]), ca),
        ssl_context=context,
    )
    with cluster.client() as client:
        for _ in range(3):
            client.call("default", "increment")
        assert client.call("default", "getvalue") == 3
    counter = Counter(cluster.boot, ssl_context=context)
    counter.increment()
    assert counter.getvalue() == 4
    counter.disconnect()

    async def from_asyncio():
        client = await concoord.aio.Client.connect(cluster.boot, ssl_context=context)
        try:
            await client.call("default", "increment")
            return await client.call("default", "getvalue")
        finally:
            await client.close()

    assert asyncio.run(from_asyncio()) == 5
    assert status_of(cluster.replicas[0].addr, ssl_context=context)["role"] in ("leader", "follower")

    # Plaintext: the replica says it requires TLS, and the client does not retry.
    with pytest.raises(TlsError, match="requires TLS"):
        Client(cluster.boot, give_up_after=10)
    # Another CA: the client refuses the replicas' certificates.
    with pytest.raises(TlsError, match="not signed by the CA"):
        Client(cluster.boot, give_up_after=10, ssl_context=client_context(other.cert))

    async def asyncio_stranger():
        await concoord.aio.Client.connect(
            cluster.boot, give_up_after=10, ssl_context=client_context(other.cert)
        )

    with pytest.raises(TlsError, match="not signed by the CA"):
        asyncio.run(asyncio_stranger())


def test_mutual_tls_from_python(cluster_factory, tmp_path):
    ca = Ca(tmp_path, "good")
    other = Ca(tmp_path, "other")
    flags = replica_flags(ca.issue("replica", ["IP:127.0.0.1"]), ca) + ["--tls-client-auth"]
    client_cert = ca.issue("client", ["DNS:client.example.test"])
    context = client_context(ca.cert, *client_cert)
    cluster = cluster_factory(2, extra=flags, ssl_context=context)
    with cluster.client() as client:
        client.call("default", "increment")
        assert client.call("default", "getvalue") == 1
    with pytest.raises(TlsError, match="client certificate"):
        Client(cluster.boot, give_up_after=10, ssl_context=client_context(ca.cert))
    stranger = other.issue("client", ["DNS:client.example.test"])
    with pytest.raises(TlsError):
        Client(cluster.boot, give_up_after=10, ssl_context=client_context(ca.cert, *stranger))


def test_a_tls_client_reaching_a_plaintext_replica_is_told_so(cluster_factory, tmp_path):
    ca = Ca(tmp_path, "good")
    cluster = cluster_factory(1)
    with pytest.raises(TlsError, match="without TLS"):
        Client(cluster.boot, give_up_after=10, ssl_context=client_context(ca.cert))

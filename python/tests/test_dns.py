"""Finding a cluster by name: ``dns://DOMAIN@server:port`` against replicas started
with ``-n DOMAIN`` (each name server on its own port), with the blocking and the
asyncio clients, before and after a replica dies."""

import asyncio
import re
import pytest

import concoord.aio
from concoord import _dns
from concoord.exception import BadAddress
from concoord.proxy.counter import Counter

DOMAIN = "cc.example.test"


def dns_server(replica):
    found = re.findall(r"name server listening on (\S+):(\d+)", replica.log_text())
    assert found, replica.log_text()
    return found[-1][0], int(found[-1][1])


def test_dns_urls_are_checked():
    assert _dns.parse_url("dns://CC.Example.Test.@127.0.0.1:5353") == (DOMAIN, ("127.0.0.1", 5353))
    assert _dns.parse_url("dns://a.test@[::1]") == ("a.test", ("::1", 53))
    assert _dns.parse_url("dns://a.test") == ("a.test", None)
    for bad in ["dns://", "dns://a..b", "dns://a.test@ns.example", "dns://a.test@1.2.3.4:0"]:
        with pytest.raises(BadAddress):
            _dns.parse_url(bad)


def test_clients_find_the_cluster_by_name(cluster_factory):
    extra = ("-n", DOMAIN, "--dns-port", "0")
    cluster = cluster_factory(3, extra=extra)
    host, port = dns_server(cluster.replicas[0])
    url = "dns://%s@%s:%d" % (DOMAIN, host, port)
    members = sorted(r.addr for r in cluster.replicas)
    assert sorted(_dns.resolve(url)) == members
    counter = Counter(url)
    counter.increment()
    assert counter.getvalue() == 1

    async def via_asyncio():
        client = await concoord.aio.Client.connect(url)
        try:
            await client.call("default", "increment")
            return await client.call("default", "getvalue")
        finally:
            await client.close()

    assert asyncio.run(via_asyncio()) == 2

    # A replica dies (three voters keep it as a member, so DNS still lists it): the
    # clients fail over, and a new client finds the cluster all the same, since every
    # attempt looks the name up again and goes on to the next replica.
    cluster.replicas[2].kill()
    counter.increment()
    for _ in range(3):
        assert Counter(url, timeout=20).getvalue() == 3


def test_ipv6_replicas_are_found_through_aaaa(cluster_factory):
    """Replicas on ::1: the SRV targets' addresses are AAAA records, and the
    clients get ``[::1]:port`` entries they can connect to."""
    extra = ("-n", DOMAIN, "--dns-port", "0")
    cluster = cluster_factory(2, extra=extra, host="::1")
    host, port = dns_server(cluster.replicas[1])
    url = "dns://%s@[%s]:%d" % (DOMAIN, host.strip("[]"), port)
    members = sorted(r.addr for r in cluster.replicas)
    assert all(m.startswith("[::1]:") for m in members), members
    assert sorted(_dns.resolve(url)) == members
    counter = Counter(url)
    counter.increment()
    assert counter.getvalue() == 1


def fake_name_server(records):
    """A UDP name server on 127.0.0.1 that answers each question from ``records``,
    ``{(qtype): [rdata bytes]}`` for any name (NOERROR with no answer otherwise);
    returns ``(address, stop)``."""
    import socket
    import struct
    import threading

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    running = [True]

    def serve():
        while running[0]:
            try:
                packet, peer = sock.recvfrom(512)
            except socket.timeout:
                continue
            end = 12
            while packet[end]:
                end += packet[end] + 1
            question = packet[12:end + 5]
            qtype = struct.unpack(">H", packet[end + 1:end + 3])[0]
            answers = records.get(qtype, [])
            reply = packet[:2] + b"\x84\x00" + struct.pack(">HHHH", 1, len(answers), 0, 0)
            reply += question
            for rdata in answers:
                reply += b"\xc0\x0c" + struct.pack(">HHIH", qtype, 1, 30, len(rdata)) + rdata
            sock.sendto(reply, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    def stop():
        running[0] = False
        thread.join()
        sock.close()

    return sock.getsockname(), stop


def test_without_srv_the_a_and_aaaa_records_give_the_replicas():
    import socket

    v6 = socket.inet_pton(socket.AF_INET6, "2001:db8::7")
    (host, port), stop = fake_name_server({1: [bytes([10, 0, 0, 7])], 28: [v6]})
    try:
        found = _dns.resolve("dns://%s@%s:%d" % (DOMAIN, host, port))
    finally:
        stop()
    assert found == ["10.0.0.7:14000", "[2001:db8::7]:14000"]

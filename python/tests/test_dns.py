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

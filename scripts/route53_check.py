"""Route53 publishing (-n DOMAIN -r) against moto's Route53 server: the hosted
zone's A, SRV and TXT record sets (and the SRV targets' A records) must equal the
membership after the cluster starts, after a replica joins and after one is removed
(the departed member's own A set deleted),
and only the leader publishes, one change batch per membership.

Run by scripts/test-route53, which makes the virtual environment with moto[server]
(and boto3) and runs this with that environment's Python: python route53_check.py BIN.
moto's server runs as `python -m moto.server`, so a virtual environment that was moved
(whose entry scripts name the old interpreter path) still works.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import boto3

DOMAIN = "cc.example.test."
BIN = sys.argv[1]
ENV = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
processes = []
scratch = tempfile.mkdtemp(prefix="concoord-route53-")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto():
    for _ in range(5):
        port = free_port()
        log = open(os.path.join(scratch, "moto.log"), "ab")
        p = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                             stdout=log, stderr=log)
        processes.append(p)
        for _ in range(100):
            if p.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return "http://127.0.0.1:%d" % port
            except OSError:
                time.sleep(0.1)
        p.kill()
    raise SystemExit("moto_server did not start; see %s/moto.log" % scratch)


def start_replica(index, endpoint, boot):
    args = [BIN, "replica", "-a", "127.0.0.%d" % (31 + index), "-p", "0", "-o", "Counter",
            "-n", DOMAIN, "-r", "--route53-endpoint", endpoint, "--remove-dead-after", "2"]
    if boot:
        args += ["-b", boot]
    log = os.path.join(scratch, "replica-%d.log" % index)
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=open(log, "ab"), env=ENV)
    processes.append(p)
    line = p.stdout.readline().decode()
    assert line.startswith("concoord replica listening on "), (line, open(log).read())
    return p, line.split()[-1], log


def status(boot):
    out = subprocess.run([BIN, "status", "-b", boot, "--json"], capture_output=True, env=ENV)
    try:
        return json.loads(out.stdout)
    except ValueError:
        return None


def leader_members(boot):
    s = status(boot)
    for r in (s or {}).get("replicas", []):
        if r["role"] == "leader":
            return r["addr"], sorted(m["addr"] for m in r["members"] if m["role"] == "voter"), r["members"]
    return None, [], []


def wait_voters(boot, n):
    for _ in range(300):
        leader, voters, members = leader_members(boot)
        if len(voters) == n and len(members) == n:
            return leader, voters
        time.sleep(0.1)
    raise AssertionError("no %d voters: %s" % (n, status(boot)))


def expected(members):
    ips = sorted({m.rsplit(":", 1)[0] for m in members})
    sets = {
        (DOMAIN, "A"): ips,
        ("_concoord._tcp." + DOMAIN, "SRV"): sorted(
            "0 100 %s %s.ipaddr.%s" % (m.rsplit(":", 1)[1], m.rsplit(":", 1)[0], DOMAIN) for m in members),
    }
    for ip in ips:
        sets[("%s.ipaddr.%s" % (ip, DOMAIN), "A")] = [ip]
    return sets


def published(r53, zone):
    sets, txt = {}, None
    for r in r53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]:
        values = sorted(x["Value"] for x in r.get("ResourceRecords", []))
        if r["Type"] == "TXT":
            txt = "".join(v.strip('"') for v in " ".join(values).split('" "'))
        elif r["Type"] in ("A", "SRV"):
            assert r["TTL"] == 600, r
            sets[(r["Name"], r["Type"])] = values
    return sets, txt


def wait_published(r53, zone, members):
    """The zone's A and SRV sets are exactly the membership's: the A set of a
    departed member's <ip>.ipaddr name is gone too."""
    want = expected(members)
    want_txt = sorted("REPLICA " + m for m in members)
    for _ in range(150):
        sets, txt = published(r53, zone)
        if sets == want and txt is not None and sorted(txt.split(";")) == want_txt:
            return
        time.sleep(0.1)
    raise AssertionError("Route53 holds %s / %r, want %s / %s" % (sets, txt, want, want_txt))


def pushes(log):
    return sum("now lists" in line for line in open(log, errors="replace"))


def main():
    endpoint = start_moto()
    r53 = boto3.client("route53", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    zone = r53.create_hosted_zone(Name=DOMAIN, CallerReference="concoord")["HostedZone"]["Id"]
    replicas = []
    for i in range(4):
        boot = ",".join(r[1] for r in replicas)
        replicas.append(start_replica(i, endpoint, boot))
        wait_voters(",".join(r[1] for r in replicas), i + 1)
    boot = ",".join(r[1] for r in replicas)
    leader, members = wait_voters(boot, 4)
    wait_published(r53, zone, members)
    print("route53: 4 members published")

    # A fifth replica joins.
    replicas.append(start_replica(4, endpoint, boot))
    boot = ",".join(r[1] for r in replicas)
    leader, members = wait_voters(boot, 5)
    wait_published(r53, zone, members)
    print("route53: the join published")

    # A follower dies and is removed (more than three voters remain).
    victim = next(r for r in replicas if r[1] != leader)
    victim[0].kill()
    victim[0].wait()
    live = [r for r in replicas if r is not victim]
    boot = ",".join(r[1] for r in live)
    leader, members = wait_voters(boot, 4)
    wait_published(r53, zone, members)
    print("route53: the removal published, the departed member's sets deleted")

    # Only the leader published; every push was one batch per membership.
    leader_log = next(r[2] for r in replicas if r[1] == leader)
    others = [pushes(r[2]) for r in replicas if r[1] != leader]
    assert others == [0] * len(others), "followers pushed: %s" % others
    # The founding membership, four joins of two changes each (learner, then voter)
    # and the removal: at most 10 memberships (fewer when several
    # take effect within one event-loop turn): each published once, by the leader.
    assert 3 <= pushes(leader_log) <= 10, pushes(leader_log)
    print("route53: only the leader published (%d batches)" % pushes(leader_log))


try:
    main()
except BaseException:
    for name in sorted(os.listdir(scratch)):
        print("--- %s\n%s" % (name, open(os.path.join(scratch, name), errors="replace").read()[-3000:]))
    raise
finally:
    for p in processes:
        if p.poll() is None:
            p.kill()
        p.wait()

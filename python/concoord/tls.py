"""TLS for the clients: ``client_context(ca, cert=None, key=None)`` builds the
``ssl.SSLContext`` that ``concoord.client.Client``, ``concoord.aio.Client`` and
every proxy take as ``ssl_context=``, for replicas started with ``--tls-cert``.

A replica's certificate must name the address the client dials (its IP address
or DNS name as a subject alternative name); ``cert`` and ``key`` are for replicas
started with ``--tls-client-auth``.

What it deliberately is not: a certificate tool. Make certificates with your CA.
"""

import ssl

__all__ = ["client_context"]


def client_context(ca, cert=None, key=None):
    """A TLS client context that trusts the CA certificate(s) in the PEM file
    ``ca`` (only those) and, given ``cert`` and ``key`` (PEM files), presents that
    client certificate."""
    if (cert is None) != (key is None):
        raise ValueError("give both cert and key, or neither")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


def is_failure(e):
    """Whether ``e`` is TLS failing (a certificate, an alert), as opposed to the
    network or a socket that is not ready."""
    transient = (ssl.SSLWantReadError, ssl.SSLWantWriteError, ssl.SSLEOFError,
                 ssl.SSLZeroReturnError, ssl.SSLSyscallError)
    return isinstance(e, ssl.SSLError) and not isinstance(e, transient)


def explain(target, e):
    """A message for a TLS failure with ``target``, saying what it most likely means."""
    text = str(e)
    hint = ""
    if "PROTOCOL_VERSION" in text.upper().replace(" ", "_"):
        hint = " (the replica runs without TLS: drop ssl_context, or start it with --tls-cert)"
    elif isinstance(e, ssl.SSLCertVerificationError):
        if "match" in text or "mismatch" in text:
            hint = (" (its certificate does not name the address dialled: give the replica a "
                    "certificate with that IP or DNS name as a subject alternative name)")
        else:
            hint = " (its certificate is not signed by the CA the client trusts)"
    elif "CERTIFICATE_REQUIRED" in text.upper() or "UNKNOWN_CA" in text.upper() \
            or "BAD_CERTIFICATE" in text.upper():
        hint = (" (the replica requires a client certificate signed by its CA: give "
                "client_context a cert and key)")
    return "TLS with %s failed: %s%s" % (target, text, hint)

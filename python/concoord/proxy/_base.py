"""``Proxy``: what every built-in object's proxy shares: the original's constructor
``(bootstrap, timeout=60, debug=False, token=None)``, the choice of a named
instance (created with constructor arguments if asked), and one ``_call`` that
every method goes through.

What it deliberately is not: a dynamic proxy. Each built-in's proxy lists its
methods with their Python signatures, so ``help()`` and editors see them; names
that are not methods of the object are not forwarded.
"""

import logging

from ..client import DEFAULT, Client
from ..exception import Timeout


class Proxy:
    """Base of the built-in objects' proxies.

    ``bootstrap``: ``"host:port, host:port"`` or a list. ``timeout``: seconds
    without any replica answering before a call fails with ``Unavailable`` (None:
    never; the original accepted it and ignored it). ``debug``: log the client's decisions
    (logger ``concoord``) at DEBUG level. ``token``: the replicas' ``--token``.

    Keywords: ``instance`` names the object instance (default: the cluster's
    ``default`` instance, of the type its replicas were started with);
    ``create`` creates it first, through the log: ``True`` with the type's
    default arguments, or a tuple of constructor arguments (a no-op if it exists
    with this type). ``client`` shares an existing ``concoord.client.Client``
    (and so its session: lock ownership is per session) instead of opening one;
    ``call_timeout``, ``lease`` and ``ssl_context`` (TLS: see ``concoord.tls``)
    are passed to the client this proxy opens.
    """

    # The object type's name on the replicas (for `create`).
    TYPE_NAME = None

    def __init__(
        self,
        bootstrap=None,
        timeout=60,
        debug=False,
        token=None,
        *,
        instance=None,
        create=None,
        client=None,
        call_timeout=None,
        lease=10.0,
        ssl_context=None,
    ):
        if debug:
            logger = logging.getLogger("concoord")
            logger.setLevel(logging.DEBUG)
            if not logger.handlers:
                logger.addHandler(logging.StreamHandler())
        if client is None:
            if bootstrap is None:
                raise TypeError("give the replicas' addresses (bootstrap) or a client")
            client = Client(
                bootstrap,
                token=token,
                give_up_after=timeout,
                call_timeout=call_timeout,
                lease=lease,
                ssl_context=ssl_context,
            )
            self._owns_client = True
        else:
            self._owns_client = False
        self._client = client
        self._instance = "default" if instance is None else instance
        if create is not None and create is not False:
            if self.TYPE_NAME is None:
                self.disconnect()
                raise TypeError("%s cannot create objects: use a proxy of a type" % type(self).__name__)
            args = () if create is True else tuple(create)
            try:
                client.create(self._instance, self.TYPE_NAME, args)
            except BaseException:
                self.disconnect()
                raise

    @property
    def client(self):
        """The ``concoord.client.Client`` this proxy calls through."""
        return self._client

    @property
    def instance(self):
        """The name of the object instance this proxy calls."""
        return self._instance

    def _call(self, method, *args, timeout=DEFAULT):
        return self._client.call(self._instance, method, args, timeout=timeout)

    def __concoordinit__(self, *args):
        """Re-initialises the replicated object through the log, as ``__init__(*args)``
        would: a fresh instance built from ``args`` replaces it for every client.
        Calls parked in the old one fail with ``RuntimeError``; what sessions held
        in it (a lock, permits) is gone."""
        return self._call("__init__", *args)

    def disconnect(self):
        """Ends this proxy's session (releasing what it holds) and its connection.
        A proxy built on a shared ``client`` leaves that client open."""
        if self._owns_client:
            self._client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.disconnect()

    def __repr__(self):
        return "<%s proxy of %r>" % (type(self).__name__, self._instance)


def or_default(timeout):
    """A ``timeout`` argument (None: the client's ``call_timeout``) for ``_call``."""
    return DEFAULT if timeout is None else timeout


def call_timeout(blocking, timeout, forever):
    """The call timeout for Python's ``acquire(blocking, timeout)`` conventions:
    ``forever`` (-1 or None) waits until granted; a timeout needs blocking."""
    if timeout is None or timeout == forever:
        return DEFAULT
    if not blocking:
        raise ValueError("can't specify a timeout for a non-blocking call")
    if timeout < 0:
        raise ValueError("timeout value must be a non-negative number")
    return timeout


class LockLike(Proxy):
    """Proxies whose ``with`` block holds the object (acquire, then release), as
    with ``threading.Lock``, and whose acquire methods take Python's ``timeout``."""

    # What `timeout` means "wait until granted" (-1 for locks, None for semaphores).
    FOREVER = -1

    def _acquire(self, method, blocking, timeout, refused):
        """Calls ``method(blocking)``; a ``timeout`` cancels the parked call through
        the cluster, and then the result is ``refused`` (False, or None for a
        token), as Python's ``acquire`` returns False when its timeout passes."""
        if timeout == 0 and blocking:
            return self._call(method, False)
        limit = call_timeout(blocking, timeout, self.FOREVER)
        if limit is DEFAULT:
            return self._call(method, blocking)
        try:
            return self._call(method, blocking, timeout=limit)
        except Timeout:
            return refused

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()

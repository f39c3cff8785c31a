"""The original's blocking proxy runtime: the same ``ClientProxy`` as
``concoord.clientproxy`` (which waits for parked calls correctly). Not a separate
implementation."""

from .clientproxy import ClientProxy

__all__ = ["ClientProxy"]

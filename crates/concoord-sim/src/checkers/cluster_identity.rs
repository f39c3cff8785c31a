//! Cluster identity: a replica ignores a peer as foreign only when the peer
//! belongs to another cluster.
//!
//! Source: `docs/consensus.md` §(b) "Cluster identity" (ConCoord's own rule; Raft
//! implementations check a cluster id on every message for the same reason,
//! e.g. etcd's `X-Etcd-Cluster-ID`). In the simulator a second cluster exists
//! only when an operator fault starts a stranger on an old member's address, so
//! an `Effect::Foreign` between two replicas of one cluster is a misread identity.

use super::{Check, Violation};
use concoord_wire::{ClusterId, ReplicaId};

/// `replica`, of cluster `mine`, ignored `from`, which said it was of `theirs`.
pub fn on_foreign(
    replica: ReplicaId,
    mine: Option<ClusterId>,
    from: ReplicaId,
    theirs: ClusterId,
) -> Check {
    if mine == Some(theirs) {
        return Err(Violation {
            checker: "cluster",
            detail: format!(
                "{replica:?} of {theirs:?} took {from:?} of the same cluster for foreign"
            ),
        });
    }
    Ok(())
}

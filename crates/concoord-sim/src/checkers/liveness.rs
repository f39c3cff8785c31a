//! Liveness after healing: once every fault is repaired, the cluster converges
//! within a bound: exactly one leader, every running member applied the same
//! slot, no membership change still pending, and every client request answered.
//!
//! Source: Paxos guarantees progress only with a single stable leader and a
//! majority up and connected ("Paxos Made Simple" §2.4); FLP forbids more. The
//! simulator therefore asks for liveness only after the fault phase, as
//! Jepsen-style and VOPR-style testers do.

use concoord_paxos::RoleKind;
use concoord_wire::{ReplicaId, Slot};

/// What the liveness check needs to know about one running replica.
#[derive(Clone, Debug)]
pub struct NodeView {
    pub id: ReplicaId,
    pub role: RoleKind,
    pub commit_max: Slot,
    /// Last slot the state machine applied (effects may wait behind a disk sync).
    pub app_applied: Slot,
    /// Whether the membership governing its next slot is also the newest scheduled one.
    pub membership_settled: bool,
    /// Whether it is a member of the leader's membership.
    pub in_leader_membership: bool,
}

/// `Ok` when converged; otherwise why not (reported if the bound runs out).
pub fn converged(nodes: &[NodeView], unanswered_requests: usize) -> Result<(), String> {
    let leaders: Vec<&NodeView> = nodes.iter().filter(|n| n.role == RoleKind::Leader).collect();
    if leaders.len() != 1 {
        let ids: Vec<ReplicaId> = leaders.iter().map(|n| n.id).collect();
        let running: Vec<String> = nodes
            .iter()
            .map(|n| format!("{:?} {:?} at {:?}", n.id, n.role, n.commit_max))
            .collect();
        return Err(format!(
            "{} leaders ({ids:?}), want exactly one; running: {}",
            leaders.len(),
            running.join(", ")
        ));
    }
    let leader = leaders[0];
    for n in nodes {
        if n.role == RoleKind::Joining || !n.in_leader_membership {
            return Err(format!("{:?} is not a member yet ({:?})", n.id, n.role));
        }
        if n.commit_max != leader.commit_max || n.app_applied != leader.commit_max {
            return Err(format!(
                "{:?} at commit {:?} / applied {:?}, leader {:?} at {:?}",
                n.id, n.commit_max, n.app_applied, leader.id, leader.commit_max
            ));
        }
        if !n.membership_settled {
            return Err(format!("{:?} still has a membership change pending", n.id));
        }
    }
    if unanswered_requests > 0 {
        return Err(format!("{unanswered_requests} client requests unanswered"));
    }
    Ok(())
}

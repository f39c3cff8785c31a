//! Durability, checked structurally: a message that promises something about the
//! sender's persistent state leaves only after that state is on the sender's disk.
//!
//! Source: Lamport, "Paxos Made Simple" (2001) §2.3 ("an acceptor must remember this
//! information even if it fails and then restarts"), and the barrier rule of
//! `concoord_paxos::Effect`. `docs/consensus.md` §(c) states the rule this file
//! enforces, message by message.
//!
//! The simulated shell calls [`on_send`] with the sender's disk (what has been
//! synced, never what is only written) at the moment the message leaves, so the
//! check does not depend on a crash striking at the right moment: a message that
//! runs ahead of its write is caught the first time it is sent. [`on_disk`] checks
//! the disk itself after every sync and every torn write.

use super::{Check, Violation};
use concoord_paxos::{DurableState, Message, Value};
use concoord_wire::{ReplicaId, Slot};

fn fail(detail: String) -> Check {
    Err(Violation { checker: "durability", detail })
}

fn disk_entry(disk: &DurableState, slot: Slot) -> Option<&concoord_paxos::AcceptedEntry> {
    disk.entries.iter().find(|e| e.slot == slot)
}

fn disk_floor(disk: &DurableState) -> Slot {
    disk.snapshot.as_ref().map_or(Slot::ZERO, |s| s.slot).max(disk.commit_max)
}

/// Whether the disk's entry `d` vouches for an acceptance of `value` at `ballot`:
/// it is that acceptance, or a later one at a higher ballot that replaced it. Writes
/// reach the disk in the order they were made, and the shell hands a write to the
/// disk as soon as the core makes it, so a message that waited for its write can
/// leave after a later write replaced it (the same as a message delayed in the
/// network): the replaced record was durable before the later one.
fn holds(d: &concoord_paxos::AcceptedEntry, ballot: concoord_paxos::Ballot, value: &Value) -> bool {
    d.ballot > ballot || (d.ballot == ballot && d.value == *value)
}

/// `me` sends `msg`; `disk` is what `me` has synced. `memory` gives the value the
/// sender's log holds at a slot now (for an `Accepted` of a slot the sender already
/// knew chosen with that value, which it acknowledges without writing again).
pub fn on_send(
    me: ReplicaId,
    disk: &DurableState,
    msg: &Message,
    memory: impl Fn(Slot) -> Option<Value>,
) -> Check {
    match msg {
        // A candidate or leader's own promise of its ballot: a restart must never
        // let it pick the same ballot again and propose other values under it.
        Message::Prepare { ballot, .. } | Message::Accept { ballot, .. }
            if ballot.leader == me && disk.promised < *ballot =>
        {
            fail(format!(
                "{me:?} sent {} at {ballot:?} with only {:?} promised on disk",
                msg.kind(),
                disk.promised
            ))
        }
        // "I promise to accept nothing below `ballot`, and this is everything I
        // accepted above the slots you asked about."
        Message::Promise { ballot, accepted, .. } => {
            if disk.promised < *ballot {
                return fail(format!(
                    "{me:?} sent Promise {ballot:?} with only {:?} promised on disk",
                    disk.promised
                ));
            }
            let snapshot = disk.snapshot.as_ref().map_or(Slot::ZERO, |s| s.slot);
            for e in accepted {
                // A snapshot written after the entry (the shell hands writes to the
                // disk ahead of the effects that wait) covers it: chosen and settled.
                if e.slot <= snapshot {
                    continue;
                }
                let on_disk = disk_entry(disk, e.slot);
                if !on_disk.is_some_and(|d| holds(d, e.ballot, &e.value)) {
                    return fail(format!(
                        "{me:?} reported slot {:?} accepted at {:?} in Promise {ballot:?}, but its disk holds {:?}",
                        e.slot,
                        e.ballot,
                        on_disk.map(|d| d.ballot)
                    ));
                }
            }
            Ok(())
        }
        // "I accepted these slots at `ballot`": each entry is on disk at that
        // ballot, or the slot was already chosen and its value durable here.
        Message::Accepted { ballot, slots, .. } => {
            if disk.promised < *ballot {
                return fail(format!(
                    "{me:?} sent Accepted {ballot:?} with only {:?} promised on disk",
                    disk.promised
                ));
            }
            for slot in slots {
                if *slot <= disk_floor(disk) {
                    continue;
                }
                let ok = match disk_entry(disk, *slot) {
                    Some(d) if d.ballot >= *ballot => true,
                    Some(d) => memory(*slot).is_some_and(|v| v == d.value),
                    None => false,
                };
                if !ok {
                    return fail(format!(
                        "{me:?} sent Accepted {ballot:?} for slot {slot:?} before its entry was on disk (disk: {:?})",
                        disk_entry(disk, *slot).map(|d| d.ballot)
                    ));
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The disk itself: every slot up to its commit point above its snapshot has its
/// entry ("every slot up to here is chosen, and its entry is on disk",
/// `PersistOp::Commit`).
pub fn on_disk(me: ReplicaId, disk: &DurableState) -> Check {
    let snap = disk.snapshot.as_ref().map_or(Slot::ZERO, |s| s.slot);
    if disk.commit_max <= snap {
        return Ok(());
    }
    let need = disk.commit_max.0 - snap.0;
    let have =
        disk.entries.iter().filter(|e| e.slot > snap && e.slot <= disk.commit_max).count() as u64;
    if have < need {
        let missing = (snap.0 + 1..=disk.commit_max.0)
            .find(|s| disk_entry(disk, Slot(*s)).is_none())
            .unwrap_or(0);
        return fail(format!(
            "{me:?}'s disk has commit point {:?} but no entry at slot {missing}",
            disk.commit_max
        ));
    }
    Ok(())
}

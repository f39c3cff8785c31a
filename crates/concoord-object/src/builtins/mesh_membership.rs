//! `MeshMembership`: the original ConCoord group-membership object
//! (`concoord/object/meshmembership.py`), written with `#[object]`, with its bugs fixed.
//!
//! It keeps named groups. Each group has an *epoch* (starting at 1, bumped on every
//! membership change), a `minsize` (kept and reported nowhere, as in the original), its
//! members with a count of failure reports ("strikes") against each, and the calls
//! parked in `wait`. A join is approved only against the current epoch, so two
//! concurrent joiners cannot both succeed on the same view; members report failures of
//! other members, and a member reported by a majority (strikes × 2 ≥ members) is removed.
//!
//! Fixed from the original: `wait` really parks the caller until the group's membership
//! changes (the original raised NameError); waking waiters no longer turns the waker's
//! own result into None; `notify_failure` returns `[False, epoch]` below the majority
//! and `[True, epoch]` when it removes the node (the original returned None, or crashed
//! with NameError); members are reported as a list of names everywhere, never as the
//! internal dict of strike counts. It is deliberately not a failure detector (nothing
//! here watches anyone: members report) and does not enforce `minsize`.

use crate::{Blocking, CallId, Ctx, IntoValue, ObjectError, Types, Value};
use concoord_wire::SessionId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One group: its epoch, members (name → strikes) and parked `wait` calls.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Group {
    epoch: u64,
    minsize: i64,
    members: BTreeMap<String, u64>,
    /// Calls parked in `wait`, woken (all at once) by the next membership change.
    waiters: Vec<CallId>,
}

impl Group {
    fn member_names(&self) -> Vec<String> {
        self.members.keys().cloned().collect()
    }

    /// A membership change: a new epoch, and every waiter woken with it.
    fn changed(&mut self, ctx: &mut Ctx) {
        self.epoch += 1;
        for call in std::mem::take(&mut self.waiters) {
            ctx.wake(call, self.epoch);
        }
    }
}

/// Replicated membership of named groups: `MeshMembership()` in the original.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MeshMembership {
    groups: BTreeMap<String, Group>,
}

#[concoord_object::object]
impl MeshMembership {
    /// Creates group `gname` at epoch 1 with no members; returns None. A no-op when the
    /// group exists (its `minsize` is not changed).
    pub fn add_group(&mut self, gname: String, minsize: i64) {
        self.groups.entry(gname).or_insert_with(|| Group {
            epoch: 1,
            minsize,
            members: BTreeMap::new(),
            waiters: Vec::new(),
        });
    }

    /// Removes group `gname`; returns None. Its parked `wait` calls get `KeyError(gname)`.
    pub fn remove_group(&mut self, ctx: &mut Ctx, gname: String) -> Result<(), ObjectError> {
        let group = self.groups.remove(&gname).ok_or_else(|| unknown(&gname))?;
        for call in group.waiters {
            ctx.wake_error(call, unknown(&gname));
        }
        Ok(())
    }

    /// The group's member names, sorted.
    pub fn get_group_members(&self, gname: String) -> Result<Vec<String>, ObjectError> {
        Ok(self.group(&gname)?.member_names())
    }

    pub fn get_group_epoch(&self, gname: String) -> Result<u64, ObjectError> {
        Ok(self.group(&gname)?.epoch)
    }

    /// `[members, epoch]`.
    pub fn get_group_state(&self, gname: String) -> Result<(Vec<String>, u64), ObjectError> {
        let group = self.group(&gname)?;
        Ok((group.member_names(), group.epoch))
    }

    /// Admits `node` if `epochno` is the group's current epoch: the epoch goes up by one,
    /// `node` becomes a member with no strikes, every `wait` caller is woken with the
    /// new epoch, and the result is `[True, new epoch]`. Otherwise nothing changes and
    /// the result is `[False, current epoch]`.
    pub fn approve_join(
        &mut self,
        ctx: &mut Ctx,
        gname: String,
        node: String,
        epochno: u64,
    ) -> Result<(bool, u64), ObjectError> {
        let group = self.group_mut(&gname)?;
        if epochno != group.epoch {
            return Ok((false, group.epoch));
        }
        group.members.insert(node, 0);
        group.changed(ctx);
        Ok((true, group.epoch))
    }

    /// Parks the caller until the group's membership next changes (a join or a
    /// removal); it is then woken with the new epoch, or with `KeyError(gname)` if the
    /// group is removed first.
    pub fn wait(&mut self, ctx: &mut Ctx, gname: String) -> Result<Blocking<u64>, ObjectError> {
        let group = self.group_mut(&gname)?;
        group.waiters.push(ctx.call());
        Ok(Blocking::Park)
    }

    /// `[whether node is a member, epoch]`.
    pub fn check_member(&self, gname: String, node: String) -> Result<(bool, u64), ObjectError> {
        let group = self.group(&gname)?;
        Ok((group.members.contains_key(&node), group.epoch))
    }

    /// Reports that `node` failed, as seen at `epoch`.
    ///
    /// - A stale `epoch` changes nothing and returns `[members, current epoch]`, so the
    ///   reporter can catch up.
    /// - Otherwise `node` gets a strike (`KeyError(node)` if it is not a member). Once
    ///   a majority has reported it (strikes × 2 ≥ member count) it is removed, the
    ///   epoch goes up, `wait` callers are woken with it, and the result is
    ///   `[True, new epoch]`; below that, `[False, epoch]`.
    ///
    /// As in the original, reports are not tied to who sends them (one member may
    /// report twice) and strikes are kept across epochs until the node is removed or
    /// joins again.
    pub fn notify_failure(
        &mut self,
        ctx: &mut Ctx,
        gname: String,
        epoch: u64,
        node: String,
    ) -> Result<Value, ObjectError> {
        let group = self.group_mut(&gname)?;
        if epoch != group.epoch {
            return Ok((group.member_names(), group.epoch).into_value());
        }
        let count = group.members.len() as u64;
        let strikes = group.members.get_mut(&node).ok_or_else(|| ObjectError::key_error(&node))?;
        *strikes += 1;
        let removed = strikes.saturating_mul(2) >= count;
        if removed {
            group.members.remove(&node);
            group.changed(ctx);
        }
        Ok((removed, group.epoch).into_value())
    }

    /// The caller of a parked call gave up: forget it.
    #[concoord(cancel)]
    fn on_cancel(&mut self, _ctx: &mut Ctx, call: CallId) -> bool {
        let mut found = false;
        for group in self.groups.values_mut() {
            let before = group.waiters.len();
            group.waiters.retain(|c| *c != call);
            found |= group.waiters.len() != before;
        }
        found
    }

    /// A session ended: its parked `wait` calls are forgotten.
    #[concoord(session_closed)]
    fn on_session_closed(&mut self, _ctx: &mut Ctx, session: SessionId) {
        for group in self.groups.values_mut() {
            group.waiters.retain(|call| call.session != session);
        }
    }

    fn group(&self, gname: &str) -> Result<&Group, ObjectError> {
        self.groups.get(gname).ok_or_else(|| unknown(gname))
    }

    fn group_mut(&mut self, gname: &str) -> Result<&mut Group, ObjectError> {
        self.groups.get_mut(gname).ok_or_else(|| unknown(gname))
    }
}

/// `KeyError(gname)`, as the original's dict lookup raised.
fn unknown(gname: &str) -> ObjectError {
    ObjectError::key_error(gname)
}

/// Registers `MeshMembership` and the original's dotted name.
pub fn register(types: &mut Types) {
    types.register::<MeshMembership>(&["concoord.object.meshmembership.MeshMembership"]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Object, ObjectType, Outcome, Wake};
    use concoord_wire::{RequestNumber, Slot, Time};

    fn id(session: u64, request: u64) -> CallId {
        CallId { session: SessionId(session), request: RequestNumber(request) }
    }

    /// Runs `method` as call `(session, request)`; returns its outcome and the wakes.
    fn call_as(
        mesh: &mut MeshMembership,
        (session, request): (u64, u64),
        method: &str,
        args: &[Value],
    ) -> (Outcome, Vec<Wake>) {
        let mut wakes = Vec::new();
        let mut ctx = Ctx::new(id(session, request), Time(0), Slot(1), &mut wakes);
        let outcome = mesh.call(&mut ctx, method, args);
        (outcome, wakes)
    }

    fn call(mesh: &mut MeshMembership, method: &str, args: &[Value]) -> Outcome {
        let (outcome, wakes) = call_as(mesh, (1, 1), method, args);
        assert!(wakes.is_empty(), "{method} woke someone unexpectedly: {wakes:?}");
        outcome
    }

    fn s(text: &str) -> Value {
        Value::Str(text.into())
    }

    fn ok(value: impl IntoValue) -> Outcome {
        Outcome::Return(value.into_value())
    }

    fn woken(call: CallId, result: impl IntoValue) -> Wake {
        Wake { call, result: Ok(result.into_value()) }
    }

    /// A group `g` with members a, b, c at epoch 4.
    fn group_of_three() -> MeshMembership {
        let mut mesh = MeshMembership::construct(&[]).unwrap();
        assert_eq!(call(&mut mesh, "add_group", &[s("g"), Value::Int(2)]), ok(()));
        for (epoch, node) in [(1, "a"), (2, "b"), (3, "c")] {
            let joined = call(&mut mesh, "approve_join", &[s("g"), s(node), Value::Int(epoch)]);
            assert_eq!(joined, ok((true, epoch + 1)));
        }
        mesh
    }

    #[test]
    fn joins_are_approved_against_the_current_epoch() {
        let mut mesh = MeshMembership::default();
        call(&mut mesh, "add_group", &[s("g"), Value::Int(3)]);
        assert_eq!(call(&mut mesh, "get_group_epoch", &[s("g")]), ok(1u64));
        let joined = call(&mut mesh, "approve_join", &[s("g"), s("a"), Value::Int(1)]);
        assert_eq!(joined, ok((true, 2u64)));
        let stale = call(&mut mesh, "approve_join", &[s("g"), s("b"), Value::Int(1)]);
        assert_eq!(stale, ok((false, 2u64)), "the original answered (True, 2) here");
        assert_eq!(call(&mut mesh, "get_group_members", &[s("g")]), ok(vec!["a"]));
        assert_eq!(call(&mut mesh, "get_group_state", &[s("g")]), ok((vec!["a"], 2u64)));
        assert_eq!(
            mesh.query("check_member", &[s("g"), s("a")]),
            Some(Ok((true, 2u64).into_value()))
        );
        assert_eq!(
            mesh.query("check_member", &[s("g"), s("b")]),
            Some(Ok((false, 2u64).into_value()))
        );
        // add_group on an existing group changes nothing.
        call(&mut mesh, "add_group", &[s("g"), Value::Int(9)]);
        assert_eq!(mesh.groups["g"].minsize, 3);
        assert_eq!(mesh.groups["g"].epoch, 2);
    }

    #[test]
    fn every_method_raises_key_error_for_an_unknown_group() {
        let mut mesh = MeshMembership::default();
        let calls: [(&str, Vec<Value>); 8] = [
            ("remove_group", vec![s("nope")]),
            ("get_group_members", vec![s("nope")]),
            ("get_group_epoch", vec![s("nope")]),
            ("get_group_state", vec![s("nope")]),
            ("approve_join", vec![s("nope"), s("a"), Value::Int(1)]),
            ("wait", vec![s("nope")]),
            ("check_member", vec![s("nope"), s("a")]),
            ("notify_failure", vec![s("nope"), Value::Int(1), s("a")]),
        ];
        for (method, args) in calls {
            assert_eq!(
                call(&mut mesh, method, &args),
                Outcome::Raise(ObjectError::key_error("nope")),
                "{method}"
            );
        }
    }

    #[test]
    fn wait_parks_until_the_membership_changes() {
        let mut mesh = MeshMembership::default();
        call(&mut mesh, "add_group", &[s("g"), Value::Int(1)]);
        assert_eq!(call_as(&mut mesh, (7, 1), "wait", &[s("g")]), (Outcome::Park, vec![]));
        assert_eq!(call_as(&mut mesh, (8, 3), "wait", &[s("g")]), (Outcome::Park, vec![]));
        // A stale join changes nothing and wakes nobody.
        let (outcome, wakes) =
            call_as(&mut mesh, (9, 1), "approve_join", &[s("g"), s("a"), Value::Int(5)]);
        assert_eq!((outcome, wakes), (ok((false, 1u64)), vec![]));
        // A successful join wakes every waiter with the new epoch, and the joiner still
        // gets its own result (the original's joiner got None).
        let (outcome, wakes) =
            call_as(&mut mesh, (9, 2), "approve_join", &[s("g"), s("a"), Value::Int(1)]);
        assert_eq!(outcome, ok((true, 2u64)));
        assert_eq!(wakes, vec![woken(id(7, 1), 2u64), woken(id(8, 3), 2u64)]);
        assert!(mesh.groups["g"].waiters.is_empty());
    }

    #[test]
    fn a_majority_of_failure_reports_removes_a_member() {
        let mut mesh = group_of_three();
        assert_eq!(call_as(&mut mesh, (5, 1), "wait", &[s("g")]).0, Outcome::Park);
        // One strike out of three members: 2 < 3, no change.
        let report = call(&mut mesh, "notify_failure", &[s("g"), Value::Int(4), s("c")]);
        assert_eq!(report, ok((false, 4u64)));
        // A stale report answers with the current view.
        let stale = call(&mut mesh, "notify_failure", &[s("g"), Value::Int(3), s("c")]);
        assert_eq!(stale, ok((vec!["a", "b", "c"], 4u64)));
        assert_eq!(mesh.groups["g"].members["c"], 1, "a stale report is not a strike");
        // The second strike is a majority: c is removed and the waiter woken.
        let (outcome, wakes) =
            call_as(&mut mesh, (1, 2), "notify_failure", &[s("g"), Value::Int(4), s("c")]);
        assert_eq!(outcome, ok((true, 5u64)));
        assert_eq!(wakes, vec![woken(id(5, 1), 5u64)]);
        assert_eq!(call(&mut mesh, "get_group_state", &[s("g")]), ok((vec!["a", "b"], 5u64)));
        // A non-member cannot be reported.
        let missing = call(&mut mesh, "notify_failure", &[s("g"), Value::Int(5), s("c")]);
        assert_eq!(missing, Outcome::Raise(ObjectError::key_error("c")));
        // With two members a single report is a majority.
        let report = call(&mut mesh, "notify_failure", &[s("g"), Value::Int(5), s("b")]);
        assert_eq!(report, ok((true, 6u64)));
        assert_eq!(call(&mut mesh, "get_group_members", &[s("g")]), ok(vec!["a"]));
    }

    #[test]
    fn removing_a_group_wakes_its_waiters_with_key_error() {
        let mut mesh = group_of_three();
        call(&mut mesh, "add_group", &[s("other"), Value::Int(1)]);
        call_as(&mut mesh, (5, 1), "wait", &[s("g")]);
        call_as(&mut mesh, (6, 1), "wait", &[s("other")]);
        let (outcome, wakes) = call_as(&mut mesh, (1, 2), "remove_group", &[s("g")]);
        assert_eq!(outcome, ok(()));
        let expected = Wake { call: id(5, 1), result: Err(ObjectError::key_error("g")) };
        assert_eq!(wakes, vec![expected]);
        assert_eq!(
            call(&mut mesh, "get_group_epoch", &[s("g")]),
            Outcome::Raise(ObjectError::key_error("g"))
        );
        assert_eq!(mesh.groups["other"].waiters, vec![id(6, 1)]);
    }

    #[test]
    fn a_closed_session_forgets_its_waiters() {
        let mut mesh = group_of_three();
        call(&mut mesh, "add_group", &[s("h"), Value::Int(1)]);
        call_as(&mut mesh, (5, 1), "wait", &[s("g")]);
        call_as(&mut mesh, (6, 1), "wait", &[s("g")]);
        call_as(&mut mesh, (5, 2), "wait", &[s("h")]);
        let mut wakes = Vec::new();
        let mut ctx = Ctx::new(id(0, 0), Time(0), Slot(2), &mut wakes);
        mesh.session_closed(&mut ctx, SessionId(5));
        assert!(wakes.is_empty(), "nobody proceeds because a waiter left");
        assert_eq!(mesh.groups["g"].waiters, vec![id(6, 1)]);
        assert!(mesh.groups["h"].waiters.is_empty());
        let (_, wakes) =
            call_as(&mut mesh, (1, 2), "approve_join", &[s("g"), s("d"), Value::Int(4)]);
        assert_eq!(wakes, vec![woken(id(6, 1), 5u64)]);
    }

    #[test]
    fn snapshot_and_restore_keep_groups_and_waiters() {
        let mut mesh = group_of_three();
        call(&mut mesh, "notify_failure", &[s("g"), Value::Int(4), s("b")]);
        call_as(&mut mesh, (5, 1), "wait", &[s("g")]);
        let mut restored = MeshMembership::restore(&mesh.snapshot().unwrap()).unwrap();
        assert_eq!(restored, mesh);
        // The restored waiter is still woken by the next change.
        let (_, wakes) =
            call_as(&mut restored, (1, 2), "notify_failure", &[s("g"), Value::Int(4), s("b")]);
        assert_eq!(wakes, vec![woken(id(5, 1), 5u64)]);
        assert!(MeshMembership::restore(b"not a snapshot").is_err());
    }

    #[test]
    fn is_registered_under_both_names() {
        let mut types = Types::new();
        register(&mut types);
        for name in ["MeshMembership", "concoord.object.meshmembership.MeshMembership"] {
            assert_eq!(types.canonical(name), Some("MeshMembership"));
        }
    }
}

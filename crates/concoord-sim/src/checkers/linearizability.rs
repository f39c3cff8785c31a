//! Linearizability checker for one object's client history: the Wing–Gong search (Wing & Gong,
//! "Testing and Verifying Concurrent Objects", 1993) with Lowe's memoization of explored
//! configurations (Lowe, "Testing for linearizability", 2017). It deliberately is not a model
//! checker, does not split a history by key (the caller passes one independent object at a
//! time), never reads a clock, and never claims success when its state budget runs out.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// A sequential specification: the object's own deterministic code is the spec.
pub trait Model {
    type State: Clone + Ord + std::fmt::Debug;
    type Op: Clone + std::fmt::Debug;
    type Ret: Clone + PartialEq + std::fmt::Debug;
    fn init(&self) -> Self::State;
    /// Apply `op` to `state`; `Some(next)` if the operation may return `ret` from `state`, else `None`.
    fn step(&self, state: &Self::State, op: &Self::Op, ret: &Self::Ret) -> Option<Self::State>;
    /// Apply `op` to `state` when its answer was never observed (a pending operation), so any
    /// return value is acceptable; `None` only if `op` cannot take effect from `state` at all.
    /// It is required rather than provided because only the object knows its own effect.
    fn step_pending(&self, state: &Self::State, op: &Self::Op) -> Option<Self::State>;
}

/// One operation of a history. Times are simulated microseconds.
#[derive(Clone, Debug)]
pub struct Operation<O, R> {
    pub client: u64,
    pub invoke: u64,
    /// `None`: never answered (it may or may not have taken effect; it may be linearized anywhere after `invoke`, or omitted).
    pub complete: Option<(u64, R)>,
    pub op: O,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    NotLinearizable { explanation: String },
    Unknown { reason: String },
}

/// Check one history (all operations on one independent object/key). `max_states` bounds the memo table;
/// if exceeded return Verdict::Unknown (never claim success).
pub fn check<M: Model>(
    model: &M,
    history: &[Operation<M::Op, M::Ret>],
    max_states: usize,
) -> Verdict {
    // A recorder bug must surface as a verdict, not as a panic deep inside the search.
    if let Some((index, operation)) = history
        .iter()
        .enumerate()
        .find(|(_, o)| o.complete.as_ref().is_some_and(|(t, _)| *t < o.invoke))
    {
        return Verdict::Unknown {
            reason: format!(
                "operation #{index} of client {} completes before it was invoked at {}: \
                 the history is malformed, fix the recorder",
                operation.client, operation.invoke
            ),
        };
    }

    let mut list = EntryList::new(history);
    let completed_count = history.iter().filter(|o| o.complete.is_some()).count();
    let mut completed_linearized = 0;
    let mut linearized = Bitset::new(history.len());
    let mut state = model.init();
    // Each frame undoes one lift: the call node that was lifted and the state before it.
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    // Lowe's cache: configurations (linearized set, state) already reached. Keying by the
    // bitset first lets a lookup borrow the live bitset instead of allocating a key.
    let mut cache: BTreeMap<Vec<u64>, BTreeSet<M::State>> = BTreeMap::new();
    let mut cache_count = 0;
    let mut deepest: Option<DeadEnd<M::State>> = None;

    let mut node = list.first();
    loop {
        // Pending calls may be left out entirely, so success only needs every answered operation.
        if completed_linearized == completed_count {
            return Verdict::Linearizable;
        }
        match list.nodes[node] {
            Node::Call { op_index, .. } => {
                let operation = &history[op_index];
                let next_state = match &operation.complete {
                    Some((_, ret)) => model.step(&state, &operation.op, ret),
                    None => model.step_pending(&state, &operation.op),
                };
                if let Some(next_state) = next_state {
                    linearized.set(op_index);
                    let seen =
                        cache.get(linearized.words()).is_some_and(|s| s.contains(&next_state));
                    if !seen {
                        if cache_count >= max_states {
                            return Verdict::Unknown {
                                reason: format!(
                                    "gave up after exploring {max_states} configurations of a \
                                     {}-operation history without a verdict: raise max_states \
                                     or shorten the history",
                                    history.len()
                                ),
                            };
                        }
                        cache
                            .entry(linearized.words().to_vec())
                            .or_default()
                            .insert(next_state.clone());
                        cache_count += 1;
                        stack.push((node, std::mem::replace(&mut state, next_state)));
                        completed_linearized += usize::from(operation.complete.is_some());
                        list.lift(node);
                        node = list.first();
                        continue;
                    }
                    // A cached configuration was already explored and failed (success would have
                    // ended the search), so exploring it again is wasted work: Lowe's pruning.
                    linearized.clear(op_index);
                }
                node = list.next[node];
            }
            Node::Return { op_index } => {
                // This operation's deadline has come and it is still not linearized: every
                // choice made so far leads nowhere, so the latest one is undone.
                let depth = stack.len();
                if deepest.as_ref().is_none_or(|d| depth > d.depth) {
                    deepest = Some(DeadEnd {
                        depth,
                        state: state.clone(),
                        candidates: list.calls_before(node),
                        blocking: op_index,
                    });
                }
                let Some((call, previous)) = stack.pop() else {
                    let dead_end = deepest.expect("a dead end was just recorded");
                    return Verdict::NotLinearizable { explanation: dead_end.explain(history) };
                };
                let Node::Call { op_index, .. } = list.nodes[call] else {
                    unreachable!("only call nodes are lifted");
                };
                linearized.clear(op_index);
                completed_linearized -= usize::from(history[op_index].complete.is_some());
                list.unlift(call);
                state = previous;
                node = list.next[call];
            }
            // The walk always stops at the first return node, which exists while some answered
            // operation is unlinearized, so it can never run off either end of the list.
            Node::Head | Node::Tail => unreachable!("walked past the last return node"),
        }
    }
}

/// The deepest point the search reached before it had to backtrack: what the explanation shows.
#[derive(Debug)]
struct DeadEnd<S> {
    depth: usize,
    state: S,
    candidates: Vec<usize>,
    blocking: usize,
}

impl<S: std::fmt::Debug> DeadEnd<S> {
    fn explain<O: std::fmt::Debug, R: std::fmt::Debug>(
        &self,
        history: &[Operation<O, R>],
    ) -> String {
        let mut text = format!(
            "history is not linearizable: the longest linearizable prefix found places {} of {} \
             operations and reaches state {:?}; from there the model accepts none of the \
             operations that could go next:",
            self.depth,
            history.len(),
            self.state
        );
        for (position, &op_index) in self.candidates.iter().enumerate() {
            let separator = if position == 0 { " [" } else { "; " };
            let _ = write!(text, "{separator}{}", describe(op_index, &history[op_index]));
        }
        // The blocking operation is always among the candidates, so name only its deadline.
        let deadline = history[self.blocking].complete.as_ref().map_or(0, |(t, _)| *t);
        let _ = write!(
            text,
            "]; and #{} must take effect by its completion at {deadline}, so nothing invoked \
             later may go first",
            self.blocking
        );
        text
    }
}

fn describe<O: std::fmt::Debug, R: std::fmt::Debug>(index: usize, o: &Operation<O, R>) -> String {
    match &o.complete {
        Some((t, ret)) => format!(
            "#{index} client {} {:?} invoked at {} completed at {t} returning {ret:?}",
            o.client, o.op, o.invoke
        ),
        None => format!(
            "#{index} client {} {:?} invoked at {} never answered",
            o.client, o.op, o.invoke
        ),
    }
}

#[derive(Clone, Copy, Debug)]
enum Node {
    Head,
    /// `return_node` is `None` for a pending operation, which has no deadline.
    Call {
        op_index: usize,
        return_node: Option<usize>,
    },
    Return {
        op_index: usize,
    },
    Tail,
}

/// The history's call and return events in time order, as a doubly linked list whose removed
/// nodes keep their links (dancing links), so undoing a lift is O(1) and allocates nothing.
#[derive(Debug)]
struct EntryList {
    nodes: Vec<Node>,
    prev: Vec<usize>,
    next: Vec<usize>,
}

impl EntryList {
    fn new<O, R>(history: &[Operation<O, R>]) -> EntryList {
        // Calls sort before returns at the same instant, because an operation only precedes
        // another in real time if it completed strictly before the other was invoked.
        let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * history.len());
        for (op_index, o) in history.iter().enumerate() {
            events.push((o.invoke, false, op_index));
            if let Some((t, _)) = &o.complete {
                events.push((*t, true, op_index));
            }
        }
        events.sort_unstable();

        let mut nodes = Vec::with_capacity(events.len() + 2);
        nodes.push(Node::Head);
        let mut return_nodes = vec![None; history.len()];
        for (position, &(_, is_return, op_index)) in events.iter().enumerate() {
            if is_return {
                return_nodes[op_index] = Some(position + 1);
            }
        }
        for &(_, is_return, op_index) in &events {
            nodes.push(if is_return {
                Node::Return { op_index }
            } else {
                Node::Call { op_index, return_node: return_nodes[op_index] }
            });
        }
        nodes.push(Node::Tail);
        let count = nodes.len();
        EntryList {
            nodes,
            prev: (0..count).map(|n| n.saturating_sub(1)).collect(),
            next: (0..count).map(|n| (n + 1).min(count - 1)).collect(),
        }
    }

    fn first(&self) -> usize {
        self.next[0]
    }

    fn unlink(&mut self, node: usize) {
        let (before, after) = (self.prev[node], self.next[node]);
        self.next[before] = after;
        self.prev[after] = before;
    }

    fn relink(&mut self, node: usize) {
        let (before, after) = (self.prev[node], self.next[node]);
        self.next[before] = node;
        self.prev[after] = node;
    }

    /// Remove a call and its return; lifts and unlifts nest like a stack, which is what
    /// makes `relink` in reverse order restore the list exactly.
    fn lift(&mut self, call: usize) {
        let Node::Call { return_node, .. } = self.nodes[call] else { unreachable!("lift a call") };
        self.unlink(call);
        if let Some(r) = return_node {
            self.unlink(r);
        }
    }

    fn unlift(&mut self, call: usize) {
        let Node::Call { return_node, .. } = self.nodes[call] else {
            unreachable!("unlift a call")
        };
        if let Some(r) = return_node {
            self.relink(r);
        }
        self.relink(call);
    }

    /// Operations whose calls sit before `stop`: the ones that could be linearized next.
    fn calls_before(&self, stop: usize) -> Vec<usize> {
        let mut calls = Vec::new();
        let mut node = self.first();
        while node != stop {
            if let Node::Call { op_index, .. } = self.nodes[node] {
                calls.push(op_index);
            }
            node = self.next[node];
        }
        calls
    }
}

/// The set of linearized operations, one bit per operation index.
#[derive(Debug)]
struct Bitset {
    words: Vec<u64>,
}

impl Bitset {
    fn new(bits: usize) -> Bitset {
        Bitset { words: vec![0; bits.div_ceil(64)] }
    }
    fn set(&mut self, bit: usize) {
        self.words[bit / 64] |= 1 << (bit % 64);
    }
    fn clear(&mut self, bit: usize) {
        self.words[bit / 64] &= !(1 << (bit % 64));
    }
    fn words(&self) -> &[u64] {
        &self.words
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A register of `i64`, starting at 0: the spec the tests check histories against.
    #[derive(Debug)]
    struct Register;

    #[derive(Clone, Copy, Debug)]
    enum Op {
        Write(i64),
        Read,
        /// Adds to the register and returns the new value.
        Add(i64),
    }

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Ret {
        Ok,
        Value(i64),
    }

    impl Model for Register {
        type State = i64;
        type Op = Op;
        type Ret = Ret;
        fn init(&self) -> i64 {
            0
        }
        fn step(&self, state: &i64, op: &Op, ret: &Ret) -> Option<i64> {
            let next = self.step_pending(state, op)?;
            let expected = match op {
                Op::Write(_) => Ret::Ok,
                Op::Read | Op::Add(_) => Ret::Value(next),
            };
            (*ret == expected).then_some(next)
        }
        fn step_pending(&self, state: &i64, op: &Op) -> Option<i64> {
            Some(match op {
                Op::Write(v) => *v,
                Op::Read => *state,
                Op::Add(d) => state + d,
            })
        }
    }

    type History = Vec<Operation<Op, Ret>>;

    fn done(client: u64, invoke: u64, complete: u64, op: Op, ret: Ret) -> Operation<Op, Ret> {
        Operation { client, invoke, complete: Some((complete, ret)), op }
    }

    fn pending(client: u64, invoke: u64, op: Op) -> Operation<Op, Ret> {
        Operation { client, invoke, complete: None, op }
    }

    fn verdict(history: &[Operation<Op, Ret>]) -> Verdict {
        check(&Register, history, 1_000_000)
    }

    fn assert_rejected(history: &[Operation<Op, Ret>]) -> String {
        match verdict(history) {
            Verdict::NotLinearizable { explanation } => explanation,
            other => panic!("expected NotLinearizable, got {other:?}"),
        }
    }

    #[test]
    fn empty_history_is_linearizable() {
        assert_eq!(verdict(&[]), Verdict::Linearizable);
    }

    #[test]
    fn sequential_history() {
        let history = vec![
            done(1, 0, 1, Op::Write(3), Ret::Ok),
            done(1, 2, 3, Op::Read, Ret::Value(3)),
            done(2, 4, 5, Op::Add(4), Ret::Value(7)),
            done(1, 6, 7, Op::Read, Ret::Value(7)),
        ];
        assert_eq!(verdict(&history), Verdict::Linearizable);
        let mut wrong_add = history.clone();
        wrong_add[2].complete = Some((5, Ret::Value(4)));
        assert_rejected(&wrong_add);
    }

    #[test]
    fn concurrent_writes_with_orderable_reads() {
        // Only the order Write(2), Read=2, Write(1), Read=1 explains this history.
        let history = vec![
            done(1, 0, 10, Op::Write(1), Ret::Ok),
            done(2, 0, 10, Op::Write(2), Ret::Ok),
            done(3, 5, 15, Op::Read, Ret::Value(2)),
            done(4, 12, 20, Op::Read, Ret::Value(1)),
        ];
        assert_eq!(verdict(&history), Verdict::Linearizable);
    }

    #[test]
    fn stale_read_after_completed_write_is_rejected() {
        let history =
            vec![done(1, 0, 10, Op::Write(1), Ret::Ok), done(2, 20, 30, Op::Read, Ret::Value(0))];
        let explanation = assert_rejected(&history);
        assert!(explanation.contains("places 1 of 2"), "{explanation}");
        assert!(explanation.contains("#1 client 2 Read invoked at 20"), "{explanation}");
    }

    #[test]
    fn read_of_a_value_never_written_is_rejected() {
        let history = vec![
            done(1, 0, 10, Op::Write(1), Ret::Ok),
            done(2, 5, 15, Op::Read, Ret::Value(42)),
            done(3, 5, 15, Op::Write(2), Ret::Ok),
        ];
        let explanation = assert_rejected(&history);
        assert!(explanation.contains("Value(42)"), "{explanation}");
    }

    #[test]
    fn pending_write_may_or_may_not_take_effect() {
        let write = pending(1, 5, Op::Write(1));
        let took_effect = vec![write.clone(), done(2, 10, 20, Op::Read, Ret::Value(1))];
        let did_not = vec![write.clone(), done(2, 10, 20, Op::Read, Ret::Value(0))];
        assert_eq!(verdict(&took_effect), Verdict::Linearizable);
        assert_eq!(verdict(&did_not), Verdict::Linearizable);
        // Once a read has seen its effect, the write cannot be undone.
        let flicker = vec![
            write,
            done(2, 10, 20, Op::Read, Ret::Value(1)),
            done(2, 30, 40, Op::Read, Ret::Value(0)),
        ];
        assert_rejected(&flicker);
    }

    #[test]
    fn pending_op_effect_is_observed_only_after_its_invoke() {
        let history = vec![
            done(1, 0, 1, Op::Write(10), Ret::Ok),
            pending(2, 2, Op::Add(5)),
            done(3, 50, 60, Op::Read, Ret::Value(15)),
            done(3, 70, 80, Op::Add(1), Ret::Value(16)),
        ];
        assert_eq!(verdict(&history), Verdict::Linearizable);
        // The same effect seen before the pending Add was even invoked is impossible.
        let early = vec![
            done(1, 0, 1, Op::Write(10), Ret::Ok),
            done(3, 3, 4, Op::Read, Ret::Value(15)),
            pending(2, 5, Op::Add(5)),
        ];
        assert_rejected(&early);
    }

    #[test]
    fn real_time_order_between_clients() {
        let ordered = vec![
            done(1, 0, 10, Op::Write(1), Ret::Ok),
            done(2, 20, 30, Op::Write(2), Ret::Ok),
            done(3, 40, 50, Op::Read, Ret::Value(1)),
        ];
        assert_rejected(&ordered);
        // Completing at the very instant the other is invoked counts as concurrent.
        let touching = vec![
            done(1, 0, 10, Op::Write(1), Ret::Ok),
            done(2, 10, 30, Op::Write(2), Ret::Ok),
            done(3, 40, 50, Op::Read, Ret::Value(1)),
        ];
        assert_eq!(verdict(&touching), Verdict::Linearizable);
    }

    #[test]
    fn malformed_operation_is_unknown() {
        let history = vec![done(1, 10, 5, Op::Read, Ret::Value(0))];
        assert!(matches!(verdict(&history), Verdict::Unknown { .. }));
    }

    #[test]
    fn exhausted_state_budget_is_unknown_never_success() {
        // Twelve overlapping writes and an impossible read force the search through every
        // subset of writes before it can reject, far more than 1000 configurations.
        let mut history: History =
            (0..12).map(|c| done(c, 0, 100, Op::Write(c as i64 + 1), Ret::Ok)).collect();
        history.push(done(99, 200, 300, Op::Read, Ret::Value(-1)));
        assert!(matches!(check(&Register, &history, 1000), Verdict::Unknown { .. }));
        assert_rejected(&history);
        // The same budget is plenty for a valid read, so a tiny budget is not always Unknown.
        history.last_mut().unwrap().complete = Some((300, Ret::Value(12)));
        assert_eq!(check(&Register, &history, 1000), Verdict::Linearizable);
    }

    /// splitmix64: a seeded generator, so every run builds the same histories.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, bound: u64) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) % bound
        }
    }

    /// A linearizable history by construction: each operation takes effect at a random point
    /// inside its interval, and returns are computed by a sequential register in that order.
    /// Values only ever grow from 0, so `Value(-1)` is never a legal answer.
    fn random_history(seed: u64, clients: u64, ops_per_client: u64) -> History {
        let mut rng = Rng(seed);
        let mut history = History::new();
        let mut effect_points = Vec::new();
        let mut next_value = 1;
        for client in 0..clients {
            let mut now = rng.below(10);
            for _ in 0..ops_per_client {
                let op = match rng.below(5) {
                    0 | 1 => {
                        next_value += 1;
                        Op::Write(next_value)
                    }
                    2 | 3 => Op::Read,
                    _ => Op::Add(1 + rng.below(5) as i64),
                };
                let invoke = now;
                let effect = invoke + rng.below(20);
                let complete = effect + rng.below(20);
                let is_pending = rng.below(150) == 0;
                // A pending operation takes effect only half the time (e.g. lost in a crash).
                if !is_pending || rng.below(2) == 0 {
                    effect_points.push((effect, history.len()));
                }
                let ret = Ret::Ok; // Filled in below, once the sequential order is known.
                history.push(Operation {
                    client,
                    invoke,
                    complete: (!is_pending).then_some((complete, ret)),
                    op,
                });
                now = complete + 1 + rng.below(10);
            }
        }
        effect_points.sort_unstable();
        let mut value = 0;
        for (_, index) in effect_points {
            let operation = &mut history[index];
            value = Register.step_pending(&value, &operation.op).unwrap();
            let ret = match operation.op {
                Op::Write(_) => Ret::Ok,
                Op::Read | Op::Add(_) => Ret::Value(value),
            };
            if let Some((_, r)) = &mut operation.complete {
                *r = ret;
            }
        }
        history
    }

    /// Make the completed read nearest the middle of `history` return an impossible value.
    fn corrupt_middle_read(history: &mut History) {
        let middle = history.iter().map(|o| o.invoke).max().unwrap() / 2;
        let read = history
            .iter_mut()
            .filter(|o| matches!(o.op, Op::Read) && o.complete.is_some())
            .min_by_key(|o| o.invoke.abs_diff(middle))
            .expect("the history has a completed read");
        read.complete.as_mut().unwrap().1 = Ret::Value(-1);
    }

    #[test]
    fn random_linearizable_histories_pass_and_corrupted_ones_fail() {
        for seed in 0..40 {
            let mut history = random_history(seed, 2 + seed % 5, 40);
            assert_eq!(verdict(&history), Verdict::Linearizable, "seed {seed}");
            corrupt_middle_read(&mut history);
            assert_rejected(&history);
        }
    }

    #[test]
    fn large_random_history() {
        let mut history = random_history(7, 8, 250);
        assert_eq!(history.len(), 2000);
        assert!(history.iter().any(|o| o.complete.is_none()), "exercise pending operations");
        assert_eq!(verdict(&history), Verdict::Linearizable);
        corrupt_middle_read(&mut history);
        let explanation = assert_rejected(&history);
        assert!(explanation.contains("Value(-1)"), "{explanation}");
    }
}

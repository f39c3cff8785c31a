//! Adversarial schedules: network cuts aimed at the leader at the moments Paxos
//! is most fragile, where random faults rarely strike. Each plan is a legal
//! asynchronous run (messages lost or delayed, a clock that runs slow), so a
//! correct core survives every one of them; an incorrect one shows it.
//!
//! - **Leader churn**: one leader after another is cut off. Either its Accepts
//!   reach only a minority (its values are accepted but not chosen), or it is cut
//!   off completely a message delay after it proposed (its values may be chosen
//!   while no follower has heard so). The next leader competes for the same slots
//!   with other values, and the one after it finds reports of several values at
//!   several ballots for one slot ("Paxos Made Simple" §2.2: it must adopt the
//!   highest-ballot one).
//! - **Competing leaders**: the leader is cut off and proposes alone; once
//!   another leads and one of its acceptors holds another value at a slot where
//!   the first holds its own, the second is cut off (its value may be chosen
//!   where nobody knows it) and the first is back: whichever leads next gets
//!   reports of both values for that slot, its own first if it is the first.
//! - **Voters cut**: the leader is cut off from every other voter, but learners
//!   and removed replicas that linger still answer it; their answers must not make
//!   a quorum.
//! - **Stale leader**: a leader and one follower are cut off from the majority
//!   while the leader's clock runs slow (so it keeps leading); the majority elects
//!   another leader and chooses other values for the slots the follower accepted.
//!   That leader is cut off in turn, and one caught-up replica of the majority can
//!   talk to the stale leader again, losing what carries a ballot: the stale
//!   leader learns, through catch-up, entries chosen above its own ballot
//!   (docs/consensus.md §j.6: it must step down before its commit point moves).
//!
//! What it is not: a fault schedule of its own kind. It uses the world's links,
//! clocks and the fault hold as `faults.rs` does, from a random stream of its own
//! (switched on in some seeds, off in others), so seeds without it run as before.

use crate::world::{Event, Phase, World, MS, SEC};
use concoord_paxos::{Ballot, Membership, Prng, Replica, Role, RoleKind};
use concoord_wire::ReplicaId;
use std::collections::BTreeSet;

/// The election timeout of every simulated replica.
fn election_timeout(w: &World) -> u64 {
    w.replica_options(ReplicaId(0)).election_timeout_min.0
}

/// A stale leader's clock rate: 5 % of real time, so its check-quorum and
/// heartbeats come twenty times late.
const STALE_CLOCK_PPM: i64 = -950_000;

#[derive(Debug)]
enum Plan {
    /// Leaders cut off one after another; `cut` is the leader to cut completely
    /// at the next step (the second half of a "deposed after proposing" round).
    Churn { rounds_left: u32, cut: Option<usize> },
    /// The leader is cut off from every voter until the next step.
    VotersCut,
    /// The stale-leader plan, at `step` (0: cut off with its follower, 1: the
    /// majority's leader cut off and one of its replicas back in touch).
    Stale { step: u8, leader: usize, ballot: Ballot, gen: u64 },
    /// Competing leaders: the `first` leader (at `ballot`) is cut off and
    /// proposes alone; once a `second` leads and one of its acceptors holds another
    /// value than the first leader at some slot, the second is cut off and the
    /// first heard again. `polls` counts the checks of the current step.
    Compete { first: usize, ballot: Ballot, second: Option<usize>, done: bool, polls: u32 },
}

#[derive(Debug)]
pub(crate) struct Adversary {
    rng: Prng,
    churn_weight: u64,
    voters_cut_weight: u64,
    stale_weight: u64,
    compete_weight: u64,
    /// The longest quiet time between two plans.
    gap_max: u64,
    plan: Option<Plan>,
    /// Links this adversary blocked or muted, to release when the plan ends.
    blocked: Vec<(usize, usize)>,
    muted: Vec<(usize, usize)>,
    /// A node whose clock this adversary slowed, and its own rate.
    slowed: Option<(usize, i64)>,
    /// Whether this adversary holds every other fault.
    holding: bool,
}

impl Adversary {
    /// Draws the seed's adversary and schedules its first step (if it is on).
    pub(crate) fn new(seed: u64, w: &mut World) -> Adversary {
        let mut rng = Prng::new(seed ^ 0x0ad7_e125_a121_0000);
        let on = rng.chance(0.5);
        let weight = |rng: &mut Prng| if on { rng.range(0, 4) } else { 0 };
        let churn_weight = weight(&mut rng);
        let voters_cut_weight = weight(&mut rng);
        let stale_weight = weight(&mut rng);
        let gap_max = rng.range(300 * MS, 2 * SEC);
        let compete_weight = weight(&mut rng);
        let mut a = Adversary {
            rng,
            churn_weight,
            voters_cut_weight,
            stale_weight,
            compete_weight,
            gap_max,
            plan: None,
            blocked: Vec::new(),
            muted: Vec::new(),
            slowed: None,
            holding: false,
        };
        if churn_weight + voters_cut_weight + stale_weight + compete_weight > 0 {
            let first = a.rng.range(200 * MS, SEC);
            w.schedule(first, Event::Adversary);
        }
        a
    }

    /// An `Adversary` event: the running plan takes its next step, or a new one
    /// starts after a gap.
    pub(crate) fn step(&mut self, w: &mut World) {
        if w.phase != Phase::Faults {
            return;
        }
        let next = match self.plan.take() {
            Some(Plan::Churn { rounds_left, cut }) => self.churn(w, rounds_left, cut),
            Some(Plan::VotersCut) => {
                self.release(w);
                None
            }
            Some(Plan::Stale { step, leader, ballot, gen }) => {
                self.stale_step(w, step, leader, ballot, gen)
            }
            Some(Plan::Compete { first, ballot, second, done, polls }) => {
                self.compete_step(w, first, ballot, second, done, polls)
            }
            // Healing ends whatever plan still runs (it heals every link).
            None if !w.hold_faults => self.start(w),
            None => None,
        };
        if self.plan.is_none() {
            // Ended, or gave up before its first cut.
            self.release(w);
        }
        let after = next.unwrap_or_else(|| self.rng.range(100 * MS, self.gap_max));
        if w.now + after < w.heal_at {
            w.schedule(w.now + after, Event::Adversary);
        } else {
            self.release(w);
        }
    }

    /// Healing: every link heals (`Faults::heal` clears them all) and every clock
    /// runs at its own rate again.
    pub(crate) fn heal(&mut self, w: &mut World) {
        self.plan = None;
        self.release(w);
    }

    /// Starts a plan by the seed's weights. Returns when to take its next step.
    fn start(&mut self, w: &mut World) -> Option<u64> {
        let total =
            self.churn_weight + self.voters_cut_weight + self.stale_weight + self.compete_weight;
        let pick = self.rng.range(0, total);
        // A plan must have time for its cuts to matter before healing.
        let et = election_timeout(w);
        let stale = (self.churn_weight + self.voters_cut_weight..total - self.compete_weight)
            .contains(&pick);
        let span = if stale { 14 * et } else { 4 * et };
        if w.now + span > w.heal_at {
            return None;
        }
        // Every plan holds the other faults (and the network's random loss), so
        // what follows its cuts is the protocol's doing, and no scenario of
        // `faults.rs` starts in the middle of one.
        self.hold(w);
        if pick < self.churn_weight {
            let rounds = self.rng.range(3, 10) as u32;
            self.churn(w, rounds, None)
        } else if pick < self.churn_weight + self.voters_cut_weight {
            self.voters_cut(w)
        } else if stale {
            self.stale_start(w)
        } else {
            self.compete_start(w)
        }
    }

    // ------------------------------------------------------------------ churn

    fn churn(&mut self, w: &mut World, rounds_left: u32, cut: Option<usize>) -> Option<u64> {
        let et = election_timeout(w);
        if let Some(leader) = cut {
            // The second half of a round: the leader proposed, some acceptors may
            // have chosen its values, and it is cut off before it says so.
            let links = all_links(w, leader);
            self.block(w, &links);
            self.plan = Some(Plan::Churn { rounds_left, cut: None });
            return Some(self.rng.range(et, 3 * et));
        }
        self.release_links(w);
        if rounds_left == 0 {
            return None;
        }
        let Some(leader) = running_leader(w) else {
            // Wait for the next leader (it counts as a round, so this ends).
            self.plan = Some(Plan::Churn { rounds_left: rounds_left - 1, cut: None });
            return Some(50 * MS);
        };
        if self.rng.chance(0.5) {
            // Its Accepts reach only a minority: with the leader itself, never a
            // quorum of any membership of its window.
            let window = window(w, leader);
            let id = w.nodes[leader].id;
            let mut others: Vec<usize> = (0..w.nodes.len())
                .filter(|i| *i != leader && window.iter().any(|m| m.is_voter(w.nodes[*i].id)))
                .collect();
            let mut minority = BTreeSet::from([id]);
            while !others.is_empty() {
                let pick = others.remove(self.rng.index(others.len()));
                minority.insert(w.nodes[pick].id);
                if window.iter().any(|m| m.is_quorum(&minority.iter().copied().collect::<Vec<_>>()))
                    || self.rng.chance(0.4)
                {
                    minority.remove(&w.nodes[pick].id);
                    break;
                }
            }
            let links: Vec<(usize, usize)> = (0..w.nodes.len())
                .filter(|i| *i != leader && !minority.contains(&w.nodes[*i].id))
                .map(|i| (leader, i))
                .collect();
            self.block(w, &links);
            self.plan = Some(Plan::Churn { rounds_left: rounds_left - 1, cut: None });
            Some(self.rng.range(et, 3 * et))
        } else {
            // Cut off completely about one message delay from now.
            self.plan = Some(Plan::Churn { rounds_left: rounds_left - 1, cut: Some(leader) });
            Some(self.rng.range(0, 2 * w.params.delay_max + 1))
        }
    }

    // ------------------------------------------------------------------ voters cut

    fn voters_cut(&mut self, w: &mut World) -> Option<u64> {
        let leader = running_leader(w)?;
        let window = window(w, leader);
        let voters: BTreeSet<ReplicaId> = window.iter().flat_map(|m| m.voter_ids()).collect();
        // Learners of the window, and removed replicas still lingering.
        let answering = (0..w.nodes.len()).any(|i| {
            let Some(r) = w.nodes[i].replica.as_ref() else { return false };
            w.in_cluster(i)
                && !voters.contains(&w.nodes[i].id)
                && (r.role() == RoleKind::Removed
                    || window.iter().any(|m| {
                        m.members
                            .get(&w.nodes[i].id)
                            .is_some_and(|(_, role)| *role == Role::Learner)
                    }))
        });
        if !answering {
            return None;
        }
        let links: Vec<(usize, usize)> = (0..w.nodes.len())
            .filter(|i| *i != leader && voters.contains(&w.nodes[*i].id))
            .flat_map(|i| [(leader, i), (i, leader)])
            .collect();
        self.block(w, &links);
        self.plan = Some(Plan::VotersCut);
        let et = election_timeout(w);
        Some(self.rng.range(2 * et, 4 * et))
    }

    // ------------------------------------------------------------------ stale leader

    fn stale_start(&mut self, w: &mut World) -> Option<u64> {
        let leader = running_leader(w)?;
        let window = window(w, leader);
        // The leader and its follower must be a minority, and the rest a quorum.
        if window.is_empty() || window.iter().any(|m| m.voter_count() < 5) {
            return None;
        }
        let all_run = (0..w.nodes.len()).all(|i| {
            let n = &w.nodes[i];
            n.retired || (w.in_cluster(i) && n.paused_until.is_none())
        });
        if !all_run {
            return None;
        }
        let ballot = w.nodes[leader].replica.as_ref().and_then(Replica::ballot)?;
        let followers: Vec<usize> = (0..w.nodes.len())
            .filter(|i| *i != leader && window.iter().all(|m| m.is_voter(w.nodes[*i].id)))
            .collect();
        if followers.is_empty() {
            return None;
        }
        let follower = followers[self.rng.index(followers.len())];
        let side = [leader, follower];
        let rest: Vec<usize> = (0..w.nodes.len()).filter(|i| !side.contains(i)).collect();
        let rest_ids: Vec<ReplicaId> = rest.iter().map(|i| w.nodes[*i].id).collect();
        if !window.iter().all(|m| m.is_quorum(&rest_ids)) {
            return None;
        }
        let links: Vec<(usize, usize)> =
            side.iter().flat_map(|a| rest.iter().flat_map(move |b| [(*a, *b), (*b, *a)])).collect();
        self.block(w, &links);
        let old = w.nodes[leader].clock_ppm;
        w.nodes[leader].set_clock_ppm(w.now, STALE_CLOCK_PPM);
        w.schedule_timer(leader);
        self.slowed = Some((leader, old));
        let gen = w.nodes[leader].gen;
        self.plan = Some(Plan::Stale { step: 0, leader, ballot, gen });
        Some(5 * election_timeout(w))
    }

    fn stale_step(
        &mut self,
        w: &mut World,
        step: u8,
        leader: usize,
        ballot: Ballot,
        gen: u64,
    ) -> Option<u64> {
        let still_leading = w.nodes[leader].gen == gen
            && w.nodes[leader].replica.as_ref().is_some_and(|r| r.ballot() == Some(ballot));
        if step > 0 || !still_leading {
            self.release(w);
            return None;
        }
        // The majority's leader, elected meanwhile at a higher ballot.
        let others: Vec<usize> = (0..w.nodes.len())
            .filter(|i| *i != leader && w.in_cluster(*i))
            .filter(|i| {
                w.nodes[*i].replica.as_ref().and_then(Replica::ballot).is_some_and(|b| b > ballot)
            })
            .collect();
        let Some(&new_leader) = others.first() else {
            self.release(w);
            return None;
        };
        let stale_commit = w.nodes[leader].replica.as_ref().map(Replica::commit_max);
        let contacts: Vec<usize> = (0..w.nodes.len())
            .filter(|i| *i != leader && *i != new_leader && w.in_cluster(*i))
            .filter(|i| {
                let commit = w.nodes[*i].replica.as_ref().map(Replica::commit_max);
                commit > stale_commit && w.blocked.contains_key(&(leader, *i))
            })
            .collect();
        if contacts.is_empty() {
            self.release(w);
            return None;
        }
        let contact = contacts[self.rng.index(contacts.len())];
        let cut = all_links(w, new_leader);
        self.block(w, &cut);
        // The stale leader and the contact talk again, except what carries the
        // stale leader's ballot: only pre-votes and catch-up get through.
        self.unblock_one(w, (leader, contact));
        self.unblock_one(w, (contact, leader));
        w.muted.insert((leader, contact));
        self.muted.push((leader, contact));
        self.plan = Some(Plan::Stale { step: 1, leader, ballot, gen });
        Some(8 * election_timeout(w))
    }

    // ------------------------------------------------------------------ competing leaders

    fn compete_start(&mut self, w: &mut World) -> Option<u64> {
        let first = running_leader(w)?;
        let ballot = w.nodes[first].replica.as_ref().and_then(Replica::ballot)?;
        // Both ways: it must not accept the second leader's values either.
        let links = all_links(w, first);
        self.block(w, &links);
        self.plan = Some(Plan::Compete { first, ballot, second: None, done: false, polls: 0 });
        Some(5 * MS)
    }

    fn compete_step(
        &mut self,
        w: &mut World,
        first: usize,
        ballot: Ballot,
        second: Option<usize>,
        done: bool,
        polls: u32,
    ) -> Option<u64> {
        if done {
            self.release_links(w);
            return None;
        }
        let Some(second) = second else {
            let leader = (0..w.nodes.len()).find(|i| {
                *i != first
                    && w.in_cluster(*i)
                    && w.nodes[*i]
                        .replica
                        .as_ref()
                        .is_some_and(|r| r.is_leader() && r.ballot().is_some_and(|b| b > ballot))
            });
            if leader.is_none() && polls > 600 {
                self.release_links(w);
                return None;
            }
            self.plan =
                Some(Plan::Compete { first, ballot, second: leader, done: false, polls: 0 });
            return Some(if leader.is_some() { MS } else { 5 * MS });
        };
        if !competing_values(w, first, ballot, second) && polls < 1000 {
            let polls = polls + 1;
            let second = Some(second);
            self.plan = Some(Plan::Compete { first, ballot, second, done: false, polls });
            return Some(MS);
        }
        // The second leader's value may be chosen where no follower knows it: it
        // is cut off before it says so, and the first leader is heard again.
        for link in all_links(w, first) {
            self.unblock_one(w, link);
        }
        let cut = all_links(w, second);
        self.block(w, &cut);
        self.plan = Some(Plan::Compete { first, ballot, second: None, done: true, polls: 0 });
        Some(3 * election_timeout(w))
    }

    // ------------------------------------------------------------------ links

    fn block(&mut self, w: &mut World, links: &[(usize, usize)]) {
        for link in links {
            *w.blocked.entry(*link).or_insert(0) += 1;
            self.blocked.push(*link);
        }
    }

    fn unblock_one(&mut self, w: &mut World, link: (usize, usize)) {
        if let Some(at) = self.blocked.iter().position(|l| *l == link) {
            self.blocked.swap_remove(at);
            decrement(w, link);
        }
    }

    fn hold(&mut self, w: &mut World) {
        if !w.hold_faults {
            w.hold_faults = true;
            w.loss = 0.0;
            w.duplicate = 0.0;
            self.holding = true;
        }
    }

    /// Heals the links this adversary cut or muted.
    fn release_links(&mut self, w: &mut World) {
        for link in std::mem::take(&mut self.blocked) {
            decrement(w, link);
        }
        for link in std::mem::take(&mut self.muted) {
            w.muted.remove(&link);
        }
    }

    /// Ends whatever the adversary did: links, muting, clock and hold.
    fn release(&mut self, w: &mut World) {
        self.release_links(w);
        if let Some((node, ppm)) = self.slowed.take() {
            w.nodes[node].set_clock_ppm(w.now, ppm);
            w.schedule_timer(node);
        }
        if std::mem::take(&mut self.holding) {
            w.hold_faults = false;
            if w.phase == Phase::Faults {
                w.loss = w.params.loss;
                w.duplicate = w.params.duplicate;
            }
        }
    }
}

fn decrement(w: &mut World, link: (usize, usize)) {
    if let Some(count) = w.blocked.get_mut(&link) {
        *count -= 1;
        if *count == 0 {
            w.blocked.remove(&link);
        }
    }
}

/// Whether a replica other than `first` and `second` accepted, above its commit
/// point, a value from a ballot above `ballot` at a slot where `first` holds
/// another value of its own (at `ballot` or below).
fn competing_values(w: &World, first: usize, ballot: Ballot, second: usize) -> bool {
    let Some(f) = w.nodes[first].replica.as_ref() else { return false };
    let span = w.params.accept_ahead_max + w.params.alpha;
    (0..w.nodes.len()).filter(|i| *i != first && *i != second && w.in_cluster(*i)).any(|i| {
        let Some(r) = w.nodes[i].replica.as_ref() else { return false };
        (1..=span).any(|k| {
            let slot = r.commit_max().plus(k);
            match (r.accepted(slot), f.accepted(slot)) {
                (Some((theirs, w)), Some((mine, v))) => theirs > ballot && mine <= ballot && w != v,
                _ => false,
            }
        })
    })
}

/// Every link between `node` and every other node, both ways.
fn all_links(w: &World, node: usize) -> Vec<(usize, usize)> {
    (0..w.nodes.len()).filter(|i| *i != node).flat_map(|i| [(node, i), (i, node)]).collect()
}

/// The real cluster's leader, if it runs and is not paused.
fn running_leader(w: &World) -> Option<usize> {
    let leader = w.leader_node()?;
    let n = &w.nodes[leader];
    (n.paused_until.is_none() && n.replica.as_ref().is_some_and(Replica::is_leader))
        .then_some(leader)
}

/// The memberships governing the leader's window (public status).
fn window(w: &World, leader: usize) -> Vec<Membership> {
    let Some(r) = w.nodes[leader].replica.as_ref() else { return Vec::new() };
    let from = r.commit_max().next();
    let to = r.commit_max().plus(w.params.alpha);
    r.schedule().governing(from, to).into_iter().cloned().collect()
}

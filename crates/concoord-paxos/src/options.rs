//! Tunables, named limits, and the catalogue of injectable protocol bugs.
//!
//! Every queue and window in the core has a maximum here; `Replica::check_invariants`
//! asserts them.

use concoord_wire::Span;
use std::collections::BTreeSet;

/// Protocol bugs the simulator can switch on to prove its checkers catch them.
/// Each one is a real branch in the real code path, never a separate model.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Bug {
    /// The acceptor answers a Prepare without making its promise durable first.
    SkipPersistPromise,
    /// The acceptor accepts a ballot lower than the one it promised.
    AcceptLowerBallot,
    /// The leader declares a slot chosen with a minority of acceptances.
    CommitOnMinority,
    /// The leader serves reads from its state without confirming it still leads.
    ReadWithoutBarrier,
    /// A replica restarted without its disk reuses its old acceptor identity.
    ReuseIdentity,
    /// A membership change takes effect at the next slot instead of `s + alpha`.
    ImmediateConfigChange,
    /// Messages from other clusters are admitted as if they were from this one.
    IgnoreClusterId,
    /// A voter whose election timer fires starts an election without a pre-vote.
    SkipPreVote,
    /// A leader that hears from no quorum keeps leading.
    NoCheckQuorum,
    /// The acceptor sends `Accepted` before the entries it acknowledges are durable.
    AcceptedBeforeDurable,
    /// A replica that learns chosen entries through catch-up persists their commit
    /// point but not the entries themselves.
    SkipPersistCatchup,
    /// The leader counts every acknowledging replica toward a slot's quorum,
    /// learners and retired identities included, against the number of voters.
    CountNonVoters,
    /// Phase 1 adopts the first value reported for a slot, not the highest-ballot one.
    AdoptFirstValue,
    /// A leader that learns, through catch-up or a snapshot, an entry labelled above
    /// its own ballot keeps leading.
    KeepLeadingAboveBallot,
    /// A joiner asks only its command line's boot list, never the members it has
    /// known: a removed founder (no `-b`) or a replica whose only boot peer is gone
    /// never comes back. The rule lives in the shells (the server's `boot_addrs`,
    /// the simulator's `SendToBootstrap`), and the simulator's shell honours the bug.
    BootListOnly,
    /// The shell lets every message leave as soon as the core produces it, ahead of
    /// the writes before it (only a leader's `Accept` may): a `Promise` or an
    /// `Accepted` runs ahead of the write it vouches for. The rule lives in
    /// `EffectGate`, which both shells use.
    SendBeforeDurable,
    /// The leader stamps a new batch with its own clock alone, not at least the
    /// highest timestamp it adopted or stamped: after a failover to a replica whose
    /// clock runs behind, cluster time goes backwards.
    StampLocalClock,
}

impl Bug {
    /// Every injectable bug. The simulator's tests require each to be caught
    /// within seeds `0..1000`: the first six by a safety checker, and
    /// `SkipPreVote` and `NoCheckQuorum`, which break availability only, by the
    /// availability checkers of the cut-off scenarios (`stable_leader`,
    /// `step_down`). `IgnoreClusterId` needs the operator faults the simulator
    /// models (a stranger founded on an old member's address).
    pub const ALL: [Bug; 17] = [
        Bug::SkipPersistPromise,
        Bug::AcceptLowerBallot,
        Bug::CommitOnMinority,
        Bug::ReadWithoutBarrier,
        Bug::ReuseIdentity,
        Bug::ImmediateConfigChange,
        Bug::IgnoreClusterId,
        Bug::SkipPreVote,
        Bug::NoCheckQuorum,
        Bug::AcceptedBeforeDurable,
        Bug::SkipPersistCatchup,
        Bug::CountNonVoters,
        Bug::AdoptFirstValue,
        Bug::KeepLeadingAboveBallot,
        Bug::BootListOnly,
        Bug::SendBeforeDurable,
        Bug::StampLocalClock,
    ];

    /// Bugs of a class the simulator does not reach yet: `--inject` takes them and
    /// `--list-bugs` names them, but no test requires them to be caught. None at
    /// present: the stale-leader schedule of the simulator's adversary reaches
    /// `KeepLeadingAboveBallot`, which no random fault did.
    pub const UNCAUGHT: [Bug; 0] = [];

    pub fn name(self) -> &'static str {
        match self {
            Bug::SkipPersistPromise => "skip-persist-promise",
            Bug::AcceptLowerBallot => "accept-lower-ballot",
            Bug::CommitOnMinority => "commit-on-minority",
            Bug::ReadWithoutBarrier => "read-without-barrier",
            Bug::ReuseIdentity => "reuse-identity",
            Bug::ImmediateConfigChange => "immediate-config-change",
            Bug::IgnoreClusterId => "ignore-cluster-id",
            Bug::SkipPreVote => "skip-pre-vote",
            Bug::NoCheckQuorum => "no-check-quorum",
            Bug::AcceptedBeforeDurable => "accepted-before-durable",
            Bug::SkipPersistCatchup => "skip-persist-catchup",
            Bug::CountNonVoters => "count-non-voters",
            Bug::AdoptFirstValue => "adopt-first-value",
            Bug::KeepLeadingAboveBallot => "keep-leading-above-ballot",
            Bug::BootListOnly => "boot-list-only",
            Bug::SendBeforeDurable => "send-before-durable",
            Bug::StampLocalClock => "stamp-local-clock",
        }
    }

    pub fn from_name(name: &str) -> Option<Bug> {
        Bug::ALL.into_iter().chain(Bug::UNCAUGHT).find(|b| b.name() == name)
    }
}

/// Configuration of one replica. `Options::default()` suits a LAN.
#[derive(Clone, Debug)]
pub struct Options {
    /// Pipeline window and reconfiguration delay (the paper's alpha): slot `t` may be
    /// proposed only when every slot `<= t - alpha` is chosen, and a membership change
    /// chosen at `s` governs slots from `s + alpha`.
    pub alpha: u64,
    /// Leader heartbeat period.
    pub heartbeat_interval: Span,
    /// A follower that hears no leader for a random time in `[min, 2*min)` runs for leader.
    pub election_timeout_min: Span,
    /// Resend unanswered Prepare/Accept messages after this long.
    pub retransmit_interval: Span,
    /// Re-ask for missing chosen entries after this long.
    pub catchup_retry: Span,
    /// Most client commands queued at the leader before `propose` refuses more.
    pub pending_commands_max: usize,
    /// Most commands in one slot.
    pub batch_commands_max: usize,
    /// Most bytes of commands in one slot.
    pub batch_bytes_max: usize,
    /// Most reads waiting for their barrier.
    pub pending_reads_max: usize,
    /// Most entries in one Catchup message.
    pub catchup_entries_max: usize,
    /// An acceptor refuses Accepts more than this many slots past its own commit point
    /// (it catches up first); bounds its unchosen entries and Promise sizes.
    pub accept_ahead_max: u64,
    /// Entries kept behind the newest snapshot so slightly lagging peers catch up
    /// from entries rather than a whole snapshot.
    pub log_keep_after_snapshot: u64,
    /// The leader promotes a learner that is within this many slots of its commit point.
    pub promote_lag_max: u64,
    /// Promote learners automatically (ConCoord replicas all vote).
    pub auto_promote: bool,
    /// The leader proposes removal of a member it has not heard from for this long
    /// (`None`: never). Values below `remove_dead_after_floor` are raised to it.
    /// Learners can always be removed; a voter only while more than three vote.
    pub remove_dead_after: Option<Span>,
    /// Lower bound on `remove_dead_after`, so a slow network cannot shrink the cluster.
    pub remove_dead_after_floor: Span,
    /// Whether promises and accepted entries are persisted (`-w`). Without it, a
    /// restarted replica must rejoin under a fresh identity.
    pub durable: bool,
    /// The port of the DNS name server this replica runs (`-n`), announced in the
    /// member record it joins with (`Member::dns_port`). Not a tunable of the
    /// protocol: the core only copies it, as it copies the replica's address.
    pub dns_port: Option<u16>,
    /// Seed for election jitter.
    pub seed: u64,
    /// Injected bugs (simulator only; empty in production).
    pub bugs: BTreeSet<Bug>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            alpha: 10,
            heartbeat_interval: Span::from_millis(50),
            election_timeout_min: Span::from_millis(300),
            retransmit_interval: Span::from_millis(150),
            catchup_retry: Span::from_millis(200),
            pending_commands_max: 100_000,
            batch_commands_max: 1_024,
            batch_bytes_max: 1 << 20,
            pending_reads_max: 100_000,
            catchup_entries_max: 256,
            accept_ahead_max: 1_024,
            log_keep_after_snapshot: 256,
            promote_lag_max: 64,
            auto_promote: true,
            remove_dead_after: None,
            remove_dead_after_floor: Span::from_millis(2_000),
            durable: true,
            dns_port: None,
            seed: 0,
            bugs: BTreeSet::new(),
        }
    }
}

impl Options {
    pub fn has_bug(&self, bug: Bug) -> bool {
        self.bugs.contains(&bug)
    }

    /// `remove_dead_after`, raised to the floor.
    pub fn remove_dead_after_effective(&self) -> Option<Span> {
        self.remove_dead_after.map(|d| d.max(self.remove_dead_after_floor))
    }
}

//! `concoord-sim`: runs seeds of the deterministic simulator and reports.
//!
//!     cargo run --release -p concoord-sim -- --seeds 0..1000
//!     cargo run --release -p concoord-sim -- --seed 42 --trace
//!     cargo run --release -p concoord-sim -- --seeds 0..1000 --inject commit-on-minority
//!     cargo run --release -p concoord-sim -- --list-bugs

use concoord_object::machine::MachineBug;
use concoord_paxos::Bug;
use concoord_sim::{run_seed, Report, SimOptions};
use std::ops::Range;
use std::process::ExitCode;

const USAGE: &str = "usage: concoord-sim [--seed N | --seeds A..B] [--trace] [--inject BUG]... [--list-bugs] [--first-failure] [--verbose] [--safety-only] [--workload registers|objects|pipelined]

  --safety-only  exit non-zero only for safety violations; seeds that did not
                 converge after healing are still listed, and counted apart";

struct Args {
    seeds: Range<u64>,
    opts: SimOptions,
    first_failure: bool,
    verbose: bool,
    safety_only: bool,
}

fn parse() -> Result<Option<Args>, String> {
    let mut seeds = 0..100;
    let mut opts = SimOptions::default();
    let mut first_failure = false;
    let mut verbose = false;
    let mut safety_only = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seed" => {
                let n = parse_u64(&args.next().ok_or("--seed needs a number")?)?;
                seeds = n..n + 1;
            }
            "--seeds" => {
                let spec = args.next().ok_or("--seeds needs A..B")?;
                let (a, b) = spec.split_once("..").ok_or(format!("--seeds {spec}: want A..B"))?;
                seeds = parse_u64(a)?..parse_u64(b)?;
            }
            "--trace" => opts.trace = true,
            "--inject" => {
                let name = args.next().ok_or("--inject needs a bug name (see --list-bugs)")?;
                if let Some(bug) = Bug::from_name(&name) {
                    opts.bugs.insert(bug);
                } else if let Some(bug) = MachineBug::from_name(&name) {
                    opts.object_bugs.insert(bug);
                } else {
                    return Err(format!("unknown bug {name:?}; --list-bugs lists them"));
                }
            }
            "--list-bugs" => {
                for bug in Bug::ALL {
                    println!("{}", bug.name());
                }
                for bug in Bug::UNCAUGHT {
                    println!("{} (not yet caught reliably)", bug.name());
                }
                for bug in MachineBug::ALL {
                    println!("{} (objects workload)", bug.name());
                }
                return Ok(None);
            }
            "--first-failure" => first_failure = true,
            "--verbose" => verbose = true,
            "--safety-only" => safety_only = true,
            "--workload" => {
                opts.workload = match args.next().as_deref() {
                    Some("registers") => concoord_sim::Workload::Registers,
                    Some("objects") => concoord_sim::Workload::Objects,
                    Some("pipelined") => concoord_sim::Workload::Pipelined,
                    other => {
                        return Err(format!(
                            "--workload {other:?}: want registers, objects or pipelined"
                        ))
                    }
                };
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(Some(Args { seeds, opts, first_failure, verbose, safety_only }))
}

fn parse_u64(s: &str) -> Result<u64, String> {
    s.trim().parse().map_err(|_| format!("not a number: {s:?}"))
}

fn reproduce(seed: u64, opts: &SimOptions) -> String {
    let mut cmd = format!("cargo run --release -p concoord-sim -- --seed {seed}");
    match opts.workload {
        concoord_sim::Workload::Objects => cmd.push_str(" --workload objects"),
        concoord_sim::Workload::Pipelined => cmd.push_str(" --workload pipelined"),
        concoord_sim::Workload::Registers => {}
    }
    for bug in &opts.bugs {
        cmd.push_str(&format!(" --inject {}", bug.name()));
    }
    for bug in &opts.object_bugs {
        cmd.push_str(&format!(" --inject {}", bug.name()));
    }
    cmd
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(Some(args)) => args,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("concoord-sim: {e}");
            return ExitCode::from(2);
        }
    };
    let (mut passed, mut failed, mut unconverged) = (0u64, 0u64, 0u64);
    let mut totals = concoord_sim::Stats::default();
    for seed in args.seeds.clone() {
        let report: Report = run_seed(seed, &args.opts);
        let s = report.stats;
        totals.messages += s.messages;
        totals.fsyncs += s.fsyncs;
        totals.commands += s.commands;
        totals.command_slots += s.command_slots;
        totals.slots += s.slots;
        totals.client_ops += s.client_ops;
        totals.cancels += s.cancels;
        totals.cancelled += s.cancelled;
        if args.verbose || args.opts.trace {
            println!(
                "seed {seed}: {:?} trace {:016x} events {} slots {} commands {} ops {} sim {}ms",
                report.params,
                report.trace_hash,
                s.events,
                s.slots,
                s.commands,
                s.client_ops,
                s.sim_micros / 1000
            );
        }
        match report.violation {
            None => passed += 1,
            Some(v) => {
                if args.safety_only && v.checker == "liveness" {
                    unconverged += 1;
                } else {
                    failed += 1;
                }
                println!("seed {seed}: FAILED {v} | reproduce: {}", reproduce(seed, &args.opts));
                if args.first_failure {
                    break;
                }
            }
        }
    }
    let per = |x: u64| if totals.commands == 0 { 0.0 } else { x as f64 / totals.commands as f64 };
    let per_slot = if totals.command_slots == 0 {
        0.0
    } else {
        totals.commands as f64 / totals.command_slots as f64
    };
    println!(
        "costs: {:.2} messages/command, {:.2} fsyncs/command, {:.2} commands/slot ({} commands, {} client ops)",
        per(totals.messages),
        per(totals.fsyncs),
        per_slot,
        totals.commands,
        totals.client_ops
    );
    if totals.cancels > 0 {
        println!(
            "cancels: {} sent by clients giving up on blocking calls, {} took a parked call back",
            totals.cancels, totals.cancelled
        );
    }
    if args.safety_only {
        println!("safety: {} seeds without a safety violation, {failed} with one; {unconverged} did not converge after healing (liveness, not gated)", passed + unconverged);
    } else {
        println!("{passed} passed, {failed} failed");
    }
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

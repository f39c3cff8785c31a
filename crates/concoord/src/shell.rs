//! `concoord shell`: one session, many calls. Reads lines from standard input (with a
//! prompt on a terminal, or a script from a pipe), each `METHOD [ARG...]` on the
//! current object, and prints each result as JSON. Because the session lasts as long
//! as the shell, what a call acquires stays held for the next lines: `acquire` then
//! `release`, RLock re-entry, Condition `wait` and `notify`. It is not a programming
//! language: no variables, no control flow.

use crate::json;
use anyhow::{Context, Result};
use concoord_client::{BlockingClient, ClientError, ClientOptions};
use concoord_object::Value;
use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Replicas of the cluster: host:port[,host:port...].
    #[arg(short = 'b', long = "boot", env = "CONCOORD_BOOT")]
    boot: String,
    /// The object the lines call at first (`use NAME` switches).
    #[arg(long = "object", default_value = "default")]
    object: String,
    /// Token, if the replicas require one.
    #[arg(long = "token", env = "CONCOORD_TOKEN")]
    token: Option<String>,
    /// Session lease in seconds: what the shell holds is released this long after it
    /// dies.
    #[arg(long = "lease", default_value_t = 10.0)]
    lease: f64,
    #[command(flatten)]
    tls: crate::tls_args::TlsArgs,
}

const HELP: &str = "\
METHOD [ARG...]       call METHOD of the current object; each ARG is JSON, or a plain
                      word taken as a string (as in `concoord call`)
use NAME              make NAME the current object
create TYPE [ARG...]  create the current object as TYPE with constructor ARGs
help                  this text
exit                  close the session (releasing what it holds) and leave
Lines starting with # are comments. A call that parks (a held lock's acquire) waits.";

/// One line, understood.
#[derive(Debug, PartialEq)]
enum Line {
    Empty,
    Help,
    Exit,
    Use(String),
    Create(String, Vec<Value>),
    Call(String, Vec<Value>),
}

pub fn run(args: Args) -> Result<()> {
    let lease = match Duration::try_from_secs_f64(args.lease) {
        Ok(d) if !d.is_zero() => d.max(Duration::from_secs(1)),
        _ => anyhow::bail!("--lease must be a number of seconds above 0, not {}", args.lease),
    };
    let options = ClientOptions {
        token: args.token.clone(),
        tls: args.tls.load()?,
        lease,
        give_up_after: Duration::from_secs(15),
        ..ClientOptions::default()
    };
    let client = BlockingClient::connect(&args.boot, options)
        .with_context(|| format!("connecting to {}", args.boot))?;
    let interactive = std::io::stdin().is_terminal();
    let mut object = args.object;
    let mut failures = 0usize;
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut text = String::new();
    loop {
        if interactive {
            print!("{object}> ");
            let _ = std::io::stdout().flush();
        }
        text.clear();
        if input.read_line(&mut text).context("cannot read standard input")? == 0 {
            break;
        }
        let outcome = match parse_line(&text) {
            Err(e) => Err(e),
            Ok(Line::Empty) => continue,
            Ok(Line::Help) => {
                println!("{HELP}");
                continue;
            }
            Ok(Line::Exit) => break,
            Ok(Line::Use(name)) => {
                object = name;
                continue;
            }
            Ok(Line::Create(type_name, init)) => {
                client.create(&object, &type_name, init).map(|()| Value::Nil).map_err(describe)
            }
            Ok(Line::Call(method, call_args)) => {
                client.call(&object, &method, call_args).map_err(describe)
            }
        };
        match outcome {
            Ok(value) => println!("{}", json::to_json(&value)),
            Err(e) => {
                failures += 1;
                // In a script, say which line failed.
                if interactive {
                    eprintln!("error: {e}");
                } else {
                    eprintln!("error: {}: {e}", text.trim());
                }
            }
        }
        let _ = std::io::stdout().flush();
    }
    client.close();
    if failures > 0 {
        anyhow::bail!("{failures} line(s) failed");
    }
    Ok(())
}

fn describe(e: ClientError) -> String {
    match e {
        ClientError::Raised(e) => format!("{}: {}", e.kind, e.message),
        other => other.to_string(),
    }
}

fn parse_line(text: &str) -> Result<Line, String> {
    let line = text.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(Line::Empty);
    }
    let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let values = || split_args(rest);
    match word {
        "help" | "?" => Ok(Line::Help),
        "exit" | "quit" => Ok(Line::Exit),
        "use" => match rest.split_whitespace().collect::<Vec<_>>().as_slice() {
            [name] => Ok(Line::Use((*name).to_string())),
            _ => Err("use takes one object name".into()),
        },
        "create" => {
            let (type_name, rest) =
                rest.trim().split_once(char::is_whitespace).unwrap_or((rest.trim(), ""));
            if type_name.is_empty() {
                return Err("create takes a type name (and constructor arguments)".into());
            }
            Ok(Line::Create(type_name.to_string(), split_args(rest)?))
        }
        method => Ok(Line::Call(method.to_string(), values()?)),
    }
}

/// Splits the arguments of a line: a JSON value where one starts (it may contain
/// spaces, as in `{"a": 1}`), else a word up to the next space; each is then read by
/// the rule of `concoord call`'s arguments.
fn split_args(text: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let starts_like_json = rest.starts_with(['"', '[', '{']);
        let end = if starts_like_json {
            let mut stream =
                serde_json::Deserializer::from_str(rest).into_iter::<serde_json::Value>();
            match stream.next() {
                Some(Ok(_)) => stream.byte_offset(),
                _ => rest.find(char::is_whitespace).unwrap_or(rest.len()),
            }
        } else {
            rest.find(char::is_whitespace).unwrap_or(rest.len())
        };
        let (token, tail) = rest.split_at(end);
        let value =
            json::parse_arg(token).map_err(|e| format!("argument {}: {e}", out.len() + 1))?;
        out.push(value);
        rest = tail.trim_start();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_calls_commands_or_comments() {
        assert_eq!(parse_line("  \n"), Ok(Line::Empty));
        assert_eq!(parse_line("# a comment"), Ok(Line::Empty));
        assert_eq!(parse_line("exit"), Ok(Line::Exit));
        assert_eq!(parse_line("use lock1"), Ok(Line::Use("lock1".into())));
        assert!(parse_line("use").is_err());
        assert_eq!(
            parse_line("create Semaphore 3"),
            Ok(Line::Create("Semaphore".into(), vec![Value::Int(3)]))
        );
        assert_eq!(parse_line("acquire"), Ok(Line::Call("acquire".into(), vec![])));
        let Ok(Line::Call(method, args)) = parse_line(r#"put db {"port": 5432, "host": "a b"}"#)
        else {
            panic!("not a call");
        };
        assert_eq!(method, "put");
        assert_eq!(args.len(), 2);
        assert_eq!(args[0], Value::Str("db".into()));
        assert!(matches!(&args[1], Value::Map(pairs) if pairs.len() == 2));
        assert_eq!(
            parse_line("put k -5 \"two words\""),
            Ok(Line::Call(
                "put".into(),
                vec![Value::Str("k".into()), Value::Int(-5), Value::Str("two words".into())]
            ))
        );
        assert!(parse_line("put k {bad").is_err());
        assert!(parse_line("put k 99999999999999999999").is_err());
    }
}

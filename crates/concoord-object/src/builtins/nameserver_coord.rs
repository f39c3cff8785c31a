//! `NameserverCoord`: the original ConCoord registry of openreplica.org subdomains
//! (`concoord/object/nameservercoord.py`), written with `#[object]`.
//!
//! It maps a domain to its nodes, grouped by node type: `{domain: {nodetype: {"ip:port"}}}`.
//! The old openreplica.org master name server served `<sub>.openreplica.org` from it, and
//! slave name servers pushed their views into it with `updatesubdomain` (ConCoord 1.1's
//! name-server coordination object).
//!
//! Kept from the original: a subdomain that does not contain `"openreplica"` gets
//! `".openreplica.org."` appended (so `"foo"` names `"foo.openreplica.org."`) in every
//! method that takes one; `__str__`'s text format and `_reinstantiate`, which parses it
//! back. Fixed: `getnodes` returns lists (the original returned sets, which msgpack
//! could not encode), everything is sorted (deterministic), and names that would make
//! the `__str__` format ambiguous are refused with `ValueError` instead of producing
//! a state that does not parse back. Node types are strings (the original stored
//! `int(nodetype)`): an integer node type is accepted and stored as its decimal text.
//!
//! It is deliberately not a DNS server, and it checks nothing about the nodes (an
//! `ip:port` is just text here).

use crate::{FromValue, IntoValue, ObjectError, Types, Value};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A node type, as the wire gives it: a string, or an integer (the original's node
/// types were ints, e.g. 1 for a replica, 2 for a name server), kept as its decimal text.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NodeType(pub String);

impl FromValue for NodeType {
    fn from_value(value: &Value) -> Result<Self, ObjectError> {
        match value {
            Value::Str(s) => Ok(NodeType(s.clone())),
            Value::Int(i) => Ok(NodeType(i.to_string())),
            other => Err(ObjectError::type_error(format!(
                "expected str or int, got {}",
                other.type_name()
            ))),
        }
    }
}

impl IntoValue for NodeType {
    fn into_value(self) -> Value {
        Value::Str(self.0)
    }
}

/// The nodes of one domain: node type → sorted `ip:port`s.
type Nodes = BTreeMap<String, BTreeSet<String>>;

/// The replicated subdomain registry: `NameserverCoord()` in the original.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NameserverCoord {
    nodes: BTreeMap<String, Nodes>,
}

#[concoord_object::object]
impl NameserverCoord {
    /// Adds `node` under `nodetype` to `subdomain` (created if new); returns None.
    pub fn addnodetosubdomain(
        &mut self,
        subdomain: String,
        nodetype: NodeType,
        node: String,
    ) -> Result<(), ObjectError> {
        let domain = full_name(&subdomain)?;
        check_type(&nodetype.0)?;
        check_node(&node)?;
        self.nodes.entry(domain).or_default().entry(nodetype.0).or_default().insert(node);
        Ok(())
    }

    /// Removes `subdomain` and all its nodes; returns whether it existed.
    pub fn delsubdomain(&mut self, subdomain: String) -> Result<bool, ObjectError> {
        Ok(self.nodes.remove(&full_name(&subdomain)?).is_some())
    }

    /// Removes one node; returns whether it was there. The subdomain and the node type
    /// stay, possibly empty, as in the original.
    pub fn delnodefromsubdomain(
        &mut self,
        subdomain: String,
        nodetype: NodeType,
        node: String,
    ) -> Result<bool, ObjectError> {
        let domain = full_name(&subdomain)?;
        Ok(self
            .nodes
            .get_mut(&domain)
            .and_then(|types| types.get_mut(&nodetype.0))
            .is_some_and(|set| set.remove(&node)))
    }

    /// Replaces all the nodes of `subdomain` (created if new) with `nodes`, a dict
    /// node type → list of `ip:port`s; returns None.
    pub fn updatesubdomain(
        &mut self,
        subdomain: String,
        nodes: BTreeMap<NodeType, Vec<String>>,
    ) -> Result<(), ObjectError> {
        let domain = full_name(&subdomain)?;
        let mut replacement = Nodes::new();
        for (nodetype, list) in nodes {
            check_type(&nodetype.0)?;
            for node in &list {
                check_node(node)?;
            }
            replacement.entry(nodetype.0).or_default().extend(list);
        }
        self.nodes.insert(domain, replacement);
        Ok(())
    }

    /// The nodes of `subdomain`: a dict node type → sorted list of `ip:port`s.
    /// `KeyError(domain)` when it is not registered.
    pub fn getnodes(
        &self,
        subdomain: String,
    ) -> Result<BTreeMap<String, Vec<String>>, ObjectError> {
        let domain = full_name(&subdomain)?;
        let types = self.nodes.get(&domain).ok_or_else(|| ObjectError::key_error(domain))?;
        Ok(types.iter().map(|(t, set)| (t.clone(), set.iter().cloned().collect())).collect())
    }

    /// The first label of every registered domain (`"foo"` for `"foo.openreplica.org."`).
    pub fn getsubdomains(&self) -> Vec<String> {
        self.nodes.keys().map(|d| d.split('.').next().unwrap_or_default().to_string()).collect()
    }

    /// Every registered domain, in full.
    pub fn getdomains(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    /// Replaces the whole registry with one parsed from `__str__`'s format; returns
    /// None. A malformed state is a `ValueError` and changes nothing.
    #[concoord(name = "_reinstantiate")]
    pub fn reinstantiate(&mut self, state: String) -> Result<(), ObjectError> {
        self.nodes = parse(&state)?;
        Ok(())
    }

    /// The original's dump: for every domain containing `"openreplica"`,
    /// `<domain>;(<type>-<node> <node>--<type>-<node>--);`, node types with no nodes
    /// left out.
    #[concoord(name = "__str__")]
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (domain, types) in &self.nodes {
            if !domain.contains("openreplica") {
                continue;
            }
            out.push_str(domain);
            out.push_str(";(");
            for (nodetype, nodes) in types.iter().filter(|(_, nodes)| !nodes.is_empty()) {
                out.push_str(nodetype);
                out.push('-');
                out.push_str(&nodes.iter().map(String::as_str).collect::<Vec<_>>().join(" "));
                out.push_str("--");
            }
            out.push_str(");");
        }
        out
    }
}

/// The original's naming rule: a subdomain without `"openreplica"` in it is under
/// `openreplica.org.`.
fn full_name(subdomain: &str) -> Result<String, ObjectError> {
    if subdomain.contains(';') {
        return Err(ObjectError::value_error(format!(
            "a domain cannot contain ';': {subdomain:?}"
        )));
    }
    Ok(if subdomain.contains("openreplica") {
        subdomain.to_string()
    } else {
        format!("{subdomain}.openreplica.org.")
    })
}

/// A node type must be non-empty text without `-` or `;` (the `__str__` separators).
fn check_type(nodetype: &str) -> Result<(), ObjectError> {
    if nodetype.is_empty() || nodetype.contains(['-', ';']) {
        return Err(ObjectError::value_error(format!(
            "a node type must be non-empty, without '-' or ';': {nodetype:?}"
        )));
    }
    Ok(())
}

/// A node must be non-empty, without whitespace, `;` or `--`, and must not start or
/// end with `-` (any of those would not parse back from `__str__`).
fn check_node(node: &str) -> Result<(), ObjectError> {
    if node.is_empty()
        || node.contains(|c: char| c.is_whitespace() || c == ';')
        || node.contains("--")
        || node.starts_with('-')
        || node.ends_with('-')
    {
        return Err(ObjectError::value_error(format!(
            "a node must be non-empty, without whitespace, ';' or '--', and not start or \
             end with '-': {node:?}"
        )));
    }
    Ok(())
}

/// Parses `__str__`'s format: `domain;(type-n1 n2--type-n3--);` repeated.
fn parse(state: &str) -> Result<BTreeMap<String, Nodes>, ObjectError> {
    let malformed =
        |why: &str| ObjectError::value_error(format!("malformed NameserverCoord state: {why}"));
    let mut registry = BTreeMap::new();
    let mut parts = state.split(';');
    while let Some(domain) = parts.next() {
        let Some(group) = parts.next() else {
            if domain.is_empty() {
                break;
            }
            return Err(malformed(&format!("domain {domain:?} has no node list")));
        };
        let inner = group
            .strip_prefix('(')
            .and_then(|g| g.strip_suffix(')'))
            .ok_or_else(|| malformed(&format!("{group:?} is not in parentheses")))?;
        let mut types = Nodes::new();
        for entry in inner.split("--").filter(|e| !e.is_empty()) {
            let (nodetype, list) = entry
                .split_once('-')
                .ok_or_else(|| malformed(&format!("{entry:?} has no '-' after its node type")))?;
            check_type(nodetype)?;
            let set: &mut BTreeSet<String> = types.entry(nodetype.to_string()).or_default();
            set.extend(list.split_whitespace().map(str::to_string));
        }
        registry.insert(domain.to_string(), types);
    }
    Ok(registry)
}

/// Registers `NameserverCoord` and the original's dotted name.
pub fn register(types: &mut Types) {
    types.register::<NameserverCoord>(&["concoord.object.nameservercoord.NameserverCoord"]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CallId, Ctx, Object, ObjectType, Outcome};
    use concoord_wire::{RequestNumber, SessionId, Slot, Time};

    fn call(ns: &mut NameserverCoord, method: &str, args: &[Value]) -> Outcome {
        let mut wakes = Vec::new();
        let id = CallId { session: SessionId(1), request: RequestNumber(1) };
        let mut ctx = Ctx::new(id, Time(0), Slot(1), &mut wakes);
        let outcome = ns.call(&mut ctx, method, args);
        assert!(wakes.is_empty(), "a registry never wakes anyone");
        outcome
    }

    fn s(text: &str) -> Value {
        Value::Str(text.into())
    }

    fn ok(value: impl IntoValue) -> Outcome {
        Outcome::Return(value.into_value())
    }

    fn raise(e: ObjectError) -> Outcome {
        Outcome::Raise(e)
    }

    fn sample() -> NameserverCoord {
        let mut ns = NameserverCoord::construct(&[]).unwrap();
        for (sub, nodetype, node) in [
            ("foo", Value::Int(1), "10.0.0.2:14000"),
            ("foo", Value::Int(1), "10.0.0.1:14000"),
            ("foo", s("2"), "10.0.0.3:14000"),
            ("bar.openreplica.org.", s("1"), "10.0.1.1:14000"),
        ] {
            assert_eq!(call(&mut ns, "addnodetosubdomain", &[s(sub), nodetype, s(node)]), ok(()));
        }
        ns
    }

    const SAMPLE: &str = "bar.openreplica.org.;(1-10.0.1.1:14000--);\
                          foo.openreplica.org.;(1-10.0.0.1:14000 10.0.0.2:14000--2-10.0.0.3:14000--);";

    #[test]
    fn registers_nodes_by_subdomain_and_type() {
        let mut ns = sample();
        let foo = Value::Map(vec![
            (s("1"), Value::List(vec![s("10.0.0.1:14000"), s("10.0.0.2:14000")])),
            (s("2"), Value::List(vec![s("10.0.0.3:14000")])),
        ]);
        assert_eq!(call(&mut ns, "getnodes", &[s("foo")]), Outcome::Return(foo.clone()));
        assert_eq!(ns.query("getnodes", &[s("foo.openreplica.org.")]), Some(Ok(foo)));
        assert_eq!(call(&mut ns, "getsubdomains", &[]), ok(vec!["bar", "foo"]));
        let domains = vec!["bar.openreplica.org.", "foo.openreplica.org."];
        assert_eq!(call(&mut ns, "getdomains", &[]), ok(domains));
        assert_eq!(
            call(&mut ns, "getnodes", &[s("baz")]),
            raise(ObjectError::key_error("baz.openreplica.org."))
        );
    }

    #[test]
    fn deletes_nodes_and_subdomains() {
        let mut ns = sample();
        let del = |node: &str| vec![s("foo"), Value::Int(1), s(node)];
        assert_eq!(call(&mut ns, "delnodefromsubdomain", &del("10.0.0.1:14000")), ok(true));
        assert_eq!(call(&mut ns, "delnodefromsubdomain", &del("10.0.0.1:14000")), ok(false));
        assert_eq!(call(&mut ns, "delnodefromsubdomain", &del("10.0.0.2:14000")), ok(true));
        let gone = [s("nope"), s("1"), s("10.0.0.2:14000")];
        assert_eq!(call(&mut ns, "delnodefromsubdomain", &gone), ok(false));
        // The emptied type stays (as in the original) but is left out of `__str__`.
        let foo = Value::Map(vec![
            (s("1"), Value::List(vec![])),
            (s("2"), Value::List(vec![s("10.0.0.3:14000")])),
        ]);
        assert_eq!(call(&mut ns, "getnodes", &[s("foo")]), Outcome::Return(foo));
        assert!(ns.describe().contains("foo.openreplica.org.;(2-10.0.0.3:14000--);"));
        assert_eq!(call(&mut ns, "delsubdomain", &[s("foo")]), ok(true));
        assert_eq!(call(&mut ns, "delsubdomain", &[s("foo")]), ok(false));
        assert_eq!(call(&mut ns, "getsubdomains", &[]), ok(vec!["bar"]));
    }

    #[test]
    fn updatesubdomain_replaces_all_nodes() {
        let mut ns = sample();
        let nodes = Value::Map(vec![
            (Value::Int(2), Value::List(vec![s("10.0.0.9:14000"), s("10.0.0.8:14000")])),
            (s("3"), Value::List(vec![s("10.0.0.7:14000")])),
        ]);
        assert_eq!(call(&mut ns, "updatesubdomain", &[s("foo"), nodes]), ok(()));
        let foo = Value::Map(vec![
            (s("2"), Value::List(vec![s("10.0.0.8:14000"), s("10.0.0.9:14000")])),
            (s("3"), Value::List(vec![s("10.0.0.7:14000")])),
        ]);
        assert_eq!(call(&mut ns, "getnodes", &[s("foo")]), Outcome::Return(foo));
        let new = Value::Map(vec![(s("1"), Value::List(vec![s("10.0.2.1:1")]))]);
        assert_eq!(call(&mut ns, "updatesubdomain", &[s("new"), new]), ok(()));
        assert_eq!(call(&mut ns, "getsubdomains", &[]), ok(vec!["bar", "foo", "new"]));
    }

    #[test]
    fn str_has_the_original_format_and_reinstantiate_parses_it_back() {
        let mut ns = sample();
        assert_eq!(call(&mut ns, "__str__", &[]), ok(SAMPLE));
        let mut copy = NameserverCoord::default();
        assert_eq!(call(&mut copy, "_reinstantiate", &[s(SAMPLE)]), ok(()));
        assert_eq!(copy, ns);
        assert_eq!(copy.describe(), SAMPLE);
        // `_reinstantiate` replaces everything; an empty state empties the registry.
        assert_eq!(call(&mut copy, "_reinstantiate", &[s("")]), ok(()));
        assert_eq!(copy, NameserverCoord::default());
        assert_eq!(copy.describe(), "");
    }

    #[test]
    fn a_malformed_state_is_refused_and_changes_nothing() {
        let mut ns = sample();
        for (state, why) in [
            ("foo.openreplica.org.", "domain \"foo.openreplica.org.\" has no node list"),
            ("foo.openreplica.org.;1-a--;", "\"1-a--\" is not in parentheses"),
            ("foo.openreplica.org.;(1a--);", "\"1a\" has no '-' after its node type"),
        ] {
            let message = format!("malformed NameserverCoord state: {why}");
            assert_eq!(
                call(&mut ns, "_reinstantiate", &[s(state)]),
                raise(ObjectError::value_error(message))
            );
        }
        assert_eq!(ns, sample());
    }

    #[test]
    fn refuses_names_that_would_not_parse_back() {
        let mut ns = NameserverCoord::default();
        let add = |sub: &str, nodetype: &str, node: &str| vec![s(sub), s(nodetype), s(node)];
        let node_error = |node: &str| {
            ObjectError::value_error(format!(
                "a node must be non-empty, without whitespace, ';' or '--', and not start or \
                 end with '-': {node:?}"
            ))
        };
        for node in ["", "a b", "a;b", "a--b", "-a", "a-"] {
            let outcome = call(&mut ns, "addnodetosubdomain", &add("foo", "1", node));
            assert_eq!(outcome, raise(node_error(node)));
        }
        let type_error = ObjectError::value_error(
            "a node type must be non-empty, without '-' or ';': \"re-plica\"",
        );
        let outcome = call(&mut ns, "addnodetosubdomain", &add("foo", "re-plica", "a:1"));
        assert_eq!(outcome, raise(type_error));
        let outcome = call(&mut ns, "addnodetosubdomain", &add("f;oo", "1", "a:1"));
        assert_eq!(
            outcome,
            raise(ObjectError::value_error("a domain cannot contain ';': \"f;oo\""))
        );
        let outcome = call(&mut ns, "addnodetosubdomain", &[s("foo"), Value::Nil, s("a:1")]);
        assert_eq!(
            outcome,
            raise(ObjectError::type_error(
                "addnodetosubdomain() argument 'nodetype': expected str or int, got None"
            ))
        );
        assert_eq!(ns, NameserverCoord::default(), "nothing was added");
        // A hyphenated host name is fine and survives the round trip.
        call(&mut ns, "addnodetosubdomain", &add("my-sub", "1", "my-host:14000"));
        let text = ns.describe();
        assert_eq!(text, "my-sub.openreplica.org.;(1-my-host:14000--);");
        assert_eq!(parse(&text).unwrap(), ns.nodes);
    }

    #[test]
    fn snapshot_and_restore_keep_the_registry() {
        let ns = sample();
        let restored = NameserverCoord::restore(&ns.snapshot().unwrap()).unwrap();
        assert_eq!(restored, ns);
        assert!(NameserverCoord::restore(b"not a snapshot").is_err());
    }

    #[test]
    fn is_registered_under_both_names() {
        let mut types = Types::new();
        register(&mut types);
        for name in ["NameserverCoord", "concoord.object.nameservercoord.NameserverCoord"] {
            assert_eq!(types.canonical(name), Some("NameserverCoord"));
        }
    }
}

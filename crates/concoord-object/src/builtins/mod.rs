//! The built-in object types of the original ConCoord, written with `#[object]`, and
//! `register_all`, which puts them in a `Types` registry under their names and the
//! original's dotted aliases. The machine that hosts instances is `machine`, not here.

pub mod bank;
pub mod barrier;
pub mod binary_tree;
pub mod bounded_semaphore;
pub mod condition;
mod counter;
mod grant;
pub mod job_manager;
pub mod lock;
pub mod log;
pub mod map;
pub mod membership;
pub mod mesh_membership;
pub mod nameserver_coord;
pub mod queue;
pub mod rlock;
pub mod semaphore;
pub mod stack;
#[cfg(test)]
mod test_support;

pub use counter::{Counter, CounterClient};

use crate::Types;

/// Registers every built-in type under its own name (`Counter`) and the original's
/// dotted module path (`concoord.object.counter.Counter`), so both work with `-o`.
pub fn register_all(types: &mut Types) {
    types.register::<Counter>(&["concoord.object.counter.Counter"]);
    barrier::register(types);
    bank::register(types);
    binary_tree::register(types);
    bounded_semaphore::register(types);
    condition::register(types);
    job_manager::register(types);
    lock::register(types);
    log::register(types);
    map::register(types);
    membership::register(types);
    mesh_membership::register(types);
    nameserver_coord::register(types);
    queue::register(types);
    rlock::register(types);
    semaphore::register(types);
    stack::register(types);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ObjectType, Value};

    #[test]
    fn every_builtin_is_registered_under_its_name_and_dotted_alias() {
        let mut types = Types::new();
        register_all(&mut types);
        for name in ["Counter", "concoord.object.counter.Counter"] {
            assert_eq!(types.canonical(name), Some(Counter::TYPE_NAME));
            let counter = types.construct(name, &[Value::Int(3)]).unwrap();
            assert_eq!(counter.query("getvalue", &[]), Some(Ok(Value::Int(3))));
        }
        // Every registered name builds an instance from default arguments, and every
        // type is also reachable by the original's dotted path.
        for name in types.names() {
            let canonical = types.canonical(name).unwrap();
            let object = types.construct(name, &[]).unwrap();
            assert_eq!(object.type_name(), canonical);
            assert!(
                types
                    .names()
                    .any(|n| n.starts_with("concoord.object.")
                        && types.canonical(n) == Some(canonical)),
                "{canonical} has no dotted alias"
            );
        }
    }
}

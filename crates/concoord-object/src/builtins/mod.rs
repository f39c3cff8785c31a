//! The built-in object types of the original ConCoord, written with `#[object]`, and
//! `register_all`, which puts them in a `Types` registry under their names and the
//! original's dotted aliases. The machine that hosts instances is `machine`, not here.

mod counter;

pub use counter::{Counter, CounterClient};

use crate::Types;

/// Registers every built-in type under its own name (`Counter`) and the original's
/// dotted module path (`concoord.object.counter.Counter`), so both work with `-o`.
pub fn register_all(types: &mut Types) {
    types.register::<Counter>(&["concoord.object.counter.Counter"]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ObjectType, Value};

    #[test]
    fn every_builtin_is_registered_under_its_name_and_dotted_alias() {
        let mut types = Types::new();
        register_all(&mut types);
        assert_eq!(
            types.names().collect::<Vec<_>>(),
            ["Counter", "concoord.object.counter.Counter"]
        );
        for name in ["Counter", "concoord.object.counter.Counter"] {
            assert_eq!(types.canonical(name), Some(Counter::TYPE_NAME));
            let counter = types.construct(name, &[Value::Int(3)]).unwrap();
            assert_eq!(counter.query("getvalue", &[]), Some(Ok(Value::Int(3))));
        }
    }
}

//! The integration tests of `#[concoord_object::object]`: behaviour through the
//! built-in `Counter`, the documented `Mutex` and the test-only `Turnstile` (every
//! macro feature), and the compile-fail tests of every promised diagnostic
//! (`tests/ui`). The replicated machine (sessions, exactly-once) is tested in
//! `concoord_object::machine`, not here.

mod counter;
mod host;
mod minimal;
mod mutex;
mod turnstile;

/// Each `tests/ui/*.rs` must fail to compile with exactly its `.stderr`. Regenerate
/// after an intended change with `TRYBUILD=overwrite`, then review the diff.
#[test]
fn every_promised_diagnostic_is_a_clear_compile_error() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}

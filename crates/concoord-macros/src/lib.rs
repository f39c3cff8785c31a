//! `#[object]`: the attribute that turns an inherent `impl Type { ... }` block into a
//! ConCoord object (the `Object` and `ObjectType` impls plus a typed client proxy).
//!
//! This crate only reads the impl block (`model`) and writes code (`expand`); the
//! contract that code targets (`Object`, `Value`, `Ctx`, `Call`, ...) lives in
//! `concoord-object`, which re-exports this attribute as `concoord_object::object`.
//! Generated code names everything through `::concoord_object::` paths.
//!
//! Syntax, in short:
//!
//! ```text
//! #[concoord_object::object]                // or #[concoord_object::object(name = "Wire")]
//! impl Counter {
//!     #[concoord(constructor)]              // optional; `Default::default()` otherwise
//!     pub fn new(value: Option<i64>) -> Self { ... }
//!     pub fn increment(&mut self) { ... }   // command (goes through the log)
//!     pub fn getvalue(&self) -> i64 { ... } // query (may skip the log)
//!     #[concoord(name = "__str__")]         // wire name Rust cannot spell idiomatically
//!     pub fn describe(&self) -> String { ... }
//!     #[concoord(session_closed)]           // optional; runs when a session ends
//!     fn on_session_closed(&mut self, ctx: &mut Ctx, session: SessionId) { ... }
//!
//!     #[concoord(cancel)]                   // optional; a parked caller gave up
//!     fn on_cancel(&mut self, ctx: &mut Ctx, call: CallId) -> bool { ... }
//!     fn helper(&self) { ... }              // not `pub`: stays a private helper
//! }
//! ```
//!
//! - Exposed methods are the `pub fn`s with a `self` receiver (`&mut self`: command,
//!   `&self`: query). A `&mut Ctx` parameter, anywhere in the list, is handed the call's
//!   context (commands and the session hook only); every other parameter is decoded
//!   from the client's arguments by position, and an `Option<T>` one may be left out.
//! - A method returns any `T: IntoValue`, `Result<T, ObjectError>`, `Blocking<T>` or
//!   `Result<Blocking<T>, ObjectError>` (queries cannot park).
//! - The proxy method for each exposed method takes the wire name when it is a plain
//!   snake_case identifier (other than `new` and `into_inner`) and the Rust name
//!   otherwise, and returns `Result<T, CallError>` with the wrappers peeled off `T`
//!   (written as `Result<..>` / `Blocking<..>`; an alias is not seen through).
//! - The constructor and the `session_closed` and `cancel` hooks are never exposed,
//!   `pub` or not.
//!
//! Anything else that cannot be dispatched (a trait or generic impl, generic or
//! `async` methods, `self` by value, a query with a `Ctx`, duplicate wire names, an
//! unknown key...) is a compile error at the offending tokens that says what to do;
//! `crates/concoord-object/tests/ui` holds one compile-fail test per diagnostic.

mod expand;
mod model;

use proc_macro::TokenStream;

/// Makes the `pub fn` methods with a `self` receiver of an inherent impl block callable
/// as a replicated ConCoord object, and generates `TypeClient<C: Call>`, its typed
/// proxy. See the crate documentation and `docs/objects.md` for the full syntax.
#[proc_macro_attribute]
pub fn object(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::object(attr.into(), item.into()).into()
}

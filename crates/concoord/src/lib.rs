//! ConCoord, the facade: one dependency for applications. It re-exports the Rust
//! client, the object contract with its `#[object]` macro and the built-in objects,
//! and the replica server for embedding (as `concoord dev` does).
//!
//! The macro's generated code names `::concoord_object` paths, so a crate that defines
//! its own objects with `#[concoord::object]` also lists `concoord-object` among its
//! dependencies.

pub use concoord_client as client;
pub use concoord_object as object_layer;
pub use concoord_server as server;

pub use concoord_client::{BlockingClient, Client, ClientError, ClientOptions};
pub use concoord_object::builtins;
pub use concoord_object::{object, Call, CallError, ObjectError, Value};

//! ConCoord's Rust client.

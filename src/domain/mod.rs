//! Domain types, parsed once at the edge.

pub mod policy;

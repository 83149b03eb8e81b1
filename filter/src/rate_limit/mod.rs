//! Rate limits at the edge: token buckets ([`bucket`]) kept in Envoy's shared data ([`slots`]),
//! and optionally the global limit of a rate limit service ([`global`], over [`rls_proto`]).
//!
//! Each tenant has one bucket, sized by its tier; each client address (an IPv6 client's prefix,
//! [`address`]) one for invalid tokens. The
//! shared-data calls are behind [`SharedStore`] so all of this runs under `cargo test`.

pub mod address;
mod bucket;
pub mod global;
pub mod rls_proto;
mod slots;
pub mod streams;

pub use bucket::{BucketState, Decision, Limit};
pub use slots::testing;
pub use slots::{SharedStore, SlotSecret, SlotTable, WriteFailed, decode, encode};

//! Objects in S3: the [`store::ObjectStore`] trait that S3 references and the trigger read
//! through, its AWS implementation ([`client::S3Store`], behind the `s3` feature), the
//! upload [`trigger`], S3 Batch Operations ([`batch`]), and the [`invocation`] that tells
//! the two apart.

pub mod batch;
#[cfg(feature = "s3")]
pub mod client;
pub mod invocation;
pub mod store;
pub mod trigger;

#[cfg(feature = "s3")]
pub use client::S3Store;
pub use store::{ObjectMeta, ObjectStore, StoreError};

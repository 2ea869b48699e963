//! Objects in S3: the [`store::ObjectStore`] trait that S3 references and the trigger read
//! through, its AWS implementation ([`client::S3Store`], behind the `s3` feature), and the
//! upload [`trigger`].

#[cfg(feature = "s3")]
pub mod client;
pub mod store;
pub mod trigger;

#[cfg(feature = "s3")]
pub use client::S3Store;
pub use store::{ObjectMeta, ObjectStore, StoreError};

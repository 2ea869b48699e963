//! The HTTP API: one router ([`App`]) for API Gateway on Lambda and for the [`local`] server,
//! and the upload page it serves.

pub mod auth;
#[cfg(feature = "jwt")]
pub mod jwt;
pub mod local;
mod routes;

pub use routes::{App, PAGE};

//! The Spacedrive engine: libraries, the indexer, durable jobs and queries. No networking, no HTTP.
//!
//! A [`Node`] owns a data folder and the libraries in it; the daemon wraps one node and serves
//! its API. Everything here is synchronous and thread-based: walking and writing run on their own
//! threads, and a library's SQLite writes all go through its single writer thread.
//!
//! ```no_run
//! use sd_core::{Node, location::{self, AddOptions, IndexMode}, rules::RuleConfig};
//! # fn main() -> sd_core::Result<()> {
//! let node = Node::open(std::path::Path::new("/tmp/sd-data"))?;
//! let lib = node.create_library("My Files", None)?;
//! let opts = AddOptions { name: None, mode: IndexMode::Shallow, rules: RuleConfig::default(), watch: true };
//! let (loc, job) = node.add_location(&lib, std::path::Path::new("/home/me/Documents"), opts)?;
//! println!("indexing location {} as job {job}", loc.id);
//! # Ok(()) }
//! ```

pub mod actions;
pub mod audit;
pub mod content;
pub mod control;
pub mod copies;
pub mod crypt;
pub mod device;
pub mod dupes;
mod error;
pub mod events;
pub mod fileops;
pub mod filetype;
pub mod fsutil;
pub mod index;
pub mod jobs;
#[cfg(test)]
mod layers;
pub mod library;
pub mod location;
pub mod names;
pub mod node;
pub mod organise;
pub mod query;
pub mod rules;
pub mod runner;
pub mod search;
pub mod select;
pub mod sidecar;
pub mod store;
pub mod transfer;
pub mod tree;
pub mod volume;
pub mod watch;

pub use error::{Error, Result};
pub use node::Node;

//! The agents and what can be done to them. Every mutating operation runs detached
//! from its caller (a client that hangs up changes nothing) and holds the agent's
//! lock for its whole run; it acts through `containers` and `gateway` and feeds each
//! outcome to `transition` (in `registry`), the one place an agent's state changes,
//! is saved and announced.
//!
//! One file per operation: `create`, `lifecycle` (start, stop, the crash loop's
//! start, restore at launch, cancel), `edit`, `limits`, `token` (a new gateway
//! token, made through `limits`' remake), `update`, `delete`, `backup`, `restore`
//! (an agent made from a backup) and `snapshots` (the backups taken before an
//! update, edit or limits change); the swap that `update` and `limits` share in
//! `swap`; reading without changing in `queries`.
//! Beneath them: how an operation runs (`operation`), getting a container running
//! (`launch`), the agents' proxy relay (`relay`), the agent's files (`config`),
//! its port (`ports`), the engine's events and listings (`watch`), the pure
//! lifecycle (`state`) and the records in memory (`registry`).

mod backup;
mod config;
mod create;
pub mod definition;
mod delete;
mod disk;
mod edit;
mod error;
pub mod gateway;
mod identity;
mod launch;
mod lifecycle;
mod limits;
pub mod logs;
mod operation;
mod own;
mod ports;
mod queries;
mod reconcile;
mod registry;
mod relay;
mod repair;
mod requests;
mod restore;
pub mod snapshots;
pub mod state;
pub mod stats;
mod swap;
mod token;
mod update;
mod update_notice;
mod watch;

pub use crate::view::{Activity, AgentView};
pub use backup::new_private_file;
pub use error::{AgentError, ErrorCode};
pub use identity::random_hex;
pub use registry::Agents;
pub use requests::{CreateRequest, EditRequest, UpdateOutcome};
pub(crate) use restore::sweep_leftovers;
pub use restore::{RestoreOptions, RestoreOutcome};
pub use snapshots::Snapshot;

//! Clawdock's core: Podman, the machine, agents, their store, the HTTP API and the
//! shutdown routine. Knows nothing of Tauri, so it builds and tests headless.

pub mod agent_files;
pub mod agent_proxy;
pub mod agents;
pub mod api;
pub mod app;
pub mod archive;
pub mod cgroup_v1;
pub mod container;
pub mod container_spec;
pub mod containers;
pub mod dashboard;
pub mod disk_use;
pub mod doctor;
pub mod engine;
pub mod events;
pub mod export;
pub mod image_check;
pub mod instance;
pub mod login_item;
pub mod machine;
pub mod meta;
pub mod progress;
pub mod proxy_relay;
pub mod registry_auth;
pub mod self_update;
pub mod settings;
pub mod shutdown;
pub mod sizing;
pub mod status;
pub mod store;
pub mod tasks;
pub mod view;

pub use app::Clawdock;

//! The Berth engine: images, containers, volumes, events; and the Docker Engine API over them.
//!
//! # The in-process surface
//!
//! Everything the engine does is a method on [`Engine`], callable in-process; the Engine API
//! ([`api::router`]) is one caller, turning typed results into Docker's JSON, and the compose
//! planner and the orchestrator's node agent are others. Callers go through these methods only:
//! the stores (images, volumes, events, the build cache) are private to the crate.
//!
//! | area | methods | typed results |
//! |---|---|---|
//! | containers | [`create`](Engine::create), [`start`](Engine::start), [`stop`](Engine::stop), [`kill`](Engine::kill), [`restart`](Engine::restart), [`pause`](Engine::pause), [`remove`](Engine::remove), [`rename`](Engine::rename), [`update`](Engine::update), [`wait`](Engine::wait), [`containers`](Engine::containers), [`container`](Engine::container), [`prune_containers`](Engine::prune_containers) | [`types::Container`], [`containers::CreateRequest`], [`containers::UpdateRequest`], [`containers::Signal`], [`containers::WaitCondition`], [`prune::ContainerPruneReport`] |
//! | processes and streams | [`exec_create`](Engine::exec_create), [`exec_start`](Engine::exec_start), [`exec_resize`](Engine::exec_resize), [`attach`](Engine::attach), [`resize`](Engine::resize), [`logs`](Engine::logs), [`top`](Engine::top), [`stats_sample`](Engine::stats_sample) | [`engine::ExecConfig`], [`streams::ExecStartOptions`] |
//! | files | [`archive_get`](Engine::archive_get), [`archive_put`](Engine::archive_put), [`path_stat`](Engine::path_stat), [`export`](Engine::export), [`changes`](Engine::changes) | |
//! | images | [`image_list`](Engine::image_list), [`resolve_image`](Engine::resolve_image), [`image_config`](Engine::image_config), [`image_layers`](Engine::image_layers), [`tag_image`](Engine::tag_image), [`remove_image`](Engine::remove_image), [`import`](Engine::import), [`commit`](Engine::commit), [`load_images`](Engine::load_images), [`save_images`](Engine::save_images), [`prune_images`](Engine::prune_images), [`prune_build_cache`](Engine::prune_build_cache) | [`images::ImageDeleteItem`], [`prune::ImagePruneReport`] |
//! | registries | [`pull`](Engine::pull), [`push`](Engine::push), [`login`](Engine::login) | progress as Docker's JSON messages |
//! | builds | [`build`](Engine::build) | [`builder::BuildRequest`] |
//! | volumes | [`create_volume`](Engine::create_volume), [`volume`](Engine::volume), [`volume_list`](Engine::volume_list), [`volume_users`](Engine::volume_users), [`remove_volume`](Engine::remove_volume), [`prune_volumes`](Engine::prune_volumes) | [`volumes::Volume`], [`prune::VolumePruneReport`] |
//! | events and system | [`subscribe_events`](Engine::subscribe_events), [`config`](Engine::config), [`content_store`](Engine::content_store) | [`events::Event`] |
//!
//! Errors are [`Error`]s: each has an [`ErrorKind`] (what the API's status code says) and keeps
//! the typed error it came from as its source.
#![recursion_limit = "256"]

pub mod api;
pub mod attest;
pub mod builder;
pub mod cdi;
pub mod containers;
pub mod distribution;
pub mod engine;
pub mod error;
pub mod events;
pub mod fsops;
pub mod health;
pub mod images;
pub mod networks;
pub mod ports;
pub mod private;
pub mod prune;
pub mod service;
pub mod streams;
pub mod types;
pub mod units;
pub mod volumes;

pub use engine::{Engine, EngineConfig, BUILTIN_RUNTIME};
pub use error::{Error, ErrorKind, Result};

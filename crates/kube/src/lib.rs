//! Berth's orchestrator (issue 12 onward): [`store`], the revisioned key-value store with watch
//! (embedded on redb; etcd next), [`apiserver`], the Kubernetes API server that kubectl drives,
//! and [`pki`], its certificates and admin kubeconfig.

pub mod agent;
pub mod apiserver;
pub mod controllers;
pub mod cron;
pub mod dns;
pub mod ingress;
pub mod pki;
pub mod proxy;
pub mod quantity;
pub mod scheduler;
pub mod store;

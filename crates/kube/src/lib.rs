//! Berth's orchestrator (issue 12 onward). So far: [`store`], the revisioned key-value store with
//! watch that the Kubernetes API server keeps its objects in (embedded on redb; etcd next).

pub mod store;

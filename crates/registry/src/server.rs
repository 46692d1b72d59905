//! The OCI Distribution Spec v1.1 server (in progress).

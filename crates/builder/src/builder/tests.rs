//! Unit tests of the builder's helpers.

use super::copy::split_dest;
use super::*;

#[test]
fn dest_split() {
    assert_eq!(split_dest("/a/b"), ("/a", "b"));
    assert_eq!(split_dest("/b"), ("/", "b"));
}

#[test]
fn epoch_format() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(1700000000), "2023-11-14T22:13:20Z");
}

#[test]
fn env_updates() {
    let mut e = vec!["A=1".to_string(), "B=2".to_string()];
    env_set(&mut e, "A", "3");
    env_set(&mut e, "C", "4");
    assert_eq!(e, ["A=3", "B=2", "C=4"]);
    assert_eq!(env_get(&e, "B"), Some("2"));
}

//! `scim-users` links no OIDC client: none of the crates its binary is built from (normal
//! dependencies, followed through the workspace's resolved graph from `cargo metadata`) is the
//! outbound adapter crate or an HTTP, OpenID Connect or JWT client. The functions that sign
//! people in get them through `butterfly-lambda-outbound`; `admin` is checked to have them, so
//! the walk is known to see what it is looking for.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::process::Command;

/// What the SCIM function must not link.
const OUTBOUND: [&str; 5] = ["butterfly-outbound", "openidconnect", "oauth2", "jsonwebtoken", "reqwest"];

/// The names of the packages `package` is built from, itself included: normal dependencies only
/// (not dev- or build-dependencies, which never reach its binary).
fn linked(metadata: &Value, package: &str) -> BTreeSet<String> {
    let names: HashMap<&str, &str> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: HashMap<&str, &Value> =
        metadata["resolve"]["nodes"].as_array().unwrap().iter().map(|n| (n["id"].as_str().unwrap(), n)).collect();
    let root = names.iter().find(|(_, name)| **name == package).map(|(id, _)| *id).expect("the package");
    let mut seen = BTreeSet::new();
    let mut todo = vec![root];
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            continue;
        }
        for dep in nodes[id]["deps"].as_array().unwrap() {
            if dep["dep_kinds"].as_array().unwrap().iter().any(|k| k["kind"].is_null()) {
                todo.push(dep["pkg"].as_str().unwrap());
            }
        }
    }
    seen.into_iter().map(|id| names[id].to_string()).collect()
}

#[test]
fn scim_users_links_no_oidc_client() {
    let out = Command::new(env!("CARGO"))
        // The Lambda's target only: unfiltered, `cargo metadata` wants every platform's
        // packages (Android, Windows), which a fresh machine's build never downloaded.
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", "x86_64-unknown-linux-gnu", "--manifest-path"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let metadata: Value = serde_json::from_slice(&out.stdout).unwrap();

    let scim = linked(&metadata, "scim-users");
    assert!(scim.contains("butterfly-lambda") && scim.contains("butterfly-api"), "{scim:?}");
    let found: Vec<_> = OUTBOUND.iter().filter(|c| scim.contains(**c)).collect();
    assert!(found.is_empty(), "scim-users links {found:?}");

    let admin = linked(&metadata, "admin");
    for c in ["butterfly-outbound", "openidconnect", "jsonwebtoken"] {
        assert!(admin.contains(c), "admin does not link {c}: the walk misses dependencies");
    }
}

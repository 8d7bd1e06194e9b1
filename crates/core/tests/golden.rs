//! Golden vectors for filters and PATCH, built from real Okta and Entra ID payloads
//! (`tests/vectors/*.json`; each vector names its source).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use butterfly_core::clock::Timestamp;
use butterfly_core::ids::{TenantId, UserId};
use butterfly_core::scim::doc::{normalize, user_json, writable_doc, Draft, NewUserBase};
use butterfly_core::scim::filter::{self, Lookup};
use butterfly_core::scim::patch;
use butterfly_core::user::User;
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn fixture_users() -> Vec<(String, User)> {
    let users = load("users.json");
    let tenant = TenantId::generate();
    let mut out = Vec::new();
    for (i, name) in ["alice", "bob", "carol"].iter().enumerate() {
        let body = users[name].as_object().unwrap();
        let draft = Draft::parse(&normalize(body)).unwrap_or_else(|e| panic!("{name}: {e}"));
        std::thread::sleep(std::time::Duration::from_millis(2)); // distinct, ordered v7 ids
        let u = draft
            .into_new_user(NewUserBase {
                id: UserId::generate(),
                tenant: tenant.clone(),
                now: Timestamp(1_700_000_000_000 + i as i64),
            })
            .unwrap();
        out.push((name.to_string(), u));
    }
    out
}

#[test]
fn filter_vectors() {
    let users = fixture_users();
    let vectors = load("filter.json");
    let mut n = 0;
    for v in vectors.as_array().unwrap() {
        let src = v["source"].as_str().unwrap();
        let text = v["filter"].as_str().unwrap();
        match filter::parse(text) {
            Err(e) => {
                assert_eq!(v["error"], "invalidFilter", "{src}: {text:?} failed to parse: {e}");
                assert!(!e.is_empty(), "{src}: an error needs a detail");
            }
            Ok(f) => {
                assert!(v.get("error").is_none(), "{src}: {text:?} parsed but should be refused");
                let got: Vec<&str> = users
                    .iter()
                    .filter(|(_, u)| f.matches(&user_json(u, "https://x/scim/v2")))
                    .map(|(n, _)| n.as_str())
                    .collect();
                let want: Vec<&str> = v["matches"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
                assert_eq!(got, want, "{src}: {text:?}");
                if let Some(l) = v.get("lookups") {
                    let want: Vec<Lookup> = l
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| {
                            let (k, val) = (p[0].as_str().unwrap(), p[1].as_str().unwrap().to_string());
                            match k {
                                "userName" => Lookup::UserName(val),
                                "externalId" => Lookup::ExternalId(val),
                                _ => Lookup::Id(val),
                            }
                        })
                        .collect();
                    assert_eq!(f.lookups(), Some(want), "{src}: {text:?} must be answered by an index");
                }
            }
        }
        n += 1;
    }
    assert!(n >= 40, "only {n} filter vectors ran");
}

#[test]
fn filters_that_need_a_scan_are_not_planned_as_lookups() {
    for text in
        ["active eq true", "userName sw \"a\"", "userName eq \"a\" or active eq true", "not (userName eq \"a\")"]
    {
        assert_eq!(filter::parse(text).unwrap().lookups(), None, "{text}");
    }
}

#[test]
fn patch_vectors() {
    let users = fixture_users();
    let vectors = load("patch.json");
    let mut n = 0;
    for v in vectors.as_array().unwrap() {
        let src = v["source"].as_str().unwrap();
        let before = users.iter().find(|(n, _)| n == v["before"].as_str().unwrap()).unwrap().1.clone();
        let mut user = before.clone();
        let result = patch::parse_request(&v["request"]).and_then(|ops| patch::apply_to_user(&mut user, &ops));
        match (result, v.get("error")) {
            (Ok(()), None) => {
                let doc = writable_doc(&user);
                for (k, want) in v["expect"].as_object().unwrap() {
                    let got = doc.get(k).cloned().unwrap_or(Value::Null);
                    assert_eq!(&got, want, "{src}: attribute {k}");
                }
            }
            (Ok(()), Some(e)) => panic!("{src}: expected {e}, got success: {}", Value::Object(writable_doc(&user))),
            (Err(err), Some(e)) => {
                assert_eq!(err.scim_type(), e.as_str(), "{src}: {err}");
                assert_eq!(user, before, "{src}: a failed PATCH must leave the user unchanged");
            }
            (Err(err), None) => panic!("{src}: unexpected error {err:?}"),
        }
        n += 1;
    }
    assert!(n >= 35, "only {n} PATCH vectors ran");
}

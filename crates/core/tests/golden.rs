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
                if let Some(exact) = f.single_lookup() {
                    for (name, u) in &users {
                        assert_eq!(exact.holds_for(u), want.contains(&name.as_str()), "{src}: {text:?} on {name}");
                    }
                }
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

/// A listing holds what the store found for a lone lookup to the lookup's own rule instead of
/// the rendered document: the two must agree, whatever the case or script of either side.
#[test]
fn a_lone_lookup_answers_like_the_filter() {
    let base = fixture_users().remove(0).1;
    let cases: &[(&str, Option<&str>, &str, bool)] = &[
        // stored userName, stored externalId, filter, matches
        ("Alice@Example.com", None, r#"userName eq "alice@example.com""#, true),
        ("alice@example.com", None, r#"userName eq "ALICE@EXAMPLE.COM""#, true),
        ("alice@example.com", None, r#"userName eq "alice@example.co""#, false),
        ("ÉLODIE@example.fr", None, r#"userName eq "élodie@example.fr""#, true),
        ("élodie@example.fr", None, r#"userName eq "elodie@example.fr""#, false),
        ("ANDREAS@example.de", None, r#"userName eq "andreaſ@example.de""#, true),
        ("a@example.com", Some("00u1AbC"), r#"externalId eq "00u1AbC""#, true),
        ("a@example.com", Some("00u1AbC"), r#"externalId eq "00u1abc""#, false),
        ("a@example.com", None, r#"externalId eq "00u1abc""#, false),
        ("a@example.com", None, r#"userName eq "a@example.com " "#, false),
    ];
    for (user_name, external_id, text, want) in cases {
        let mut u = base.clone();
        u.user_name = butterfly_core::email::UserName::parse(user_name).unwrap();
        u.external_id = external_id.map(str::to_string);
        let f = filter::parse(text).unwrap();
        let exact = f.single_lookup().unwrap_or_else(|| panic!("{text} is a lone lookup"));
        let by_doc = f.matches(&user_json(&u, ""));
        assert_eq!(by_doc, *want, "{user_name} / {text}: the filter itself");
        assert_eq!(exact.holds_for(&u), by_doc, "{user_name} / {text}: the lookup's rule");
    }
    // By id: exact, as the document renders it.
    let id = base.id.to_string();
    for (text, want) in [(format!("id eq \"{id}\""), true), (format!("id eq \"{}\"", id.to_uppercase()), false)] {
        let f = filter::parse(&text).unwrap();
        assert_eq!(f.matches(&user_json(&base, "")), want, "{text}");
        assert_eq!(f.single_lookup().unwrap().holds_for(&base), want, "{text}");
    }
    // Compound filters are not lone lookups: they are held to the document.
    for text in [r#"userName eq "a@example.com" and active eq true"#, r#"userName eq "a" or userName eq "b""#] {
        assert_eq!(filter::parse(text).unwrap().single_lookup(), None, "{text}");
    }
}

/// Responses without a projection write users straight (`UserDoc`); projections, filters and
/// PATCH work on the tree (`user_json`). The two must be the same document, byte for byte and in
/// the same order, for every shape a user can have.
#[test]
fn a_user_written_straight_is_the_canonical_document() {
    use butterfly_core::role::Role;
    use butterfly_core::scim::doc::UserDoc;
    use butterfly_core::user::{Email, Name};
    let mut users: Vec<User> = fixture_users().into_iter().map(|(_, u)| u).collect();
    let mut bare = users[0].clone();
    (bare.name, bare.display_name, bare.locale, bare.role, bare.external_id) = (None, None, None, None, None);
    bare.emails.clear();
    bare.active = false;
    users.push(bare.clone());
    let mut full = bare.clone();
    full.name = Some(Name {
        formatted: Some("Ms. Zoë \"Q\" O'Brien".into()),
        family_name: Some("O'Brien".into()),
        given_name: Some("Zoë".into()),
        middle_name: Some("Q".into()),
    });
    full.display_name = Some("line\nbreak \u{202e} </script>".into());
    full.locale = Some("fr-CA".into());
    full.external_id = Some("00u\"1\\".into());
    full.emails = vec![
        Email {
            value: "a@example.com".into(),
            kind: Some("work".into()),
            primary: Some(true),
            display: Some("A".into()),
        },
        Email { value: "b@example.com".into(), kind: None, primary: Some(false), display: None },
    ];
    for role in Role::ALL {
        full.role = Some(role);
        users.push(full.clone());
    }
    let mut empty_name = bare;
    empty_name.name = Some(Name::default());
    users.push(empty_name);
    for u in &users {
        for base in ["", "https://api.example.com/scim/v2"] {
            let straight = serde_json::to_vec(&UserDoc { user: u, location_base: base }).unwrap();
            let canonical = serde_json::to_vec(&user_json(u, base)).unwrap();
            assert_eq!(String::from_utf8(straight).unwrap(), String::from_utf8(canonical).unwrap());
        }
    }
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

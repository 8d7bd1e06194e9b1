//! The store contract: one suite every adapter must pass (the embedded store and DynamoDB
//! Local run it). Each check gets a fresh, empty store.

use butterfly_core::audit::{AuditAction, AuditEvent};
use butterfly_core::claims::{TenantClaim, UniqueAttribute, UserClaim};
use butterfly_core::clock::{Clock, SystemClock, Timestamp};
use butterfly_core::email::{EmailDomain, UserName};
use butterfly_core::ids::{TenantId, UserId};
use butterfly_core::ports::Store;
use butterfly_core::ports::TokenSlots;
use butterfly_core::sso::{
    hash_secret, random_secret, Issuer, LoginTransaction, ReturnPath, Session, SsoConfig, Subject,
};
use butterfly_core::tenant::Tenant;
use butterfly_core::token::{ScimToken, Secret, TokenHash, TokenRecord};
use butterfly_core::user::User;
use butterfly_core::{Error, Taken};
use std::any::Any;
use std::sync::Arc;

/// A store under test, and whatever keeps it alive (a temp dir, a table).
pub struct Fixture {
    pub store: Arc<dyn Store>,
    pub guard: Box<dyn Any + Send + Sync>,
}

fn now() -> Timestamp {
    SystemClock.now()
}

pub fn tenant(name: &str, domains: &[&str]) -> Tenant {
    Tenant {
        id: TenantId::generate(),
        name: name.into(),
        domains: domains.iter().map(|d| EmailDomain::parse(d).unwrap()).collect(),
        domain_records: vec![],
        verification_token: None,
        created: now(),
        sso: None,
        version: 1,
        sign_in_policy: None,
    }
}

pub fn user(tenant: &TenantId, name: &str, external_id: Option<&str>) -> User {
    let t = now();
    User {
        id: UserId::generate(),
        tenant: tenant.clone(),
        user_name: UserName::parse(name).unwrap(),
        external_id: external_id.map(str::to_string),
        name: None,
        display_name: Some(format!("User {name}")),
        emails: vec![],
        active: true,
        locale: None,
        role: None,
        role_source: None,
        subject: None,
        sessions_revoked_at: None,
        created: t,
        last_modified: t,
        version: 1,
    }
}

fn token(tenant: &TenantId) -> TokenRecord {
    let t = ScimToken::generate_for(tenant).unwrap();
    TokenRecord {
        hash: t.hash(),
        tenant: tenant.clone(),
        display_prefix: t.display_prefix(),
        created: now(),
        last_used: None,
        expires: None,
        replaces: None,
    }
}

pub async fn tenants(f: Fixture) {
    let s = &f.store;
    let a = tenant("A", &["a.example", "a2.example"]);
    s.create_tenant(&a).await.unwrap();
    assert_eq!(s.get_tenant(&a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(s.get_tenant(&TenantId::generate()).await.unwrap(), None);
    // A domain belongs to one tenant only; the failed create leaves nothing behind.
    let b = tenant("B", &["b.example", "a2.example"]);
    assert!(matches!(s.create_tenant(&b).await, Err(Error::Taken(Taken::Tenant(_)))));
    assert_eq!(s.get_tenant(&b.id).await.unwrap(), None);
    let b2 = tenant("B", &["b.example"]);
    s.create_tenant(&b2).await.unwrap();
    let ids: Vec<TenantId> = s.list_tenants().await.unwrap().into_iter().map(|t| t.id).collect();
    assert!(ids.contains(&a.id) && ids.contains(&b2.id) && !ids.contains(&b.id));
}

/// Every token the store keeps for the tenant that still resolves (is not deleted).
async fn resolvable(s: &Arc<dyn Store>, hashes: &[TokenHash]) -> Vec<TokenHash> {
    let mut out = Vec::new();
    for h in hashes {
        if s.resolve_token(h).await.unwrap().is_some() {
            out.push(*h);
        }
    }
    out
}

pub async fn tokens(f: Fixture) {
    let s = &f.store;
    let t = TenantId::generate();
    let first = token(&t);
    s.install_token(&first, None).await.unwrap();
    assert_eq!(s.resolve_token(&first.hash).await.unwrap(), Some(first.clone()));
    let slots = |c: &TokenRecord, p: Option<&TokenRecord>| TokenSlots { current: c.hash, previous: p.map(|p| p.hash) };
    assert_eq!(s.token_slots(&t).await.unwrap(), Some(slots(&first, None)));
    // A second "issue" is refused; a rotation must name the tenant's current tokens.
    assert!(matches!(s.install_token(&token(&t), None).await, Err(Error::Conflict(_))));
    let stranger = token(&t);
    assert!(matches!(s.install_token(&token(&t), Some(&slots(&stranger, None))).await, Err(Error::Conflict(_))));
    let second = token(&t);
    s.install_token(&second, Some(&slots(&first, None))).await.unwrap();
    assert_eq!(s.resolve_token(&first.hash).await.unwrap(), None, "the old token is dead at once");
    assert_eq!(s.token_slots(&t).await.unwrap(), Some(slots(&second, None)));
    // Last use only moves forward; a rotated-away token is not revived by a late use.
    s.record_token_use(&second.hash, Timestamp(2_000)).await.unwrap();
    s.record_token_use(&second.hash, Timestamp(1_000)).await.unwrap();
    assert_eq!(s.resolve_token(&second.hash).await.unwrap().unwrap().last_used, Some(Timestamp(2_000)));
    s.record_token_use(&first.hash, Timestamp(3_000)).await.unwrap();
    assert_eq!(s.resolve_token(&first.hash).await.unwrap(), None);

    // Rotation with overlap: the old token stays, with a deadline, until retired.
    let third = token(&t);
    let until = Timestamp(now().millis() + 3_600_000);
    assert!(matches!(s.install_token_with_overlap(&third, &slots(&first, None), until).await, Err(Error::Conflict(_))));
    s.install_token_with_overlap(&third, &slots(&second, None), until).await.unwrap();
    assert_eq!(s.token_slots(&t).await.unwrap(), Some(slots(&third, Some(&second))));
    assert_eq!(s.resolve_token(&second.hash).await.unwrap().and_then(|r| r.expires), Some(until));
    // Retiring needs the pointer to still name both; the current token is never retired.
    s.retire_previous(&t, &second.hash, &third.hash).await.unwrap();
    assert!(s.resolve_token(&third.hash).await.unwrap().is_some(), "the current token is never retired");
    s.retire_previous(&t, &third.hash, &second.hash).await.unwrap();
    assert_eq!(s.resolve_token(&second.hash).await.unwrap(), None);
    assert_eq!(s.token_slots(&t).await.unwrap(), Some(slots(&third, None)));
    s.retire_previous(&t, &third.hash, &second.hash).await.unwrap();

    // The attack: overlap (T4 beside T3), then "immediate" (T5). Every older token is dead.
    let t4 = token(&t);
    s.install_token_with_overlap(&t4, &slots(&third, None), until).await.unwrap();
    let t5 = token(&t);
    s.install_token(&t5, Some(&slots(&t4, Some(&third)))).await.unwrap();
    assert_eq!(resolvable(s, &[first.hash, second.hash, third.hash, t4.hash, t5.hash]).await, vec![t5.hash]);
    // Overlap after overlap: only the current one and the one it overlaps live, ever.
    let t6 = token(&t);
    s.install_token_with_overlap(&t6, &slots(&t5, None), until).await.unwrap();
    let t7 = token(&t);
    s.install_token_with_overlap(&t7, &slots(&t6, Some(&t5)), until).await.unwrap();
    assert_eq!(resolvable(s, &[t5.hash, t6.hash, t7.hash]).await, vec![t6.hash, t7.hash]);
    assert_eq!(s.token_slots(&t).await.unwrap(), Some(slots(&t7, Some(&t6))));
    // A stale expectation (naming the tokens before the last rotation) is refused.
    assert!(matches!(s.install_token(&token(&t), Some(&slots(&t6, Some(&t5)))).await, Err(Error::Conflict(_))));
}

pub async fn users(f: Fixture) {
    let s = &f.store;
    let (t, other) = (TenantId::generate(), TenantId::generate());
    let tok = token(&t);
    s.install_token(&tok, None).await.unwrap();
    let alice = user(&t, "Alice@Example.com", Some("00uALICE"));
    s.create_user(&alice).await.unwrap();
    assert_eq!(s.get_user(&t, &alice.id).await.unwrap(), Some(alice.clone()));
    assert_eq!(s.get_user(&other, &alice.id).await.unwrap(), None, "tenant-scoped");
    assert_eq!(s.find_user_by_user_name(&t, "alice@example.com").await.unwrap(), Some(alice.clone()));
    assert_eq!(s.find_user_by_user_name(&other, "alice@example.com").await.unwrap(), None);
    assert_eq!(s.find_user_by_external_id(&t, "00uALICE").await.unwrap(), Some(alice.clone()));
    assert_eq!(s.find_user_by_external_id(&t, "00ualice").await.unwrap(), None, "externalId is exact");
    let (rec, u) = s.resolve_token_and_get_user(&tok.hash, &alice.id).await.unwrap();
    assert_eq!((rec.map(|r| r.tenant), u), (Some(t.clone()), Some(alice.clone())));
    let (rec, u) = s.resolve_token_and_get_user(&token(&t).hash, &alice.id).await.unwrap();
    assert_eq!((rec, u), (None, None), "no user without a valid token");

    // Uniqueness: same userName in any case, same externalId; other tenants are free.
    assert!(matches!(
        s.create_user(&user(&t, "ALICE@example.COM", None)).await,
        Err(Error::Taken(Taken::User(UniqueAttribute::UserName)))
    ));
    assert!(matches!(
        s.create_user(&user(&t, "other@example.com", Some("00uALICE"))).await,
        Err(Error::Taken(Taken::User(UniqueAttribute::ExternalId)))
    ));
    assert_eq!(s.find_user_by_user_name(&t, "other@example.com").await.unwrap(), None, "no partial write");
    s.create_user(&user(&other, "alice@example.com", Some("00uALICE"))).await.unwrap();
    assert_eq!(s.count_users(&t).await.unwrap(), 1);
    assert_eq!(s.count_users(&other).await.unwrap(), 1);
}

/// The one-round-trip reads and writes of a token that names its tenant: the token read with the
/// claim of a user, and a create in the same atomic write as the check that the token is live.
pub async fn token_checked_requests(f: Fixture) {
    let s = &f.store;
    let (a, b) = (TenantId::generate(), TenantId::generate());
    let (ta, tb) = (token(&a), token(&b));
    s.install_token(&ta, None).await.unwrap();
    s.install_token(&tb, None).await.unwrap();
    let alice = user(&a, "Alice@Example.com", Some("00uALICE"));
    let bob = user(&b, "bob@example.com", Some("00uBOB"));
    s.create_user(&alice).await.unwrap();
    s.create_user(&bob).await.unwrap();
    let un = |t: &TenantId, n: &str| UserClaim::UserName { tenant: t.clone(), folded: n.into() };
    let ext = |t: &TenantId, e: &str| UserClaim::ExternalId { tenant: t.clone(), external_id: e.into() };

    let found = s.resolve_token_and_find_user(&ta.hash, &un(&a, "alice@example.com")).await.unwrap();
    assert_eq!(found, (Some(ta.clone()), Some(alice.clone())));
    let found = s.resolve_token_and_find_user(&ta.hash, &ext(&a, "00uALICE")).await.unwrap();
    assert_eq!(found, (Some(ta.clone()), Some(alice.clone())));
    let found = s.resolve_token_and_find_user(&ta.hash, &un(&a, "nobody@example.com")).await.unwrap();
    assert_eq!(found, (Some(ta.clone()), None), "a miss still proves (or not) the token");
    // Another tenant's claim with A's token: A's record (the caller refuses it), never B's user.
    let found = s.resolve_token_and_find_user(&ta.hash, &un(&b, "bob@example.com")).await.unwrap();
    assert_eq!(found, (Some(ta.clone()), None), "no user of another tenant");
    let found = s.resolve_token_and_find_user(&token(&a).hash, &un(&a, "alice@example.com")).await.unwrap();
    assert_eq!(found, (None, None), "no user without a token");

    // A create checked against a live token of the user's tenant.
    let t0 = now();
    let carol = user(&a, "carol@example.com", None);
    let ev = AuditEvent::new(&a, t0, AuditAction::ScimUserCreate, "scim").target(carol.id);
    s.create_user_checked(&carol, Some(&ev), &ta.hash, t0).await.unwrap();
    assert_eq!(s.get_user(&a, &carol.id).await.unwrap(), Some(carol.clone()));
    assert_eq!(s.count_users(&a).await.unwrap(), 2);
    assert!(s.audit_page(&a, None, 100).await.unwrap().iter().any(|e| e.id == ev.id));

    // Refused, with nothing written (no user, no claim, no count, no audit event): a token of
    // another tenant, an unknown token, and — ahead of a taken userName — an unknown token.
    let refused = |r: butterfly_core::Result<()>| matches!(r, Err(Error::Unauthorized(_)));
    let dave = user(&b, "dave@example.com", None);
    let ev = AuditEvent::new(&b, t0, AuditAction::ScimUserCreate, "scim").target(dave.id);
    assert!(refused(s.create_user_checked(&dave, Some(&ev), &ta.hash, t0).await), "A's token writing into B");
    assert!(refused(s.create_user_checked(&dave, None, &token(&b).hash, t0).await), "an unknown token");
    let dup = user(&a, "ALICE@example.com", None);
    assert!(refused(s.create_user_checked(&dup, None, &token(&a).hash, t0).await), "the token is checked first");
    assert!(matches!(
        s.create_user_checked(&dup, None, &ta.hash, t0).await,
        Err(Error::Taken(Taken::User(UniqueAttribute::UserName)))
    ));
    assert_eq!(s.get_user(&b, &dave.id).await.unwrap(), None);
    assert_eq!(s.find_user_by_user_name(&b, "dave@example.com").await.unwrap(), None);
    assert_eq!((s.count_users(&a).await.unwrap(), s.count_users(&b).await.unwrap()), (2, 1));
    assert!(!s.audit_page(&b, None, 100).await.unwrap().iter().any(|e| e.id == ev.id));

    // Rotation with overlap: the old token works until its deadline, not after; once retired
    // (the new token's first use), not at all; and after an immediate rotation, neither.
    let ta2 = token(&a);
    let until = Timestamp(t0.millis() + 60_000);
    s.install_token_with_overlap(&ta2, &TokenSlots { current: ta.hash, previous: None }, until).await.unwrap();
    let erin = user(&a, "erin@example.com", None);
    assert!(refused(s.create_user_checked(&erin, None, &ta.hash, Timestamp(until.millis() + 1)).await), "past it");
    s.create_user_checked(&erin, None, &ta.hash, t0).await.unwrap();
    s.retire_previous(&a, &ta2.hash, &ta.hash).await.unwrap();
    let fred = user(&a, "fred@example.com", None);
    assert!(refused(s.create_user_checked(&fred, None, &ta.hash, t0).await), "a retired token");
    s.create_user_checked(&fred, None, &ta2.hash, t0).await.unwrap();
    let ta3 = token(&a);
    s.install_token(&ta3, Some(&TokenSlots { current: ta2.hash, previous: None })).await.unwrap();
    let gail = user(&a, "gail@example.com", None);
    assert!(refused(s.create_user_checked(&gail, None, &ta2.hash, t0).await), "a rotated-away token");
    assert_eq!(s.get_user(&a, &gail.id).await.unwrap(), None);
    assert_eq!(s.count_users(&a).await.unwrap(), 4);
}

pub async fn versioned_replace_and_delete(f: Fixture) {
    let s = &f.store;
    let t = TenantId::generate();
    let a = user(&t, "a@example.com", Some("00uA"));
    let b = user(&t, "b@example.com", Some("00uB"));
    s.create_user(&a).await.unwrap();
    s.create_user(&b).await.unwrap();

    let mut a2 = a.clone();
    a2.display_name = Some("Renamed".into());
    a2.user_name = UserName::parse("A.New@example.com").unwrap();
    a2.external_id = Some("00uA2".into());
    a2.version = 2;
    s.replace_user(&a, &a2).await.unwrap();
    assert_eq!(s.get_user(&t, &a.id).await.unwrap(), Some(a2.clone()));
    assert_eq!(
        s.find_user_by_user_name(&t, "a.new@example.com").await.unwrap(),
        Some(a2.clone()),
        "claims copy the new body"
    );
    assert_eq!(s.find_user_by_user_name(&t, "a@example.com").await.unwrap(), None, "old claim released");
    assert_eq!(s.find_user_by_external_id(&t, "00uA2").await.unwrap(), Some(a2.clone()));
    assert_eq!(s.find_user_by_external_id(&t, "00uA").await.unwrap(), None);

    // A stale version is refused and changes nothing.
    let mut stale = a2.clone();
    stale.display_name = Some("Stale".into());
    stale.version = 3;
    assert!(matches!(s.replace_user(&a, &stale).await, Err(Error::PreconditionFailed(_))));
    assert_eq!(s.get_user(&t, &a.id).await.unwrap(), Some(a2.clone()));

    // Renaming onto a taken userName or externalId is refused atomically.
    let mut clash = a2.clone();
    clash.user_name = UserName::parse("B@example.com").unwrap();
    clash.version = 3;
    assert!(matches!(s.replace_user(&a2, &clash).await, Err(Error::Taken(Taken::User(UniqueAttribute::UserName)))));
    let mut clash = a2.clone();
    clash.external_id = Some("00uB".into());
    clash.version = 3;
    assert!(matches!(s.replace_user(&a2, &clash).await, Err(Error::Taken(Taken::User(UniqueAttribute::ExternalId)))));
    assert_eq!(s.get_user(&t, &a.id).await.unwrap(), Some(a2.clone()));
    // Dropping the externalId frees it.
    let mut a3 = a2.clone();
    a3.external_id = None;
    a3.version = 3;
    s.replace_user(&a2, &a3).await.unwrap();
    assert_eq!(s.find_user_by_external_id(&t, "00uA2").await.unwrap(), None);

    // Delete checks the version, frees the claims, and updates the count.
    assert!(matches!(s.delete_user(&a2).await, Err(Error::PreconditionFailed(_))));
    s.delete_user(&a3).await.unwrap();
    assert_eq!(s.get_user(&t, &a.id).await.unwrap(), None);
    assert_eq!(s.find_user_by_user_name(&t, "a.new@example.com").await.unwrap(), None);
    assert_eq!(s.count_users(&t).await.unwrap(), 1);
    assert!(s.delete_user(&a3).await.is_err(), "already gone");
    s.create_user(&user(&t, "a.new@example.com", None)).await.unwrap();
}

pub async fn key_ordered_pages(f: Fixture) {
    let s = &f.store;
    let (t, other) = (TenantId::generate(), TenantId::generate());
    let mut ids = Vec::new();
    for i in 0..130 {
        let u = user(&t, &format!("p{i}@example.com"), None);
        ids.push(u.id);
        s.create_user(&u).await.unwrap();
        if i % 20 == 0 {
            s.create_user(&user(&other, &format!("p{i}@example.com"), None)).await.unwrap();
        }
    }
    ids.sort();
    // Walk in pages of 7 with `after`, as cursors do.
    let mut seen = Vec::new();
    let mut after: Option<UserId> = None;
    for _ in 0..100 {
        let page = s.list_users(&t, after.as_ref(), 0, 7).await.unwrap();
        assert!(page.len() <= 7);
        if page.is_empty() {
            break;
        }
        after = page.last().map(|u| u.id);
        seen.extend(page.into_iter().map(|u| u.id));
    }
    assert_eq!(seen, ids, "every user of the tenant once, in key order, none of another tenant");
    // Offsets, as index paging uses them.
    let page = s.list_users(&t, None, 125, 10).await.unwrap();
    assert_eq!(page.iter().map(|u| u.id).collect::<Vec<_>>(), ids[125..].to_vec());
    let page = s.list_users(&t, Some(&ids[9]), 3, 2).await.unwrap();
    assert_eq!(page.iter().map(|u| u.id).collect::<Vec<_>>(), ids[13..15].to_vec());
    assert!(s.list_users(&t, None, 500, 10).await.unwrap().is_empty());
    assert_eq!(s.count_users(&t).await.unwrap(), 130);
}

pub async fn create_race(f: Fixture) {
    let t = TenantId::generate();
    let barrier = Arc::new(tokio::sync::Barrier::new(64));
    let mut tasks = Vec::new();
    for i in 0..64 {
        let (store, barrier, t) = (f.store.clone(), barrier.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            let name = if i % 2 == 0 { "Race@example.com" } else { "race@EXAMPLE.com" };
            let u = user(&t, name, Some(&format!("00u{i}")));
            barrier.wait().await;
            store.create_user(&u).await
        }));
    }
    let (mut ok, mut taken) = (0, 0);
    for task in tasks {
        match tokio::time::timeout(std::time::Duration::from_secs(120), task).await.unwrap().unwrap() {
            Ok(()) => ok += 1,
            Err(Error::Taken(Taken::User(UniqueAttribute::UserName))) => taken += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!((ok, taken), (1, 63));
    assert_eq!(f.store.count_users(&t).await.unwrap(), 1);
}

/// Many writers at once, some of them failing part-way (a create that claims a new externalId
/// and then finds its subject taken): every writer gets its own answer and a failed write leaves
/// nothing behind, whatever else was written at the same moment (the embedded store commits
/// concurrent writes together).
pub async fn mixed_concurrent_writes(f: Fixture) {
    let t = TenantId::generate();
    let taken = Subject { issuer: "https://m.okta.example".into(), sub: "00uTaken".into() };
    let mut holder = user(&t, "holder@example.com", None);
    holder.subject = Some(taken.clone());
    f.store.create_user(&holder).await.unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(96));
    let mut tasks = Vec::new();
    for i in 0..96 {
        let (store, barrier, t, taken) = (f.store.clone(), barrier.clone(), t.clone(), taken.clone());
        tasks.push(tokio::spawn(async move {
            let u = match i % 3 {
                // 32 distinct users, each created twice (once here, once by i % 3 == 1).
                0 => user(&t, &format!("m{}@example.com", i / 3), Some(&format!("00uM{i}"))),
                1 => user(&t, &format!("m{}@example.com", i / 3), Some(&format!("00uD{i}"))),
                // 32 creates that claim a fresh externalId, then fail on the subject.
                _ => {
                    let mut u = user(&t, &format!("f{i}@example.com"), Some(&format!("00uF{i}")));
                    u.subject = Some(taken);
                    u
                }
            };
            barrier.wait().await;
            (i, store.create_user(&u).await)
        }));
    }
    let (mut created, mut name_taken, mut subject_taken) = (0, 0, 0);
    for task in tasks {
        let (i, r) = tokio::time::timeout(std::time::Duration::from_secs(120), task).await.unwrap().unwrap();
        match (i % 3, r) {
            (0 | 1, Ok(())) => created += 1,
            (0 | 1, Err(Error::Taken(Taken::User(UniqueAttribute::UserName)))) => name_taken += 1,
            (2, Err(Error::Taken(Taken::User(UniqueAttribute::Subject)))) => subject_taken += 1,
            (k, r) => panic!("writer {i} (kind {k}): unexpected {r:?}"),
        }
    }
    assert_eq!((created, name_taken, subject_taken), (32, 32, 32));
    assert_eq!(f.store.count_users(&t).await.unwrap(), 33);
    for i in (2..96).step_by(3) {
        let ext = format!("00uF{i}");
        assert_eq!(f.store.find_user_by_external_id(&t, &ext).await.unwrap(), None, "{ext} left behind");
        assert_eq!(f.store.find_user_by_user_name(&t, &format!("f{i}@example.com")).await.unwrap(), None);
    }
    // The claims a failed write touched are free.
    f.store.create_user(&user(&t, "f2@example.com", Some("00uF2"))).await.unwrap();
    assert_eq!(f.store.find_user_by_subject(&t, &taken).await.unwrap().map(|u| u.id), Some(holder.id));
}

pub async fn version_race(f: Fixture) {
    let t = TenantId::generate();
    let base = user(&t, "v@example.com", None);
    f.store.create_user(&base).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (store, base) = (f.store.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            let mut next = base.clone();
            next.display_name = Some(format!("writer {i}"));
            next.version = 2;
            store.replace_user(&base, &next).await
        }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => ok += 1,
            Err(Error::PreconditionFailed(_)) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok, 1, "exactly one writer of version 1 wins");
    assert_eq!(f.store.get_user(&t, &base.id).await.unwrap().unwrap().version, 2);
}

pub async fn expiring_keys(f: Fixture) {
    let s = &f.store;
    let later = now().plus_secs(600);
    assert!(s.claim_once("jti", "abc", later).await.unwrap());
    assert!(!s.claim_once("jti", "abc", later).await.unwrap(), "a replay is refused");
    assert!(s.claim_once("other-scope", "abc", later).await.unwrap(), "scopes are separate");
    // An item past its expiry is gone even though the store has not deleted it.
    let past = Timestamp(now().millis() - 5_000);
    assert!(s.claim_once("tx", "old", past).await.unwrap());
    assert!(s.claim_once("tx", "old", later).await.unwrap(), "expired: claimable again");
    assert!(!s.claim_once("tx", "old", later).await.unwrap());
    // Of concurrent claims exactly one wins.
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = f.store.clone();
        tasks.push(tokio::spawn(async move { store.claim_once("jti", "race", later).await.unwrap() }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
}

fn sso_config(issuer: &str) -> SsoConfig {
    SsoConfig {
        issuer: Issuer::parse(issuer, false).unwrap(),
        client_id: "client".into(),
        enabled: true,
        updated: now(),
        bound_at: Some(now()),
        replaces: None,
    }
}

pub async fn tenant_settings(f: Fixture) {
    let s = &f.store;
    let a = tenant("A", &["a.example", "old.example"]);
    let b = tenant("B", &["b.example"]);
    s.create_tenant(&a).await.unwrap();
    s.create_tenant(&b).await.unwrap();
    let domain = |d: &str| EmailDomain::parse(d).unwrap();
    assert_eq!(s.find_tenant_by_domain(&domain("a.example")).await.unwrap().map(|t| t.id), Some(a.id.clone()));
    assert_eq!(s.find_tenant_by_domain(&domain("nobody.example")).await.unwrap(), None);

    // SSO settings and a domain move, atomically, under a version check.
    let mut next = a.clone();
    next.sso = Some(sso_config("https://a.okta.example"));
    next.domains = vec![domain("a.example"), domain("new.example")];
    next.version = a.version + 1;
    s.replace_tenant(&a, &next).await.unwrap();
    assert_eq!(s.get_tenant(&a.id).await.unwrap(), Some(next.clone()));
    assert_eq!(s.find_tenant_by_domain(&domain("new.example")).await.unwrap().map(|t| t.id), Some(a.id.clone()));
    assert_eq!(s.find_tenant_by_domain(&domain("old.example")).await.unwrap(), None, "released");
    assert_eq!(s.find_tenant_by_issuer("https://a.okta.example").await.unwrap().map(|t| t.id), Some(a.id.clone()));
    assert!(matches!(s.replace_tenant(&a, &next).await, Err(Error::PreconditionFailed(_))), "stale version");

    // Another tenant's domain or issuer is refused, with no partial write.
    let mut steal = b.clone();
    steal.domains = vec![domain("b.example"), domain("new.example")];
    steal.sso = Some(sso_config("https://b.okta.example"));
    steal.version += 1;
    assert!(
        matches!(s.replace_tenant(&b, &steal).await, Err(Error::Taken(Taken::Tenant(TenantClaim::Domain(d)))) if d.as_str() == "new.example")
    );
    assert_eq!(s.find_tenant_by_issuer("https://b.okta.example").await.unwrap(), None, "no partial write");
    let mut steal_iss = b.clone();
    steal_iss.sso = Some(sso_config("https://a.okta.example"));
    steal_iss.version += 1;
    assert!(matches!(s.replace_tenant(&b, &steal_iss).await, Err(Error::Taken(Taken::Tenant(TenantClaim::Issuer(_))))));
    assert_eq!(s.get_tenant(&b.id).await.unwrap(), Some(b.clone()));

    // Changing the issuer moves the claim.
    let mut moved = next.clone();
    moved.sso = Some(sso_config("https://a2.okta.example"));
    moved.version += 1;
    s.replace_tenant(&next, &moved).await.unwrap();
    assert_eq!(s.find_tenant_by_issuer("https://a.okta.example").await.unwrap(), None);
    assert_eq!(s.find_tenant_by_issuer("https://a2.okta.example").await.unwrap().map(|t| t.id), Some(a.id.clone()));
}

pub async fn subject_links(f: Fixture) {
    let s = &f.store;
    let t = TenantId::generate();
    let sub = Subject { issuer: "https://a.okta.example".into(), sub: "00uA".into() };
    let mut a = user(&t, "a@example.com", None);
    a.subject = Some(sub.clone());
    s.create_user(&a).await.unwrap();
    assert_eq!(s.find_user_by_subject(&t, &sub).await.unwrap(), Some(a.clone()));
    assert_eq!(s.find_user_by_subject(&TenantId::generate(), &sub).await.unwrap(), None, "tenant-scoped");
    let mut dup = user(&t, "b@example.com", None);
    dup.subject = Some(sub.clone());
    assert!(matches!(s.create_user(&dup).await, Err(Error::Taken(Taken::User(UniqueAttribute::Subject)))));
    assert_eq!(s.find_user_by_user_name(&t, "b@example.com").await.unwrap(), None, "no partial write");
    // Linking an existing user by replace.
    let b = user(&t, "b@example.com", None);
    s.create_user(&b).await.unwrap();
    let mut linked = b.clone();
    linked.subject = Some(Subject { issuer: sub.issuer.clone(), sub: "00uB".into() });
    linked.version += 1;
    s.replace_user(&b, &linked).await.unwrap();
    assert_eq!(s.find_user_by_subject(&t, linked.subject.as_ref().unwrap()).await.unwrap(), Some(linked.clone()));
    let mut taken = linked.clone();
    taken.subject = Some(sub.clone());
    taken.version += 1;
    assert!(matches!(s.replace_user(&linked, &taken).await, Err(Error::Taken(Taken::User(UniqueAttribute::Subject)))));
    // A SCIM replace keeps the link; delete releases it.
    s.delete_user(&a).await.unwrap();
    assert_eq!(s.find_user_by_subject(&t, &sub).await.unwrap(), None);
    let mut c = user(&t, "c@example.com", None);
    c.subject = Some(sub.clone());
    s.create_user(&c).await.unwrap();
}

fn session(t: &TenantId, u: &UserId, sid: Option<&str>) -> Session {
    let n = now();
    Session {
        hash: hash_secret(random_secret().unwrap().expose()),
        tenant: t.clone(),
        user: *u,
        issuer: "https://a.okta.example".into(),
        subject: "00uA".into(),
        sid: sid.map(String::from),
        id_token: Some(Secret::new("header.payload.signature")),
        created: n,
        last_seen: n,
        expires: n.plus_secs(3600),
        confirmed: true,
        idle_secs: None,
    }
}

pub async fn sessions(f: Fixture) {
    let s = &f.store;
    let t = TenantId::generate();
    let alice = user(&t, "alice@example.com", None);
    let bob = user(&t, "bob@example.com", None);
    s.create_user(&alice).await.unwrap();
    s.create_user(&bob).await.unwrap();
    let a1 = session(&t, &alice.id, Some("sid-1"));
    let a2 = session(&t, &alice.id, Some("sid-2"));
    let a3 = session(&t, &alice.id, None);
    let b1 = session(&t, &bob.id, Some("sid-1"));
    for x in [&a1, &a2, &a3, &b1] {
        s.create_session(x).await.unwrap();
    }
    assert!(s.create_session(&a1).await.is_err(), "a session id is never reused");
    let (got, u) = s.session_with_user(&a1.hash).await.unwrap().unwrap();
    assert_eq!((got, u), (a1.clone(), Some(alice.clone())));
    assert_eq!(s.session_with_user(&hash_secret("nope")).await.unwrap(), None);

    // Activity only moves forward.
    let later = a1.last_seen.plus_secs(90);
    s.touch_session(&a1.hash, later).await.unwrap();
    s.touch_session(&a1.hash, a1.last_seen).await.unwrap();
    assert_eq!(s.session_with_user(&a1.hash).await.unwrap().unwrap().0.last_seen, later);

    // By provider session: sid-1 of this issuer is both Alice's a1 and Bob's b1.
    assert_eq!(s.delete_sid_sessions("https://a.okta.example", "sid-1").await.unwrap(), 2);
    assert_eq!(s.session_with_user(&a1.hash).await.unwrap(), None);
    assert_eq!(s.session_with_user(&b1.hash).await.unwrap(), None);
    assert_eq!(s.delete_sid_sessions("https://a.okta.example", "sid-1").await.unwrap(), 0, "idempotent");
    // By user: the rest of Alice's sessions; Bob unaffected.
    let b2 = session(&t, &bob.id, None);
    s.create_session(&b2).await.unwrap();
    assert_eq!(s.delete_user_sessions(&t, &alice.id).await.unwrap(), 2);
    assert_eq!(s.session_with_user(&a2.hash).await.unwrap(), None);
    assert_eq!(s.session_with_user(&a3.hash).await.unwrap(), None);
    assert!(s.session_with_user(&b2.hash).await.unwrap().is_some());
    // The sid index of a2 went with it.
    assert_eq!(s.delete_sid_sessions("https://a.okta.example", "sid-2").await.unwrap(), 0);
    // One at a time.
    assert!(s.delete_session(&b2.hash).await.unwrap());
    assert!(!s.delete_session(&b2.hash).await.unwrap());
    assert_eq!(s.delete_user_sessions(&t, &bob.id).await.unwrap(), 0);
    // Many sessions (more than one delete batch).
    for _ in 0..30 {
        s.create_session(&session(&t, &bob.id, Some("many"))).await.unwrap();
    }
    assert_eq!(s.delete_user_sessions(&t, &bob.id).await.unwrap(), 30);
    assert_eq!(s.delete_sid_sessions("https://a.okta.example", "many").await.unwrap(), 0);
}

pub async fn login_transactions(f: Fixture) {
    let s = f.store.clone();
    let n = now();
    let tx = LoginTransaction {
        purpose: Default::default(),
        tester: None,
        state_hash: hash_secret("state"),
        binding_hash: hash_secret("binding"),
        tenant: TenantId::generate(),
        issuer: Issuer::parse("https://a.okta.example", false).unwrap(),
        client_id: "butterfly-app".into(),
        redirect_uri: "https://id.example/sso/callback".into(),
        pkce_verifier: Secret::new("verifier"),
        nonce: Secret::new("nonce"),
        return_to: ReturnPath::parse("/x").unwrap(),
        created: n,
        expires: n.plus_secs(600),
    };
    s.put_login(&tx).await.unwrap();
    // Concurrent callbacks with the same state: exactly one gets the transaction.
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move { s.take_login(&hash_secret("state")).await.unwrap() }));
    }
    let mut got = Vec::new();
    for t in tasks {
        if let Some(x) = t.await.unwrap() {
            got.push(x);
        }
    }
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].tenant, tx.tenant);
    assert_eq!(got[0].pkce_verifier, tx.pkce_verifier);
    assert_eq!(got[0].return_to, tx.return_to);
    assert!(s.take_login(&hash_secret("state")).await.unwrap().is_none());
}

/// The last active super_admin cannot be demoted by two super_admins demoting each other at
/// the same instant: the guard is atomic with the write (ten rounds of the race).
pub async fn super_admin_guard(f: Fixture) {
    let s = f.store.clone();
    let t = TenantId::generate();
    let mut a = user(&t, "root-a@example.com", None);
    let mut b = user(&t, "root-b@example.com", None);
    a.role = Some(butterfly_core::role::Role::SuperAdmin);
    b.role = Some(butterfly_core::role::Role::SuperAdmin);
    s.create_user(&a).await.unwrap();
    s.create_user(&b).await.unwrap();
    let demoted = |u: &User| {
        let mut n = u.clone();
        n.role = Some(butterfly_core::role::Role::Admin);
        n.version += 1;
        n
    };
    for round in 0..10 {
        let (ca, cb) = (s.get_user(&t, &a.id).await.unwrap().unwrap(), s.get_user(&t, &b.id).await.unwrap().unwrap());
        assert!(ca.counts_as_super_admin() && cb.counts_as_super_admin(), "round {round} starts with two");
        let (s1, s2) = (s.clone(), s.clone());
        let (na, nb) = (demoted(&ca), demoted(&cb));
        let (ra, rb) = tokio::join!(
            tokio::spawn(async move { s1.replace_user_guarded(&ca, &na, None).await }),
            tokio::spawn(async move { s2.replace_user_guarded(&cb, &nb, None).await }),
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert!(ra.is_ok() != rb.is_ok(), "round {round}: exactly one demotion succeeds: {ra:?} {rb:?}");
        assert!(matches!(ra.as_ref().err().or(rb.as_ref().err()), Some(Error::Conflict(_))));
        let (ua, ub) = (s.get_user(&t, &a.id).await.unwrap().unwrap(), s.get_user(&t, &b.id).await.unwrap().unwrap());
        assert_eq!(u8::from(ua.counts_as_super_admin()) + u8::from(ub.counts_as_super_admin()), 1, "round {round}");
        // Promote the demoted one again (an unguarded write, as SCIM's).
        let down = if ua.counts_as_super_admin() { ub } else { ua };
        let mut up = down.clone();
        up.role = Some(butterfly_core::role::Role::SuperAdmin);
        up.version += 1;
        s.replace_user_audited(&down, &up, None).await.unwrap();
    }
    // Alone, the last one cannot be demoted by hand; deactivation by SCIM is not guarded.
    let cb = s.get_user(&t, &b.id).await.unwrap().unwrap();
    s.delete_user(&s.get_user(&t, &a.id).await.unwrap().unwrap()).await.unwrap();
    assert!(matches!(s.replace_user_guarded(&cb, &demoted(&cb), None).await, Err(Error::Conflict(_))));
    let mut off = cb.clone();
    off.active = false;
    off.version += 1;
    s.replace_user_audited(&cb, &off, None).await.unwrap();
}

pub async fn audit_trail(f: Fixture) {
    use butterfly_core::audit::{AuditAction, AuditEvent};
    let s = &f.store;
    let t = TenantId::generate();
    let other = TenantId::generate();
    let mut ids = Vec::new();
    for i in 0..7 {
        let e = AuditEvent::new(&t, now(), AuditAction::SignIn, "user:x").details(serde_json::json!({ "i": i }));
        ids.push(e.id.clone());
        s.record_audit(&e).await.unwrap();
    }
    s.record_audit(&AuditEvent::new(&other, now(), AuditAction::SignIn, "user:y")).await.unwrap();
    let mut expired = AuditEvent::new(&t, now(), AuditAction::SignOut, "user:x");
    expired.expires = Timestamp(now().millis() - 1);
    s.record_audit(&expired).await.unwrap();
    // Newest first, paged by the last id seen, expired and other tenants' events left out.
    let first = s.audit_page(&t, None, 3).await.unwrap();
    let got: Vec<&str> = first.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(got, ids.iter().rev().take(3).map(String::as_str).collect::<Vec<_>>());
    let second = s.audit_page(&t, Some(&first[2].id), 10).await.unwrap();
    assert_eq!(second.len(), 4);
    assert_eq!(second[3].id, ids[0]);
    assert!(second.iter().all(|e| e.tenant == t && e.action == AuditAction::SignIn));

    // An audited write that fails leaves no event; one that succeeds leaves exactly one.
    let u = user(&t, "a@example.com", None);
    s.create_user(&u).await.unwrap();
    let dup = user(&t, "A@example.com", None);
    let ev = AuditEvent::new(&t, now(), AuditAction::ScimUserCreate, "scim").target(dup.id);
    assert!(s.create_user_audited(&dup, Some(&ev)).await.is_err());
    let ok = user(&t, "b@example.com", None);
    let ev2 = AuditEvent::new(&t, now(), AuditAction::ScimUserCreate, "scim").target(ok.id);
    s.create_user_audited(&ok, Some(&ev2)).await.unwrap();
    let page = s.audit_page(&t, None, 100).await.unwrap();
    assert!(!page.iter().any(|e| e.id == ev.id), "a failed write recorded its audit event");
    assert_eq!(page.iter().filter(|e| e.id == ev2.id).count(), 1);
}

/// A tenant's owner setup link: stored by hash, used once (of concurrent uses exactly one
/// wins), never after its expiry, never with another hash or another tenant's id, and
/// replaced (the old one dead) by issuing another.
pub async fn setup_links(f: Fixture) {
    use butterfly_core::setup_link::SetupLinkRecord;
    let s = f.store.clone();
    let (t, other) = (TenantId::generate(), TenantId::generate());
    let n = now();
    let record = |tenant: &TenantId, secret: &str, expires: Timestamp| SetupLinkRecord {
        tenant: tenant.clone(),
        owner: UserName::parse("Owner@Example.com").unwrap(),
        hash: hash_secret(secret),
        created: n,
        expires,
        used: None,
    };
    assert_eq!(s.get_setup_link(&t).await.unwrap(), None);
    assert!(s.use_setup_link(&t, &hash_secret("first"), n).await.unwrap().is_none(), "no link yet");
    let first = record(&t, "first", n.plus_secs(3600));
    assert_eq!(s.put_setup_link(&first).await.unwrap(), None, "nothing replaced");
    assert_eq!(s.get_setup_link(&t).await.unwrap().as_ref(), Some(&first));
    // A wrong hash, or the right hash under another tenant, is nothing and changes nothing.
    assert!(s.use_setup_link(&t, &hash_secret("guess"), n).await.unwrap().is_none());
    assert!(s.use_setup_link(&other, &hash_secret("first"), n).await.unwrap().is_none());
    assert_eq!(s.get_setup_link(&t).await.unwrap().as_ref(), Some(&first), "still unused");
    // Re-issuing retires the old link at once.
    let second = record(&t, "second", n.plus_secs(3600));
    assert_eq!(s.put_setup_link(&second).await.unwrap().as_ref(), Some(&first), "the replaced one comes back");
    assert!(s.use_setup_link(&t, &hash_secret("first"), n).await.unwrap().is_none(), "the old link is dead");
    // Concurrent uses of one link: exactly one gets it, marked used from then on.
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let s = s.clone();
        let t = t.clone();
        tasks.push(tokio::spawn(async move { s.use_setup_link(&t, &hash_secret("second"), n).await.unwrap() }));
    }
    let mut got = Vec::new();
    for task in tasks {
        got.extend(task.await.unwrap());
    }
    assert_eq!(got, vec![second.clone()], "exactly one use wins, and sees the link as it was");
    let used = s.get_setup_link(&t).await.unwrap().unwrap();
    assert_eq!(used.used, Some(n));
    assert_eq!(used.owner.as_str(), "Owner@Example.com", "the owner stays known after the use");
    assert!(s.use_setup_link(&t, &hash_secret("second"), n).await.unwrap().is_none(), "no second use");
    // An expired link does not work, even unused.
    let old = record(&t, "old", n.plus_secs(60));
    assert_eq!(s.put_setup_link(&old).await.unwrap().map(|r| r.used), Some(Some(n)));
    assert!(s.use_setup_link(&t, &hash_secret("old"), n.plus_secs(60)).await.unwrap().is_none(), "expired");
    assert!(s.use_setup_link(&t, &hash_secret("old"), n.plus_secs(61)).await.unwrap().is_none());
    assert_eq!(s.get_setup_link(&t).await.unwrap().unwrap().used, None, "an expired use changes nothing");
    assert!(s.use_setup_link(&t, &hash_secret("old"), n.plus_secs(59)).await.unwrap().is_some(), "just in time");
    assert_eq!(s.get_setup_link(&other).await.unwrap(), None, "tenants are separate");
}

/// Declares one test per contract check for a store factory `async fn() -> Fixture`.
#[macro_export]
macro_rules! store_contract {
    ($make:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn tenants() {
            $crate::contract::tenants($make().await).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn tokens() {
            $crate::contract::tokens($make().await).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn super_admin_guard() {
            $crate::contract::super_admin_guard($make().await).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn users() {
            $crate::contract::users($make().await).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn token_checked_requests() {
            $crate::contract::token_checked_requests($make().await).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn versioned_replace_and_delete() {
            $crate::contract::versioned_replace_and_delete($make().await).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn key_ordered_pages() {
            $crate::contract::key_ordered_pages($make().await).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn create_race() {
            $crate::contract::create_race($make().await).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn mixed_concurrent_writes() {
            $crate::contract::mixed_concurrent_writes($make().await).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn version_race() {
            $crate::contract::version_race($make().await).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn tenant_settings() {
            $crate::contract::tenant_settings($make().await).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn subject_links() {
            $crate::contract::subject_links($make().await).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn sessions() {
            $crate::contract::sessions($make().await).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn login_transactions() {
            $crate::contract::login_transactions($make().await).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn audit_trail() {
            $crate::contract::audit_trail($make().await).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn setup_links() {
            $crate::contract::setup_links($make().await).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn expiring_keys() {
            $crate::contract::expiring_keys($make().await).await
        }
    };
}

//! A new customer's onboarding through the admin console, in a real browser (Debian's headless
//! Chromium driven by playwright-core, `infra/test-op/console.mjs`): the owner's setup link →
//! SSO settings against the test OpenID Provider → domain verification against the loopback DNS
//! server → a test sign-in → the SCIM token generated → an Okta-shaped SCIM create with role
//! `admin` → the team page shows it → a role change → the audit page lists all of it → Rotate
//! Token → the old token is refused. Every page is checked by axe-core in that browser (no
//! serious or critical violation) with the page's own CSP on, and screenshotted into
//! `test-artifacts/console/`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use butterfly_core::clock::SystemClock;
use butterfly_core::email::UserName;
use butterfly_core::ports::UserStore;
use butterfly_core::role::Role;
use butterfly_core::setup_link::SetupLinkService;
use butterfly_core::tenants::TenantService;
use butterfly_core::user::RoleSource;
use butterfly_tests::op::{client_spec, test_op_dir, TestOp};
use butterfly_tests::TestApp;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const DOMAIN: &str = "globex.test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_customer_sets_up_sso_scim_and_roles_in_the_console() {
    let app = TestApp::spawn().await;
    let op = TestOp::start(
        0,
        json!([{"prefix": "/globex", "kid": "globex-key", "clients": [client_spec("globex-app", "globex-secret", &app.origin)]}]),
    )
    .await;
    // A fresh organisation, as `butterfly tenant create --owner-email` makes it: no SSO, no token.
    let tenant =
        TenantService::new(app.store.clone(), Arc::new(SystemClock)).create_tenant("Globex", &[]).await.unwrap();
    let owner = UserName::parse(&format!("owner@{DOMAIN}")).unwrap();
    let issued = SetupLinkService::new(app.store.clone(), Arc::new(SystemClock), 3600)
        .issue(&tenant.id, Some(&owner))
        .await
        .unwrap();
    let setup_url = format!("{}/console/setup/{}", app.origin, issued.link.secret().expose());

    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-artifacts/console");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let config = json!({
        "origin": app.origin,
        "setupUrl": setup_url,
        "ownerEmail": owner.as_str(),
        "issuer": op.issuer("/globex"),
        "clientId": "globex-app",
        "clientSecret": "globex-secret",
        "domain": DOMAIN,
        "shots": shots,
    });
    let mut child = tokio::process::Command::new("node")
        .arg(test_op_dir().join("console.mjs"))
        .arg(config.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run node console.mjs");
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = child.stderr.take().unwrap();
    // The driver's requests (publish this TXT record) and, last, its report.
    let walk = async {
        let mut published = false;
        while let Some(line) = out.next_line().await.unwrap() {
            let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            if v["need"] == "txt" {
                assert_eq!(v["name"], format!("_butterfly-verification.{DOMAIN}"), "{v}");
                let value = v["value"].as_str().unwrap();
                assert!(value.starts_with("butterfly-domain-verification="), "{v}");
                app.dns.add_txt(v["name"].as_str().unwrap(), value).await;
                stdin.write_all(b"published\n").await.unwrap();
                stdin.flush().await.unwrap();
                published = true;
                continue;
            }
            return Some((v, published));
        }
        None
    };
    let finished = tokio::time::timeout(Duration::from_secs(180), walk).await.expect("the walk took over 180 s");
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait()).await.expect("node exits").unwrap();
    let mut err = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut err).await.unwrap();
    let (report, published) = finished.unwrap_or_else(|| panic!("the walk stopped without a report:\n{err}"));
    assert!(status.success(), "the walk failed:\n{err}\n{report}");
    assert!(published, "the TXT record was asked for");
    let steps = &report["steps"];

    // Every page: a screenshot, and no serious or critical accessibility violation.
    let pages = report["pages"].as_array().unwrap();
    let names: Vec<&str> = pages.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "setup-link",
            "overview",
            "sso-saved",
            "domain-verified",
            "test-sign-in",
            "scim",
            "scim-token",
            "team",
            "team-role-changed",
            "audit",
            "scim-rotated"
        ]
    );
    for p in pages {
        assert!(PathBuf::from(p["screenshot"].as_str().unwrap()).is_file(), "screenshot of {}", p["name"]);
        let grave: Vec<&Value> = p["violations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .collect();
        assert!(grave.is_empty(), "axe-core on {} ({}): {grave:?}", p["name"], p["url"]);
    }
    assert_eq!(report["cspViolations"], json!([]), "the pages' own scripts and styles run under their CSP");

    // What the customer saw at each step.
    assert_eq!(steps["overview"]["scimBaseUrl"], format!("{}/scim/v2", app.origin), "{steps}");
    assert_eq!(steps["overview"]["copyButtonsShown"], 6, "the copy script ran: {steps}");
    assert_eq!(steps["sso"]["saved"], true, "{steps}");
    assert_eq!(steps["sso"]["secretShown"], false, "the client secret is write-only");
    assert_eq!(steps["domain"]["verified"], true, "{steps}");
    assert_eq!(steps["testSignIn"]["passed"], true, "{steps}");
    assert_eq!(steps["scimToken"]["prefix"], "bfy_scim_");
    assert_eq!(steps["scimToken"]["shownAgain"], false, "the token is shown once");
    assert_eq!(steps["provisioned"]["lookup"], 200, "{steps}");
    assert_eq!(steps["provisioned"]["found"], 0, "{steps}");
    assert_eq!(steps["provisioned"]["create"], 201, "{steps}");
    assert_eq!(steps["team"]["listed"], true, "{steps}");
    assert_eq!(steps["team"]["sourceScim"], true, "{steps}");
    let last = steps["team"]["ownerLastSignIn"].as_str().unwrap();
    assert!(!last.is_empty() && last != "—", "the setup link's use is the owner's last sign-in: {steps}");
    assert_eq!(steps["team"]["roleBefore"], "admin", "Okta's role reached the team page: {steps}");
    assert_eq!(steps["team"]["roleAfter"], "auditor", "{steps}");
    assert!(steps["team"]["warning"].as_str().unwrap().contains("SCIM"), "SCIM manages this role: {steps}");
    let audit = steps["audit"]["text"].as_str().unwrap();
    for kind in [
        "Setup link used",
        "SSO settings saved",
        "Domain verified",
        "Test sign-in",
        "SCIM token",
        "Member provisioned (SCIM)",
        "Role changed",
    ] {
        assert!(audit.contains(kind), "the audit page lists {kind:?}: {audit}");
    }
    assert!(audit.contains(owner.as_str()), "actors by name, not user:<id>: {audit}");
    assert!(!audit.contains("user:"), "{audit}");
    assert_eq!(steps["rotation"]["different"], true);
    assert_eq!(steps["rotation"]["old"], 401, "the old token is refused at once: {steps}");
    assert_eq!(steps["rotation"]["new"], 200, "{steps}");

    // And in the store: the owner is a manual super_admin, the member an auditor set by hand.
    let owner_user = app.store.find_user_by_user_name(&tenant.id, owner.as_str()).await.unwrap().unwrap();
    assert_eq!((owner_user.role, owner_user.role_source), (Some(Role::SuperAdmin), Some(RoleSource::Manual)));
    let ada = app.store.find_user_by_user_name(&tenant.id, &format!("ada.lovelace@{DOMAIN}")).await.unwrap().unwrap();
    assert_eq!(ada.role, Some(Role::Auditor));
}

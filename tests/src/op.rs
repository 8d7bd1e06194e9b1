//! The tenant's "Okta" for the SSO suites: oidc-provider 8.8.1 (infra/test-op/op.mjs) started
//! as a child process on loopback, and a cookie-keeping HTTP "browser" that signs in through
//! its login form.

use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub fn test_op_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/test-op")
}

/// A client registered at a test issuer.
pub fn client_spec(client_id: &str, secret: &str, app_origin: &str) -> Value {
    json!({
        "client_id": client_id,
        "client_secret": secret,
        "redirect_uris": [format!("{app_origin}/sso/callback")],
        "post_logout_redirect_uris": [format!("{app_origin}/login?signed_out=1")],
    })
}

/// A client that also registered a back-channel logout URI (the provider then puts `sid` in
/// ID tokens and can POST logout tokens to us).
pub fn client_spec_with_logout(client_id: &str, secret: &str, app_origin: &str) -> Value {
    let mut c = client_spec(client_id, secret, app_origin);
    c["backchannel_logout_uri"] = json!(format!("{app_origin}/sso/backchannel-logout"));
    c
}

/// A running test provider.
pub struct TestOp {
    child: Child,
    pub port: u16,
    pub issuers: Vec<String>,
    config: Value,
}

impl TestOp {
    /// Starts the provider with `issuers` (`[{"prefix","kid","clients":[...]}]`) on `port`
    /// (0 = any free port) and waits until it listens.
    pub async fn start(port: u16, issuers: Value) -> TestOp {
        let dir = test_op_dir();
        assert!(
            dir.join("node_modules/oidc-provider").exists(),
            "the test provider is not installed: run `bash tests/run` once, or `npm ci --prefix infra/test-op`"
        );
        let config = json!({ "issuers": issuers });
        let mut child = Command::new("node")
            .arg(dir.join("op.mjs"))
            .env("OP_PORT", port.to_string())
            .env("OP_CONFIG", config.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start node (is Node.js installed?)");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.strip_prefix("READY ") {
                    return serde_json::from_str::<Value>(rest).ok();
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .expect("the test provider did not start within 30 s");
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let port = ready["port"].as_u64().expect("port") as u16;
        let issuers =
            ready["issuers"].as_array().expect("issuers").iter().filter_map(|v| v.as_str().map(String::from)).collect();
        TestOp { child, port, issuers, config }
    }

    /// The issuer URL for a prefix (`/t1` → `http://127.0.0.1:PORT/t1`).
    pub fn issuer(&self, prefix: &str) -> String {
        format!("http://127.0.0.1:{}{prefix}", self.port)
    }

    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The next token response of `prefix` carries an ID token altered by `mutation`.
    pub async fn mutate_next_id_token(&self, prefix: &str, mutation: &str) {
        let r = Client::new()
            .post(format!("{}/admin/mutate-next-id-token", self.origin()))
            .query(&[("prefix", prefix), ("mutation", mutation)])
            .send()
            .await
            .expect("op admin");
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }

    /// A JWT signed with the issuer's key (or, with `stranger`, a key no key set publishes).
    pub async fn sign(&self, prefix: &str, header: Value, payload: Value, stranger: bool) -> String {
        let mut q = vec![("prefix", prefix)];
        if stranger {
            q.push(("key", "other"));
        }
        let r = Client::new()
            .post(format!("{}/admin/sign", self.origin()))
            .query(&q)
            .json(&json!({"header": header, "payload": payload}))
            .send()
            .await
            .expect("op admin");
        assert_eq!(r.status(), StatusCode::OK);
        r.text().await.expect("jwt")
    }

    /// The account signing in as `login` at `prefix` gets `claims` instead of the defaults (a
    /// claim set to `null` is left out; `sub` defaults to the login).
    pub async fn set_account(&self, prefix: &str, login: &str, claims: Value) {
        let r = Client::new()
            .post(format!("{}/admin/account", self.origin()))
            .query(&[("prefix", prefix), ("id", login)])
            .json(&claims)
            .send()
            .await
            .expect("op admin");
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }

    /// Makes the provider send a real OIDC Back-Channel Logout POST to the client.
    pub async fn backchannel_logout(&self, prefix: &str, client_id: &str, sub: &str, sid: Option<&str>) {
        let mut q = vec![("prefix", prefix), ("client_id", client_id), ("sub", sub)];
        if let Some(s) = sid {
            q.push(("sid", s));
        }
        let r = Client::new()
            .post(format!("{}/admin/backchannel-logout", self.origin()))
            .query(&q)
            .send()
            .await
            .expect("op admin");
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{}", r.text().await.unwrap_or_default());
    }

    /// Stops the provider and starts it again on the same port with the same clients, each
    /// issuer with a new signing key (`kid` suffixed with `suffix`): a key rotation.
    pub async fn rotate_keys(mut self, suffix: &str) -> TestOp {
        let mut issuers = self.config["issuers"].clone();
        for i in issuers.as_array_mut().expect("issuers") {
            let kid = format!("{}{suffix}", i["kid"].as_str().unwrap_or("k"));
            i["kid"] = json!(kid);
        }
        let port = self.port;
        let _ = self.child.kill().await;
        let _ = self.child.wait().await;
        TestOp::start(port, issuers).await
    }
}

/// A browser stand-in: keeps cookies, follows no redirect by itself.
pub struct Browser {
    pub client: Client,
    pub jar: Arc<reqwest::cookie::Jar>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

pub fn location(r: &Response) -> Option<String> {
    r.headers().get(LOCATION).and_then(|v| v.to_str().ok()).map(String::from)
}

/// The `Set-Cookie` headers of a response.
pub fn set_cookies(h: &HeaderMap) -> Vec<String> {
    h.get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok().map(String::from)).collect()
}

fn absolute(base: &str, loc: &str) -> String {
    if loc.starts_with("http://") || loc.starts_with("https://") {
        return loc.to_string();
    }
    // base is http://host:port/...; loc is absolute-path
    let origin: String = base.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
    format!("{origin}{loc}")
}

/// The `action` of the first form in a page.
fn form_action(html: &str) -> Option<String> {
    let i = html.find("<form")?;
    let rest = &html[i..];
    let a = rest.find("action=\"")? + 8;
    let end = rest[a..].find('"')?;
    Some(rest[a..a + end].replace("&amp;", "&"))
}

impl Browser {
    pub fn new() -> Self {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let client = Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client");
        Browser { client, jar }
    }

    pub async fn get(&self, url: &str) -> Response {
        self.client.get(url).send().await.expect("GET")
    }

    pub async fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Response {
        self.client.post(url).form(form).send().await.expect("POST")
    }

    /// From the provider's authorization URL, signs in at the provider's login form as
    /// `login` (if it asks) and returns the URL the provider sends the browser back to.
    pub async fn sign_in_at_provider(&self, authorize_url: &str, login: &str, app_origin: &str) -> String {
        let mut url = authorize_url.to_string();
        for _ in 0..12 {
            let r = self.get(&url).await;
            if let Some(loc) = location(&r) {
                let next = absolute(&url, &loc);
                if next.starts_with(app_origin) {
                    return next;
                }
                url = next;
                continue;
            }
            let status = r.status();
            let page = r.text().await.unwrap_or_default();
            let action = form_action(&page).unwrap_or_else(|| panic!("no form at {url} ({status}): {page}"));
            let target = absolute(&url, &action);
            let fields: &[(&str, &str)] = if page.contains("name=\"login\"") {
                &[("prompt", "login"), ("login", login), ("password", "any")]
            } else {
                &[("prompt", "consent")]
            };
            let r = self.post_form(&target, fields).await;
            url = absolute(&target, &location(&r).unwrap_or_else(|| panic!("no redirect after the form at {target}")));
            if url.starts_with(app_origin) {
                return url;
            }
        }
        panic!("the provider did not send the browser back within 12 steps");
    }

    /// Signs out as the signed-in page's button does: the session's CSRF token (from `/me`)
    /// with the form, and `provider=1` when `provider`.
    pub async fn sign_out(&self, app_origin: &str, provider: bool) -> Response {
        let me: Value = self.get(&format!("{app_origin}/me")).await.json().await.unwrap_or(Value::Null);
        let csrf = me["csrfToken"].as_str().unwrap_or("").to_string();
        let mut form = vec![("csrf", csrf.as_str())];
        if provider {
            form.push(("provider", "1"));
        }
        self.post_form(&format!("{app_origin}/logout"), &form).await
    }

    /// The whole SP-initiated sign-in: the login form, the provider, the callback. Returns the
    /// callback's response (a redirect with the session cookie when it worked).
    pub async fn sign_in(&self, app_origin: &str, email: &str) -> Response {
        let start = self.post_form(&format!("{app_origin}/login"), &[("email", email)]).await;
        assert_eq!(start.status(), StatusCode::SEE_OTHER, "login form did not redirect");
        let authorize = location(&start).expect("Location");
        let back = self.sign_in_at_provider(&authorize, email, app_origin).await;
        self.get(&back).await
    }
}

//! The `butterfly` binary as an operator uses it: commands, JSON output, exit codes, and the
//! local stack process (start, serve, stop, start again).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_butterfly");

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN).arg("--data-dir").arg(dir).args(args).output().expect("run butterfly")
}

fn json_out(o: &Output) -> Value {
    assert!(o.status.success(), "exit {:?}: {}", o.status, String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "--json prints exactly one line: {text}");
    serde_json::from_str(lines[0]).expect("json")
}

/// The DynamoDB Local and moto endpoints `bash tests/run` starts.
fn emulators() -> (String, String) {
    match (std::env::var("BUTTERFLY_DYNAMODB_ENDPOINT"), std::env::var("BUTTERFLY_SECRETSMANAGER_ENDPOINT")) {
        (Ok(ddb), Ok(sm)) => (ddb, sm),
        _ => panic!("run `bash tests/run`, which starts DynamoDB Local and moto"),
    }
}

/// `butterfly --store dynamodb --table TABLE GLOBAL_ARGS…` against the emulators (add the command's own args).
fn on_dynamodb(table: &str, global_args: &[&str]) -> Command {
    let (ddb, sm) = emulators();
    let mut c = Command::new(BIN);
    c.args(["--store", "dynamodb", "--table", table])
        .args(global_args)
        .env("AWS_ENDPOINT_URL_DYNAMODB", ddb)
        .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", sm)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test");
    c
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A minimal HTTP/1.1 GET with a bearer token; returns (status, body).
fn http_get(port: u16, path: &str, token: &str) -> (u16, String) {
    http_send(port, "GET", path, &[("Authorization", &format!("Bearer {token}"))], "")
}

struct Server {
    child: Child,
    port: u16,
    stdout: Vec<String>,
}

fn serve(dir: &Path, extra: &[&str]) -> Server {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .args(["serve", "--addr", &addr])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut stdout = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "server did not start: {stdout:?}");
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            panic!("server exited early: {stdout:?}");
        }
        let done = line.contains("listening on");
        stdout.push(line.trim_end().to_string());
        if done {
            break;
        }
    }
    Server { child, port, stdout }
}

impl Server {
    fn stop(mut self) {
        let ok = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap().success();
        assert!(ok);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "graceful shutdown exits 0: {status:?}");
                return;
            }
            assert!(Instant::now() < deadline, "server did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn tenant_and_token_commands() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let t = json_out(&run(d, &["tenant", "create", "--name", "Acme Corp", "--domains", "Acme.com, acme.io", "--json"]));
    let tenant = t["tenant_id"].as_str().unwrap().to_string();
    assert_eq!(t["domains"], serde_json::json!(["acme.com", "acme.io"]));

    // Clear errors, non-zero exit.
    for (args, needle) in [
        (
            vec!["tenant", "create", "--name", "Other", "--domains", "acme.com"],
            "already verified by another Butterfly organisation",
        ),
        (vec!["tenant", "create", "--name", "Gmail users", "--domains", "gmail.com"], "public mailbox"),
        (vec!["tenant", "create", "--name", "Bad", "--domains", "not a domain"], "not valid"),
        (vec!["tenant", "create", "--name", "   "], "1 to 200"),
        (vec!["tenant", "create", "--name", "ACME corp"], "exists already"),
        (vec!["scim-token", "show", "--tenant", "00000000-0000-4000-8000-000000000000"], "does not exist"),
        (vec!["scim-token", "rotate", "--tenant", "00000000-0000-4000-8000-000000000000"], "does not exist"),
        (vec!["scim-token", "issue", "--tenant", "nope"], "not a tenant id"),
        (vec!["scim-token", "issue", "--tenant", "00000000-0000-4000-8000-000000000000"], "does not exist"),
    ] {
        let o = run(d, &args);
        assert!(!o.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }

    let issued = json_out(&run(d, &["scim-token", "issue", "--tenant", &tenant, "--json"]));
    let token = issued["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("bfy_scim_"));
    assert!(token.starts_with(issued["display_prefix"].as_str().unwrap()));
    let o = run(d, &["scim-token", "issue", "--tenant", &tenant]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("scim-token rotate"));

    let meta = json_out(&run(d, &["scim-token", "show", "--tenant", &tenant, "--json"]));
    assert!(meta.get("token").is_none(), "show never prints the token: {meta}");
    assert_eq!(meta["last_used"], Value::Null);

    let list = json_out(&run(d, &["tenant", "list", "--json"]));
    assert_eq!(list["tenants"][0]["tenant_id"], tenant.as_str());

    // Serve, use the token, stop; rotate; the old token is dead, the new one works.
    let s = serve(d, &["--no-demo"]);
    let (status, body) = http_get(s.port, "/scim/v2/Users", &token);
    assert_eq!(status, 200, "{body}");
    // While the stack runs, the embedded store is locked: a clear message, not a crash.
    let o = run(d, &["tenant", "list"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("in use"), "{}", String::from_utf8_lossy(&o.stderr));
    s.stop();

    let meta = json_out(&run(d, &["scim-token", "show", "--tenant", &tenant, "--json"]));
    assert!(meta["last_used"].is_string(), "last use recorded: {meta}");
    // The default rotation overlaps (as the admin API's): the old token works until the new
    // one's first use, then stops.
    let o = run(d, &["scim-token", "rotate", "--tenant", &tenant]);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success() && text.contains("keeps working until this one is first used"), "{text}");
    let overlapping = text.lines().find(|l| l.starts_with("bfy_scim_")).unwrap().to_string();
    let s = serve(d, &["--no-demo"]);
    assert_eq!(http_get(s.port, "/scim/v2/Users", &token).0, 200, "the old token overlaps");
    assert_eq!(http_get(s.port, "/scim/v2/Users", &overlapping).0, 200);
    assert_eq!(http_get(s.port, "/scim/v2/Users", &token).0, 401, "retired at the new token's first use");
    s.stop();
    // --immediate ends every other token at once, and says how many.
    let o = run(d, &["scim-token", "rotate", "--tenant", &tenant, "--immediate"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("The previous token no longer works."));
    let rotated = json_out(&run(d, &["scim-token", "rotate", "--tenant", &tenant, "--immediate", "--json"]));
    let new_token = rotated["token"].as_str().unwrap().to_string();
    assert_ne!(new_token, token);
    let s = serve(d, &["--no-demo"]);
    assert_eq!(http_get(s.port, "/scim/v2/Users", &token).0, 401);
    assert_eq!(http_get(s.port, "/scim/v2/Users", &overlapping).0, 401);
    assert_eq!(http_get(s.port, "/scim/v2/Users", &new_token).0, 200);
    s.stop();

    // The token never reaches the store in clear text.
    let mut raw = Vec::new();
    std::fs::File::open(d.join("butterfly.redb")).unwrap().read_to_end(&mut raw).unwrap();
    for t in [&token, &overlapping, &new_token] {
        assert!(!raw.windows(t.len()).any(|w| w == t.as_bytes()), "token found in the store file");
    }
}

#[test]
fn first_start_creates_a_demo_tenant_once_and_data_survives_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = serve(d, &[]);
    let text = s.stdout.join("\n");
    let token = s
        .stdout
        .iter()
        .find_map(|l| l.trim().strip_prefix("SCIM token:").map(|t| t.trim().to_string()))
        .unwrap_or_else(|| panic!("no token printed: {text}"));
    assert!(text.contains(&format!("http://127.0.0.1:{}/scim/v2", s.port)), "{text}");
    let body = r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"demo.user@example.com","name":{"givenName":"Demo","familyName":"User"}}"#;
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    write!(
        c,
        "POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/scim+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    c.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 201"), "{resp}");
    s.stop();

    let s = serve(d, &[]);
    assert!(!s.stdout.join("\n").contains("SCIM token:"), "the token is shown only once");
    let (status, body) =
        http_get(s.port, "/scim/v2/Users?filter=userName%20eq%20%22DEMO.USER%40example.com%22", &token);
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["totalResults"], 1, "{v}");
    assert_eq!(http_get(s.port, "/healthz", "").0, 200);
    s.stop();
}

/// The operator commands against a DynamoDB table (DynamoDB Local, started by `tests/run`).
#[test]
fn operator_commands_on_dynamodb() {
    let table = format!("butterfly-cli-{}", std::process::id());
    let dyn_run = |args: &[&str]| on_dynamodb(&table, &[]).args(args).output().expect("run butterfly");
    let o = dyn_run(&["table", "create"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = json_out(&dyn_run(&["tenant", "create", "--name", "Dyn Corp", "--domains", "dyn.example", "--json"]));
    let tenant = t["tenant_id"].as_str().unwrap().to_string();
    let o = dyn_run(&["tenant", "create", "--name", "Dup", "--domains", "DYN.example"]);
    assert!(
        !o.status.success()
            && String::from_utf8_lossy(&o.stderr).contains("already verified by another Butterfly organisation")
    );

    let issued = json_out(&dyn_run(&["scim-token", "issue", "--tenant", &tenant, "--json"]));
    let token = issued["token"].as_str().unwrap().to_string();
    let o = dyn_run(&["scim-token", "issue", "--tenant", &tenant]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("scim-token rotate"));
    let meta = json_out(&dyn_run(&["scim-token", "show", "--tenant", &tenant, "--json"]));
    assert!(meta.get("token").is_none());
    assert!(token.starts_with(meta["display_prefix"].as_str().unwrap()));
    let rotated = json_out(&dyn_run(&["scim-token", "rotate", "--tenant", &tenant, "--json"]));
    assert_ne!(rotated["token"], issued["token"]);
    let meta = json_out(&dyn_run(&["scim-token", "show", "--tenant", &tenant, "--json"]));
    assert!(rotated["token"].as_str().unwrap().starts_with(meta["display_prefix"].as_str().unwrap()));
    assert_eq!(meta["tokens"].as_array().unwrap().len(), 2, "the overlapped token is listed too: {meta}");
    let list = json_out(&dyn_run(&["tenant", "list", "--json"]));
    assert!(list["tenants"].as_array().unwrap().iter().any(|t| t["tenant_id"] == tenant.as_str()));

    // Clear errors for misuse.
    let o = Command::new(BIN).args(["--store", "dynamodb", "tenant", "list"]).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--table"));
    let o = dyn_run(&["serve"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--cursor-key-secret-id"));
}

/// One HTTP/1.1 request with a body; returns (status, body).
fn http_send(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, out.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
}

/// `serve --store dynamodb`: the same routers over DynamoDB Local and Secrets Manager on moto
/// (what the DynamoDB-backed benchmarks run), cursor key read from Secrets Manager like the Lambdas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_stack_on_dynamodb() {
    let (_, sm) = emulators();
    let table = format!("butterfly-serve-{}", std::process::id());
    let prefix = format!("butterfly/servetest-{}", std::process::id());
    let secret_id = format!("{prefix}/cursor-key");
    let cmd = |args: &[&str]| {
        let mut c = on_dynamodb(&table, &["--secrets-prefix", &prefix]);
        c.args(args);
        c
    };
    assert!(cmd(&["table", "create"]).output().unwrap().status.success());
    let t = json_out(&cmd(&["tenant", "create", "--name", "Served", "--json"]).output().unwrap());
    let tenant = t["tenant_id"].as_str().unwrap().to_string();
    let token = json_out(&cmd(&["scim-token", "issue", "--tenant", &tenant, "--json"]).output().unwrap())["token"]
        .as_str()
        .unwrap()
        .to_string();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");

    // Without the cursor-key secret the server refuses to start, naming it.
    let o = cmd(&["serve", "--addr", &addr, "--cursor-key-secret-id", &secret_id]).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains(&secret_id), "{}", String::from_utf8_lossy(&o.stderr));

    let secrets = aws_sdk_secretsmanager::Client::new(&butterfly_tests::aws::local_config(&sm).await);
    secrets.create_secret().name(&secret_id).secret_string("serve-test-cursor-key").send().await.unwrap();

    let mut child = cmd(&["serve", "--addr", &addr, "--cursor-key-secret-id", &secret_id])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut banner = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !banner.contains("listening on") {
        assert!(Instant::now() < deadline, "server did not start: {banner}");
        assert!(reader.read_line(&mut banner).unwrap() > 0, "server exited early: {banner}");
    }
    assert!(banner.contains(&format!("DynamoDB table {table}")), "{banner}");
    assert!(!banner.contains("demo tenant"), "no demo tenant in a DynamoDB table: {banner}");
    let server = Server { child, port, stdout: vec![] };

    let auth = format!("Bearer {token}");
    let h = [("Authorization", auth.as_str()), ("Content-Type", "application/scim+json")];
    for n in ["ddb.one@example.com", "ddb.two@example.com"] {
        let user =
            format!(r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"{n}","active":true}}"#);
        let (status, out) = http_send(port, "POST", "/scim/v2/Users", &h, &user);
        assert_eq!(status, 201, "{out}");
    }
    let (status, out) =
        http_send(port, "GET", "/scim/v2/Users?filter=userName%20eq%20%22DDB.one@example.com%22", &h, "");
    assert_eq!(status, 200, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["totalResults"], 1, "{v}");
    // Cursor paging, signed with the key from Secrets Manager.
    let (_, out) = http_send(port, "GET", "/scim/v2/Users?count=1&cursor=", &h, "");
    let first: Value = serde_json::from_str(&out).unwrap();
    let next = first["nextCursor"].as_str().expect("a next cursor").to_string();
    let (status, out) = http_send(port, "GET", &format!("/scim/v2/Users?count=1&cursor={next}"), &h, "");
    assert_eq!(status, 200, "{out}");
    let second: Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&Value> = [&first, &second].iter().map(|p| &p["Resources"][0]["userName"]).collect();
    assert_eq!(names, [&Value::from("ddb.one@example.com"), &Value::from("ddb.two@example.com")]);
    assert!(second.get("nextCursor").is_none(), "{second}");
    let (status, _) = http_send(port, "GET", "/scim/v2/Users", &[("Authorization", "Bearer wrong")], "");
    assert_eq!(status, 401);
    server.stop();
}

fn run_with_stdin(cmd: &mut Command, stdin: &str) -> Output {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// `butterfly sso set|show` on the embedded store and on DynamoDB (+ Secrets Manager on moto),
/// validating the issuer against a real provider; the secret is read from stdin only and
/// never printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sso_settings_commands_on_both_stores() {
    use butterfly_tests::op::{client_spec, TestOp};
    let op = TestOp::start(
        0,
        serde_json::json!([{"prefix": "/oauth2/default", "kid": "cli", "clients": [client_spec("cli", "x", "http://127.0.0.1:9")]}]),
    )
    .await;
    let issuer = op.issuer("/oauth2/default");
    let secret = "cli-secret-value-1234";

    // Embedded store.
    let dir = tempfile::tempdir().unwrap();
    let t = json_out(&run(dir.path(), &["tenant", "create", "--name", "Cli Co", "--json"]));
    let tenant = t["tenant_id"].as_str().unwrap().to_string();
    let base = |args: &[&str]| {
        let mut c = Command::new(BIN);
        c.arg("--data-dir").arg(dir.path()).args(args);
        c
    };
    let o =
        base(&["sso", "set", "--tenant", &tenant, "--issuer", &issuer, "--client-id", "cli", "--domains", "cli.test"])
            .output()
            .unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("client secret is required"));
    let o = run_with_stdin(
        &mut base(&[
            "sso",
            "set",
            "--tenant",
            &tenant,
            "--issuer",
            &issuer,
            "--client-id",
            "cli",
            "--client-secret-stdin",
            "--domains",
            "CLI.test, cli2.test",
            "--json",
        ]),
        &format!("{secret}\n"),
    );
    let v = json_out(&o);
    assert_eq!(v["issuer"], issuer.as_str());
    assert_eq!(v["client_secret_set"], true);
    assert_eq!(v["enabled"], true);
    assert_eq!(v["domains"], serde_json::json!(["cli.test", "cli2.test"]));
    let shown = base(&["sso", "show", "--tenant", &tenant]).output().unwrap();
    let all = format!("{}{}{}", String::from_utf8_lossy(&o.stderr), String::from_utf8_lossy(&shown.stdout), v);
    assert!(!all.contains(secret), "the secret was printed");
    assert!(String::from_utf8_lossy(&shown.stdout).contains("set (write-only)"));
    let dead = format!("http://127.0.0.1:{}/nothing", free_port());
    let o = base(&["sso", "set", "--tenant", &tenant, "--issuer", &dead, "--client-id", "cli"]).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("failed discovery"));

    // DynamoDB and Secrets Manager.
    let (_, sm) = emulators();
    let table = format!("butterfly-cli-sso-{}", std::process::id());
    let dyn_cmd = |args: &[&str]| {
        let mut c = on_dynamodb(&table, &["--secrets-prefix", "butterfly/clitest"]);
        c.args(args);
        c
    };
    assert!(dyn_cmd(&["table", "create"]).output().unwrap().status.success());
    let t = json_out(&dyn_cmd(&["tenant", "create", "--name", "Dyn SSO", "--json"]).output().unwrap());
    let tenant = t["tenant_id"].as_str().unwrap().to_string();
    // Loopback http issuers are refused against a deployment unless asked for.
    let o = run_with_stdin(
        &mut dyn_cmd(&[
            "sso",
            "set",
            "--tenant",
            &tenant,
            "--issuer",
            &issuer,
            "--client-id",
            "cli",
            "--client-secret-stdin",
            "--domains",
            "dyn-sso.test",
        ]),
        "x\n",
    );
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("https"));
    let o = run_with_stdin(
        &mut dyn_cmd(&[
            "--allow-loopback-issuer",
            "true",
            "sso",
            "set",
            "--tenant",
            &tenant,
            "--issuer",
            &issuer,
            "--client-id",
            "cli",
            "--client-secret-stdin",
            "--domains",
            "dyn-sso.test",
            "--json",
        ]),
        &format!("{secret}\n"),
    );
    let v = json_out(&o);
    assert_eq!(v["client_secret_set"], true);
    let v = json_out(&dyn_cmd(&["sso", "show", "--tenant", &tenant, "--json"]).output().unwrap());
    assert_eq!(v["domains"], serde_json::json!(["dyn-sso.test"]));
    assert!(!v.to_string().contains(secret));
    // The secret is in Secrets Manager under the prefix, not in the table.
    let cfg = butterfly_tests::aws::local_config(&sm).await;
    let got = aws_sdk_secretsmanager::Client::new(&cfg)
        .get_secret_value()
        .secret_id(format!("butterfly/clitest/tenants/{tenant}/oidc-client-secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(got.secret_string(), Some(secret));
}

/// A client sending a byte a second held a connection of the local stack open forever (75 s
/// and counting): a header not complete within the header timeout, or an idle keep-alive
/// connection, is closed; so is a request whose body trickles in.
#[test]
fn slow_clients_are_disconnected() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &["--no-demo"]);
    let closed_within = |mut s: std::net::TcpStream, drip: &[u8], limit: Duration| -> Duration {
        let started = Instant::now();
        s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let mut buf = [0u8; 4096];
        for b in drip.iter().cycle() {
            assert!(started.elapsed() < limit, "still open after {:?}", started.elapsed());
            if s.write_all(&[*b]).is_err() {
                return started.elapsed();
            }
            match s.read(&mut buf) {
                Ok(0) => return started.elapsed(),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return started.elapsed(),
            }
            std::thread::sleep(Duration::from_millis(800));
        }
        unreachable!()
    };
    let connect = || std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    // A header sent a byte a second.
    let t = closed_within(
        connect(),
        b"GET /healthz HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        Duration::from_secs(25),
    );
    assert!(t <= Duration::from_secs(14), "header: closed after {t:?}");
    // A body sent a byte a second.
    let mut s = connect();
    s.write_all(b"POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\nContent-Type: application/scim+json\r\nContent-Length: 500\r\n\r\n")
        .unwrap();
    let t = closed_within(s, b"{", Duration::from_secs(30));
    assert!(t <= Duration::from_secs(19), "body: closed after {t:?}");
    // An idle keep-alive connection after a complete request.
    let mut s = connect();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let started = Instant::now();
    let mut all = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) => panic!("idle connection still open after {:?}: {e}", started.elapsed()),
        }
    }
    assert!(String::from_utf8_lossy(&all).starts_with("HTTP/1.1 200"));
    assert!(started.elapsed() <= Duration::from_secs(14), "idle: closed after {:?}", started.elapsed());
    server.stop();
}

/// The operator names the stack once: `--stack` reads the table, the secrets prefix and the
/// server secret from its Outputs (CloudFormation on moto, the table on DynamoDB Local).
#[tokio::test]
async fn operator_commands_by_stack_name() {
    let (ddb, sm) = emulators();
    let table = format!("butterfly-stack-{}", std::process::id());
    let stack = format!("butterfly-test-{}", std::process::id());
    let cfg = butterfly_tests::aws::local_config(&sm).await;
    let cf = aws_sdk_cloudformation::Client::new(&cfg);
    let template = serde_json::json!({
        "Resources": {"Alarms": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {
            "TableName": {"Value": table},
            "SecretsPrefix": {"Value": "butterfly/stacktest"},
            "CursorKeySecretArn": {"Value": "butterfly/stacktest/server-key"},
        }
    });
    cf.create_stack().stack_name(&stack).template_body(template.to_string()).send().await.unwrap();
    let by_stack = |args: &[&str]| {
        Command::new(BIN)
            .args(["--stack", &stack])
            .args(args)
            .env("AWS_ENDPOINT_URL_DYNAMODB", &ddb)
            .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", &sm)
            .env("AWS_ENDPOINT_URL_CLOUDFORMATION", &sm)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .output()
            .unwrap()
    };
    let o = on_dynamodb(&table, &[]).args(["table", "create"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = json_out(&by_stack(&["tenant", "create", "--name", "Stack Co", "--json"]));
    let tenant = t["tenant_id"].as_str().unwrap().to_string();
    // The same table, seen through --table.
    let list = json_out(&on_dynamodb(&table, &[]).args(["tenant", "list", "--json"]).output().unwrap());
    assert!(list["tenants"].as_array().unwrap().iter().any(|x| x["tenant_id"] == tenant.as_str()));
    // A flag that contradicts the stack is refused; an unknown stack is named.
    let o = by_stack(&["--table", "another-table", "tenant", "list"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("differs from the stack's output"));
    let o = Command::new(BIN)
        .args(["--stack", "no-such-stack", "tenant", "list"])
        .env("AWS_ENDPOINT_URL_CLOUDFORMATION", &sm)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success() && err.contains("no-such-stack"), "{err}");
    // Serving the stack with another server secret than its output is refused (the functions
    // would not accept the cursors and CSRF tokens this server signs).
    let o = by_stack(&["serve", "--addr", "127.0.0.1:9", "--cursor-key-secret-id", "butterfly/other/server-key"]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success() && err.contains("differs from the stack's output CursorKeySecretArn"), "{err}");
    // `--store embedded` with the stack is a contradiction, not a command run on local data.
    let o = by_stack(&["--store", "embedded", "tenant", "list"]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success() && err.contains("--stack") && err.contains("--store embedded"), "{err}");
}

/// Missing AWS credentials are one clear sentence, not an SDK error dump; and without --stack
/// the secrets prefix has no silent default.
#[test]
fn missing_credentials_and_prefix_are_named() {
    let home = tempfile::tempdir().unwrap();
    let o = Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args(["--store", "dynamodb", "--table", "t", "tenant", "list"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success());
    assert!(err.contains("no usable AWS credentials") && err.lines().count() == 1, "{err}");
    assert!(!err.contains("DispatchFailure") && !err.contains("FailedToLoadToken"), "{err}");
    // `--table` alone means DynamoDB (it used to run on the local embedded store, silently).
    let data = tempfile::tempdir().unwrap();
    let without_store = |args: &[&str]| {
        Command::new(BIN)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", home.path())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .arg("--data-dir")
            .arg(data.path())
            .args(args)
            .output()
            .unwrap()
    };
    let o = without_store(&["--table", "t", "tenant", "list"]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success() && err.contains("no usable AWS credentials"), "{err}");
    let o = without_store(&["--store", "embedded", "--table", "t", "tenant", "list"]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success() && err.contains("--table") && err.contains("--store embedded"), "{err}");
    let o = without_store(&["--secrets-prefix", "butterfly/prod", "tenant", "list"]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success() && err.contains("--stack NAME"), "a prefix alone names no table: {err}");
    // With credentials, `sso show` on DynamoDB without --stack or --secrets-prefix names the flag.
    let table = format!("butterfly-prefix-{}", std::process::id());
    let o = on_dynamodb(&table, &[]).args(["table", "create"]).output().unwrap();
    assert!(o.status.success());
    let t = json_out(&on_dynamodb(&table, &[]).args(["tenant", "create", "--name", "P", "--json"]).output().unwrap());
    let o =
        on_dynamodb(&table, &[]).args(["sso", "show", "--tenant", t["tenant_id"].as_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success() && err.contains("--secrets-prefix") && err.contains("--stack"), "{err}");
}

/// The part of a setup link URL after `/console/setup/`.
fn link_of(url: &str) -> String {
    url.rsplit_once("/console/setup/").map(|(_, l)| l.to_string()).unwrap_or_else(|| panic!("not a setup link: {url}"))
}

/// The owner's setup link and support's role command, on the embedded store and on DynamoDB:
/// `tenant create --owner-email` prints the link (human and JSON), `tenant owner-link`
/// re-issues it (the old one dies), `user set-role` changes a role by email, audited as the
/// operator, keeping the last super_admin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_link_and_role_commands_on_both_stores() {
    use butterfly_core::clock::SystemClock;
    use butterfly_core::ids::TenantId;
    use butterfly_core::ports::Store;
    use butterfly_core::setup_link::SetupLinkService;
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let (dynamo, _counter) = butterfly_tests::aws::dynamo_store("cli-setup").await;
    let table = dynamo.table().to_string();
    for on_dynamo in [false, true] {
        let cli = |args: &[&str]| -> Output {
            if on_dynamo {
                on_dynamodb(&table, &[]).args(args).output().expect("run butterfly")
            } else {
                run(&d, args)
            }
        };
        let store = || -> Arc<dyn Store> {
            if on_dynamo {
                Arc::new(dynamo.clone())
            } else {
                Arc::new(butterfly_embedded::EmbeddedStore::open(&d).unwrap())
            }
        };
        let name = if on_dynamo { "Setup Dyn" } else { "Setup Embedded" };
        // On DynamoDB without a stack, the link needs the service's URL: refused before anything is created.
        if on_dynamo {
            let o = cli(&["tenant", "create", "--name", name, "--owner-email", "owner@setup.example"]);
            assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--public-url"));
        }
        let o = cli(&["tenant", "create", "--name", name, "--owner-email", "not an email"]);
        assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--owner-email"));
        assert!(json_out(&cli(&["tenant", "list", "--json"]))["tenants"].as_array().unwrap().is_empty());

        let base = if on_dynamo { "https://id.butterfly.example" } else { "http://127.0.0.1:3000" };
        let mut args = vec!["tenant", "create", "--name", name, "--owner-email", "Owner@Setup.example", "--json"];
        if on_dynamo {
            args.extend(["--public-url", "https://id.butterfly.example/"]);
        }
        let t = json_out(&cli(&args));
        let tenant = t["tenant_id"].as_str().unwrap().to_string();
        let first = t["setup_link"].as_str().unwrap().to_string();
        assert!(first.starts_with(&format!("{base}/console/setup/bfy_setup_{tenant}_")), "{t}");
        assert_eq!(t["owner_email"], "Owner@Setup.example");
        assert!(t["setup_link_expires"].is_string());

        // Re-issued (human output): a new link, the previous one dead; audited as the operator.
        let mut args = vec!["tenant", "owner-link", "--tenant", &tenant];
        if on_dynamo {
            args.extend(["--public-url", base]);
        }
        let o = cli(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        let second = out.lines().find(|l| l.starts_with(base)).unwrap_or_else(|| panic!("{out}")).to_string();
        assert_ne!(second, first);
        assert!(out.contains("Owner@Setup.example") && out.contains("previous setup link no longer works"), "{out}");
        let o =
            cli(&["tenant", "owner-link", "--tenant", "00000000-0000-4000-8000-000000000000", "--public-url", base]);
        assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("does not exist"));

        let s = store();
        let tid = TenantId::parse(&tenant).unwrap();
        let service = SetupLinkService::new(s.clone(), Arc::new(SystemClock), 3600);
        assert!(service.use_link(&link_of(&first)).await.is_err(), "the re-issue retired the first link");
        let signed_in = service.use_link(&link_of(&second)).await.unwrap();
        assert!(signed_in.created);
        let mut reader = butterfly_tests::contract::user(&tid, "reader@setup.example", None);
        reader.role = None;
        s.create_user(&reader).await.unwrap();
        let events = s.audit_page(&tid, None, 20).await.unwrap();
        assert!(events.iter().any(|e| e.action.as_str() == "setup_link.issue" && e.actor == "operator"));
        assert!(events.iter().any(|e| e.action.as_str() == "setup_link.reissue" && e.actor == "operator"));
        drop((s, service));

        // The last super_admin is kept; another one first, then the owner may step down.
        let o = cli(&["user", "set-role", "--tenant", &tenant, "--email", "OWNER@setup.example", "--role", "admin"]);
        assert!(!o.status.success(), "the last super_admin was demoted");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("last super_admin"),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        for (args, needle) in [
            (vec!["--email", "nobody@setup.example", "--role", "admin"], "no member"),
            (vec!["--email", "reader@setup.example", "--role", "emperor"], "unknown role"),
        ] {
            let o = cli(&[&["user", "set-role", "--tenant", tenant.as_str()][..], &args[..]].concat());
            assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains(needle), "{args:?}");
        }
        let v = json_out(&cli(&[
            "user",
            "set-role",
            "--tenant",
            &tenant,
            "--email",
            "reader@setup.example",
            "--role",
            "super_admin",
            "--json",
        ]));
        assert_eq!((v["role"].as_str(), v["role_source"].as_str()), (Some("super_admin"), Some("manual")));
        let o = cli(&["user", "set-role", "--tenant", &tenant, "--email", "owner@setup.example", "--role", "admin"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stdout).contains("is now admin"));

        let s = store();
        let owner = s.find_user_by_user_name(&tid, "owner@setup.example").await.unwrap().unwrap();
        assert_eq!(owner.role, Some(butterfly_core::role::Role::Admin));
        let events = s.audit_page(&tid, None, 20).await.unwrap();
        let changes: Vec<_> = events.iter().filter(|e| e.action.as_str() == "role.change").collect();
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert!(changes.iter().all(|e| e.actor == "operator"));
    }
}

/// `cargo run` on a fresh store prints the demo tenant's setup link beside the SCIM token; the
/// link's page changes nothing, its button signs in as a super_admin once; and the link never
/// reaches the logs (debug level, every request of the walk logged).
#[test]
fn the_demo_setup_link_works_once_and_never_reaches_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let log_path = d.join("stderr.log");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    // A per-address limit this walk reaches (a burst of 6), so the refusal's log line is seen too.
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(d.join("data"))
        .args(["serve", "--addr", &addr, "--anonymous-limit-per-minute", "60"])
        .env("BUTTERFLY_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut stdout = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !stdout.last().is_some_and(|l: &String| l.contains("listening on")) {
        assert!(Instant::now() < deadline, "server did not start: {stdout:?}");
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "server exited early: {stdout:?}");
        stdout.push(line.trim_end().to_string());
    }
    let server = Server { child, port, stdout };
    let url = server
        .stdout
        .iter()
        .find_map(|l| l.trim().strip_prefix("Console:").map(|t| t.trim().to_string()))
        .unwrap_or_else(|| panic!("no setup link printed: {:?}", server.stdout));
    assert!(url.starts_with(&format!("http://127.0.0.1:{port}/console/setup/bfy_setup_")), "{url}");
    assert!(server.stdout.iter().any(|l| l.contains("SCIM token:")), "next to the SCIM token");
    let link = link_of(&url);
    let path = format!("/console/setup/{link}");

    let (status, page) = http_send(port, "GET", &path, &[], "");
    assert_eq!(status, 200, "{page}");
    let form = format!("link={link}");
    let post = |body: &str| {
        http_send(
            port,
            "POST",
            "/console/setup",
            &[("Content-Type", "application/x-www-form-urlencoded"), ("Sec-Fetch-Site", "same-origin")],
            body,
        )
    };
    assert_eq!(post(&form).0, 303, "the button signs in");
    assert_eq!(post(&form).0, 400, "once");
    assert_eq!(http_send(port, "GET", &path, &[], "").0, 200);
    // Paths that are not the route but carry the link (404s), then the limit (429s): their log
    // lines name neither the link nor its secret.
    for mangled in [format!("/console//setup/{link}"), format!("/Console/setup/{link}"), format!("/x/{link}")] {
        assert_eq!(http_send(port, "GET", &mangled, &[], "").0, 404, "{mangled}");
    }
    let mut limited = 0;
    for _ in 0..12 {
        limited += u32::from(http_send(port, "GET", &path, &[], "").0 == 429);
    }
    assert!(limited > 0, "the per-address limit was reached");
    server.stop();

    let logs = std::fs::read_to_string(&log_path).unwrap();
    let secret = &link[link.len() - 43..];
    assert!(!logs.contains(secret), "the setup link reached the logs");
    assert!(logs.contains("client address over its limit"), "the refusal was logged: {logs}");
    assert!(logs.contains("/console/setup/{link}"), "the walk was logged: {logs}");
    assert!(logs.contains("signed in with a setup link"), "{logs}");

    // The demo link is printed once, like the token.
    let again = serve(&d.join("data"), &[]);
    assert!(!again.stdout.join("\n").contains("Console:"), "{:?}", again.stdout);
    // Serving (its signal handler is installed once it accepts): then stop.
    assert_eq!(http_get(again.port, "/healthz", "").0, 200);
    again.stop();
}

//! The command line. Every command takes `--data-dir`; `--json` prints one JSON object.

use crate::serve::{serve, Backend, ServeOptions};
use butterfly_aws::DynamoStore;
use butterfly_aws::SecretsManagerStore;
use butterfly_core::clock::SystemClock;
use butterfly_core::domain::DomainService;
use butterfly_core::ids::TenantId;
use butterfly_core::ports::{SecretStore, Store};
use butterfly_core::service::{AdminService, RotationMode};
use butterfly_core::sso_service::{SsoPolicy, SsoService, SsoSettingsInput, SsoSettingsView};
use butterfly_core::tenant::Tenant;
use butterfly_core::token::Secret;
use butterfly_core::token::TokenRecord;
use butterfly_embedded::EmbeddedStore;
use butterfly_outbound::{DnsServers, GuardedHttp, Limits, OidcProvider, TxtLookup};
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(name = "butterfly", version, about = "Butterfly identity: local stack and operator CLI")]
pub struct Cli {
    /// Where the embedded store keeps its data.
    #[arg(long, global = true, default_value = ".butterfly", env = "BUTTERFLY_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Which store the command works on: the local embedded store, or the DynamoDB table of a
    /// deployment (AWS credentials and region from the environment).
    #[arg(long, global = true, value_enum, default_value = "embedded", env = "BUTTERFLY_STORE")]
    pub store: StoreKind,
    /// The DynamoDB table (the stack's `TableName` output), with `--store dynamodb`.
    #[arg(long, global = true, env = "BUTTERFLY_TABLE")]
    pub table: Option<String>,
    /// Where OIDC client secrets live in Secrets Manager, with `--store dynamodb` (the stack's
    /// `SecretsPrefix` output): `{prefix}/tenants/{id}/oidc-client-secret`.
    #[arg(long, global = true, env = "BUTTERFLY_SECRETS_PREFIX")]
    pub secrets_prefix: Option<String>,
    /// Accept `http://` issuers on loopback (a local test provider). On by default for the
    /// embedded store, off for DynamoDB.
    #[arg(long, global = true, env = "BUTTERFLY_ALLOW_LOOPBACK_ISSUER")]
    pub allow_loopback_issuer: Option<bool>,
    /// The DNS server for identity-provider host names and domain-verification TXT records:
    /// `system` (resolv.conf) or `IP:PORT`.
    #[arg(long, global = true, default_value = "system", env = "BUTTERFLY_DNS_SERVER")]
    pub dns_server: String,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    Embedded,
    Dynamodb,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the local stack: every endpoint on one port over the embedded store (or, with
    /// `--store dynamodb`, over a DynamoDB table and Secrets Manager, e.g. DynamoDB Local).
    Serve(ServeArgs),
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCmd),
    /// Issue, rotate or inspect a tenant's SCIM bearer token.
    #[command(subcommand, name = "scim-token")]
    ScimToken(TokenCmd),
    /// A tenant's single sign-on (OIDC) settings.
    #[command(subcommand)]
    Sso(SsoCmd),
    /// Email-domain verification (DNS TXT records).
    #[command(subcommand)]
    Domain(DomainCmd),
    /// The DynamoDB table itself (for DynamoDB Local and test setups; on AWS the stack creates it).
    #[command(subcommand)]
    Table(TableCmd),
}

#[derive(Subcommand, Debug)]
pub enum TableCmd {
    /// Create the table with the layout of docs/storage.md (keys, index, TTL).
    Create,
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1:3000", env = "BUTTERFLY_ADDR")]
    pub addr: SocketAddr,
    /// The URL clients reach this server at, if not http://ADDR (e.g. behind a tunnel).
    #[arg(long, env = "BUTTERFLY_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Do not create the demo tenant when the store is empty.
    #[arg(long)]
    pub no_demo: bool,
    /// With `--store dynamodb`: the Secrets Manager secret that signs paging cursors (the
    /// stack's `CursorKeySecret` output).
    #[arg(long, env = "BUTTERFLY_CURSOR_KEY_SECRET_ID")]
    pub cursor_key_secret_id: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum TenantCmd {
    /// Create a tenant.
    Create {
        #[arg(long)]
        name: String,
        /// Comma-separated email domains whose users sign in through this tenant.
        #[arg(long, default_value = "")]
        domains: String,
        #[arg(long)]
        json: bool,
    },
    /// List tenants.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Issue the tenant's first SCIM token (shown once).
    Issue {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        json: bool,
    },
    /// Replace the tenant's SCIM token (shown once). The old one stops working at once, or with
    /// --overlap-hours when the new token is first used (or after that many hours at most).
    Rotate {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        overlap_hours: Option<f64>,
        #[arg(long)]
        json: bool,
    },
    /// Show when the tenant's token was created and last used (never the token).
    Show {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum DomainCmd {
    /// Check a tenant's domain now (its `_butterfly-verification` TXT record); with `--force`,
    /// mark it verified on the operator's word instead (audited).
    Verify {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        domain: String,
        /// Vouch for the domain without DNS (audited as the operator's decision).
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
    /// Re-check every DNS-verified domain due for it, and every pending one (what the scheduled
    /// job does).
    Recheck {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum SsoCmd {
    /// Save the tenant's SSO settings. The issuer is checked by OIDC discovery first.
    Set {
        #[arg(long)]
        tenant: String,
        /// Okta domain (acme.okta.com, meaning the org authorization server) or issuer URL.
        #[arg(long)]
        issuer: String,
        #[arg(long)]
        client_id: String,
        /// Read the client secret from standard input (one line), never from the command line.
        #[arg(long)]
        client_secret_stdin: bool,
        /// Comma-separated email domains that sign in through this provider (replaces the list).
        #[arg(long)]
        domains: Option<String>,
        /// Save the settings with single sign-on turned off.
        #[arg(long)]
        disabled: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show the tenant's SSO settings (never the secret).
    Show {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        json: bool,
    },
}

fn print_sso(v: &SsoSettingsView, json_out: bool) {
    if json_out {
        println!("{}", butterfly_api::admin::settings_json(v));
        return;
    }
    let ds: Vec<&str> = v.domains.iter().map(|d| d.as_str()).collect();
    println!("Tenant:        {}", v.tenant);
    println!("Issuer:        {}", v.issuer.as_ref().map(|i| i.as_str()).unwrap_or("(not set)"));
    println!("Client ID:     {}", v.client_id.as_deref().unwrap_or("(not set)"));
    println!("Client secret: {}", if v.client_secret_set { "set (write-only)" } else { "not set" });
    println!("Domains:       {}", if ds.is_empty() { "(none)".to_string() } else { ds.join(",") });
    println!("SSO:           {}", if v.enabled { "enabled" } else { "disabled" });
}

fn tenant_json(t: &Tenant) -> serde_json::Value {
    json!({
        "tenant_id": t.id.as_str(),
        "name": t.name,
        "domains": t.domains.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
        "created": t.created.to_rfc3339(),
    })
}

fn token_meta_json(r: &TokenRecord) -> serde_json::Value {
    json!({
        "tenant_id": r.tenant.as_str(),
        "display_prefix": r.display_prefix,
        "created": r.created.to_rfc3339(),
        "last_used": r.last_used.map(|t| t.to_rfc3339()),
        "expires": r.expires.map(|t| t.to_rfc3339()),
    })
}

fn parse_tenant(s: &str) -> Result<TenantId, String> {
    TenantId::parse(s).ok_or_else(|| format!("{s:?} is not a tenant id (see 'butterfly tenant list')"))
}

type Opened = (Arc<dyn Store>, Arc<dyn SecretStore>, Option<DynamoStore>);

/// Opens the store the command works on, and the matching secret store.
async fn open_store(cli: &Cli) -> Result<Opened, String> {
    match cli.store {
        StoreKind::Embedded => {
            let s = EmbeddedStore::open(&cli.data_dir).map_err(|e| e.to_string())?;
            Ok((Arc::new(s.clone()), Arc::new(s), None))
        }
        StoreKind::Dynamodb => {
            let table =
                cli.table.clone().ok_or("--store dynamodb needs --table NAME (the stack's TableName output)")?;
            let cfg = butterfly_aws::sdk_config().await;
            let s = DynamoStore::new(butterfly_aws::dynamodb_client(&cfg, None), table);
            let prefix = cli.secrets_prefix.clone().unwrap_or_else(|| "butterfly".to_string());
            let secrets = SecretsManagerStore::new(butterfly_aws::secretsmanager_client(&cfg), prefix);
            Ok((Arc::new(s.clone()), Arc::new(secrets), Some(s)))
        }
    }
}

fn read_secret_line() -> Result<Secret, String> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(|e| format!("cannot read the client secret from stdin: {e}"))?;
    let v = line.trim_end_matches(['\r', '\n']);
    if v.is_empty() {
        return Err("--client-secret-stdin: standard input had no secret".into());
    }
    Ok(Secret::new(v))
}

pub async fn run(mut cli: Cli) -> Result<(), String> {
    let command = cli.command.take().unwrap_or(Command::Serve(ServeArgs {
        addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
        public_url: None,
        no_demo: false,
        cursor_key_secret_id: None,
    }));
    if let Command::Serve(a) = command {
        let backend = match cli.store {
            StoreKind::Embedded => Backend::Embedded(cli.data_dir),
            StoreKind::Dynamodb => Backend::Dynamodb {
                table: cli.table.ok_or("--store dynamodb needs --table NAME (the stack's TableName output)")?,
                secrets_prefix: cli.secrets_prefix.unwrap_or_else(|| "butterfly".to_string()),
                cursor_key_secret_id: a
                    .cursor_key_secret_id
                    .ok_or("serving --store dynamodb needs --cursor-key-secret-id (the stack's CursorKeySecret)")?,
                allow_loopback_issuer: cli.allow_loopback_issuer.unwrap_or(false),
            },
        };
        let dns = DnsServers::parse(&cli.dns_server)?;
        return serve(ServeOptions { backend, addr: a.addr, public_url: a.public_url, demo: !a.no_demo, dns }).await;
    }
    let (store, secrets, dynamo) = open_store(&cli).await?;
    let admin = AdminService::new(store.clone(), Arc::new(SystemClock));
    let allow_loopback = cli.allow_loopback_issuer.unwrap_or(cli.store == StoreKind::Embedded);
    match command {
        Command::Domain(cmd) => {
            let dns = DnsServers::parse(&cli.dns_server)?;
            let domains = DomainService::new(store.clone(), Arc::new(TxtLookup::new(&dns)?), Arc::new(SystemClock));
            match cmd {
                DomainCmd::Verify { tenant, domain, force, json } => {
                    let tenant = parse_tenant(&tenant)?;
                    let r = if force {
                        domains.mark_verified(&tenant, &domain).await
                    } else {
                        domains.verify(&tenant, &domain, &butterfly_core::actor::Actor::Operator).await
                    }
                    .map_err(|e| e.to_string())?;
                    if json {
                        println!(
                            "{}",
                            json!({ "domain": r.domain.as_str(), "verified": r.is_verified(), "verified_by": r.verified_by, "last_error": r.last_error })
                        );
                    } else if r.is_verified() {
                        println!("{} is verified", r.domain);
                    } else {
                        println!("{} is not verified: {}", r.domain, r.last_error.unwrap_or_default());
                    }
                }
                DomainCmd::Recheck { json } => {
                    let sum = domains.recheck_all().await.map_err(|e| e.to_string())?;
                    if json {
                        println!(
                            "{}",
                            json!({ "checked": sum.checked, "still_verified": sum.still_verified, "withdrawn": sum.withdrawn, "unanswered": sum.unanswered })
                        );
                    } else {
                        println!(
                            "checked {} domains: {} verified, {} withdrawn, {} without a DNS answer",
                            sum.checked, sum.still_verified, sum.withdrawn, sum.unanswered
                        );
                    }
                }
            }
            Ok(())
        }
        Command::Sso(cmd) => {
            let dns = DnsServers::parse(&cli.dns_server)?;
            let idp = OidcProvider::new(GuardedHttp::new(&dns, allow_loopback, Limits::default())?);
            let policy = SsoPolicy { allow_loopback_http: allow_loopback, ..SsoPolicy::default() };
            let sso = SsoService::new(store, secrets, Arc::new(idp), Arc::new(SystemClock), policy);
            match cmd {
                SsoCmd::Set { tenant, issuer, client_id, client_secret_stdin, domains, disabled, json } => {
                    let tenant = parse_tenant(&tenant)?;
                    let client_secret = if client_secret_stdin { Some(read_secret_line()?) } else { None };
                    let v = sso
                        .configure(
                            &tenant,
                            SsoSettingsInput { issuer, client_id, client_secret, domains, enabled: !disabled },
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                    if !json {
                        println!("Saved the SSO settings (the issuer answered discovery):");
                    }
                    print_sso(&v, json);
                }
                SsoCmd::Show { tenant, json } => {
                    let v = sso.settings(&parse_tenant(&tenant)?).await.map_err(|e| e.to_string())?;
                    print_sso(&v, json);
                }
            }
            Ok(())
        }
        Command::Serve(_) => Ok(()),
        Command::Table(TableCmd::Create) => {
            let d = dynamo.ok_or("'table create' is for --store dynamodb; the embedded store needs no setup")?;
            d.create_table().await.map_err(|e| e.to_string())?;
            println!("Created table {}", d.table());
            Ok(())
        }
        Command::Tenant(TenantCmd::Create { name, domains, json }) => {
            let t = admin.create_tenant(&name, &domains).await.map_err(|e| e.to_string())?;
            if json {
                println!("{}", tenant_json(&t));
            } else {
                println!("Created tenant {:?}: {}", t.name, t.id);
                println!("Next: butterfly scim-token issue --tenant {}", t.id);
            }
            Ok(())
        }
        Command::Tenant(TenantCmd::List { json }) => {
            let ts = admin.list_tenants().await.map_err(|e| e.to_string())?;
            if json {
                println!("{}", json!({"tenants": ts.iter().map(tenant_json).collect::<Vec<_>>()}));
            } else if ts.is_empty() {
                println!("No tenants yet: butterfly tenant create --name NAME");
            } else {
                for t in ts {
                    let ds: Vec<&str> = t.domains.iter().map(|d| d.as_str()).collect();
                    println!("{}  {}  {}", t.id, t.name, ds.join(","));
                }
            }
            Ok(())
        }
        Command::ScimToken(cmd) => {
            let (tenant, json_out, rotate) = match &cmd {
                TokenCmd::Issue { tenant, json } => (tenant, *json, Some(false)),
                TokenCmd::Rotate { tenant, json, .. } => (tenant, *json, Some(true)),
                TokenCmd::Show { tenant, json } => (tenant, *json, None),
            };
            let mode = match &cmd {
                TokenCmd::Rotate { overlap_hours: Some(h), .. } => {
                    if !(h.is_finite() && *h > 0.0 && *h <= 168.0) {
                        return Err("--overlap-hours must be more than 0 and at most 168".into());
                    }
                    RotationMode::Overlap { secs: (h * 3600.0) as i64 }
                }
                _ => RotationMode::Immediate,
            };
            let tenant = parse_tenant(tenant)?;
            let Some(rotate) = rotate else {
                let live = admin.live_tokens(&tenant).await.map_err(|e| e.to_string())?;
                match (live.first(), json_out) {
                    (Some(m), true) => {
                        let mut v = token_meta_json(m);
                        if let Some(o) = v.as_object_mut() {
                            o.insert("tokens".into(), json!(live.iter().map(token_meta_json).collect::<Vec<_>>()));
                        }
                        println!("{v}");
                    }
                    (None, true) => println!("{}", json!({"tenant_id": tenant.as_str(), "token": null, "tokens": []})),
                    (Some(_), false) => {
                        for (i, m) in live.iter().enumerate() {
                            println!(
                                "{} token {}… created {}, last used {}{}",
                                if i == 0 { "Current" } else { "Previous" },
                                m.display_prefix,
                                m.created.to_rfc3339(),
                                m.last_used.map(|t| t.to_rfc3339()).unwrap_or_else(|| "never".into()),
                                m.expires.map(|t| format!(", stops working at {}", t.to_rfc3339())).unwrap_or_default()
                            );
                        }
                    }
                    (None, false) => {
                        println!("Tenant {tenant} has no SCIM token: butterfly scim-token issue --tenant {tenant}")
                    }
                }
                return Ok(());
            };
            let issued = if rotate {
                admin.rotate_token_with(&tenant, mode, "operator").await
            } else {
                admin.issue_token(&tenant).await
            }
            .map_err(|e| e.to_string())?;
            if json_out {
                let mut v = token_meta_json(&issued.record);
                if let Some(o) = v.as_object_mut() {
                    o.insert("token".into(), json!(issued.token.secret().expose()));
                }
                println!("{v}");
            } else {
                println!("SCIM token for tenant {tenant} (shown once, store it in Okta now):");
                println!("{}", issued.token.secret().expose());
                match (rotate, mode) {
                    (true, RotationMode::Immediate) => println!("The previous token no longer works."),
                    (true, RotationMode::Overlap { .. }) => {
                        println!("The previous token keeps working until this one is first used (or the overlap ends).")
                    }
                    _ => {}
                }
            }
            Ok(())
        }
    }
}

//! The command line. Every command takes `--data-dir`; `--json` prints one JSON object.

use crate::serve::{serve, Backend, ServeOptions};
use butterfly_aws::DynamoStore;
use butterfly_aws::SecretsManagerStore;
use butterfly_core::actor::Actor;
use butterfly_core::clock::SystemClock;
use butterfly_core::domain::DomainService;
use butterfly_core::email::EmailDomain;
use butterfly_core::email::UserName;
use butterfly_core::ids::TenantId;
use butterfly_core::ports::{SecretStore, Store};
use butterfly_core::role::Role;
use butterfly_core::scim_tokens::{RotationMode, ScimTokenService};
use butterfly_core::setup_link::{IssuedSetupLink, SetupLinkService};
use butterfly_core::sso::SsoPolicy;
use butterfly_core::sso_settings::{SsoSettingsInput, SsoSettingsService, SsoSettingsView};
use butterfly_core::team::TeamService;
use butterfly_core::tenant::Tenant;
use butterfly_core::tenants::TenantService;
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
    /// deployment (AWS credentials and region from the environment). Without it: dynamodb when
    /// `--stack`, `--table` or `--secrets-prefix` is given, else embedded.
    #[arg(long, global = true, value_enum, env = "BUTTERFLY_STORE")]
    pub store: Option<StoreKind>,
    /// The deployed CloudFormation stack (`sam deploy`'s stack name, e.g. butterfly-identity):
    /// its Outputs give the table (`TableName`), the secrets prefix (`SecretsPrefix`) and the
    /// server secret (`CursorKeySecretArn`), so none of them is typed by hand.
    #[arg(long, global = true, env = "BUTTERFLY_STACK")]
    pub stack: Option<String>,
    /// The DynamoDB table, without `--stack` (the stack's `TableName` output).
    #[arg(long, global = true, env = "BUTTERFLY_TABLE")]
    pub table: Option<String>,
    /// Where OIDC client secrets live in Secrets Manager, without `--stack` (the stack's
    /// `SecretsPrefix` output, e.g. butterfly/prod): `{prefix}/tenants/{id}/oidc-client-secret`.
    /// No default: a wrong prefix would store secrets where the functions cannot read them.
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
    /// A tenant's members (support).
    #[command(subcommand)]
    User(UserCmd),
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
    /// With `--store dynamodb` and without `--stack`: the deployment's server secret (the
    /// stack's `CursorKeySecretArn` output), which signs paging cursors and CSRF tokens.
    #[arg(long, env = "BUTTERFLY_CURSOR_KEY_SECRET_ID")]
    pub cursor_key_secret_id: Option<String>,
    /// SCIM requests a minute per tenant (the stack's ScimRateLimitPerMinute parameter, which
    /// stops at 1,000,000; the local stack takes up to 100,000,000 for load runs, which pass a
    /// million a minute on two cores).
    #[arg(long, default_value_t = 1200, value_parser = clap::value_parser!(u32).range(1..=100_000_000),
          env = "BUTTERFLY_SCIM_RATE_LIMIT_PER_MINUTE")]
    pub scim_rate_limit_per_minute: u32,
    /// Requests a minute per client address to the anonymous sign-in and logout endpoints.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u32).range(1..=1_000_000),
          env = "BUTTERFLY_ANONYMOUS_LIMIT_PER_MINUTE")]
    pub anonymous_limit_per_minute: u32,
}

#[derive(Subcommand, Debug)]
pub enum TenantCmd {
    /// Create a tenant (a customer organisation). Names are unique (case-insensitive).
    Create {
        /// The organisation's name, as its admins and users see it.
        #[arg(long)]
        name: String,
        /// Comma-separated email domains whose users sign in through this tenant. Given here,
        /// they count as verified on the operator's word (audited); domains a customer adds
        /// in the admin API must be verified by DNS.
        #[arg(long, default_value = "")]
        domains: String,
        /// The owner's email: prints a one-time setup link (72 hours, single use) that opens the
        /// console as this person, a super_admin, so the customer sets up single sign-on.
        #[arg(long)]
        owner_email: Option<String>,
        /// The URL the service is reached at, for the setup link (default: the stack's, with
        /// --stack; http://127.0.0.1:3000, the local stack, on the embedded store).
        #[arg(long, env = "BUTTERFLY_PUBLIC_URL")]
        public_url: Option<String>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Issue a new one-time setup link for the tenant's owner (audited); the previous link stops
    /// working. For a customer locked out by a broken identity-provider setup.
    OwnerLink {
        /// The tenant id.
        #[arg(long)]
        tenant: String,
        /// A new owner's email (default: the owner of the tenant's previous link).
        #[arg(long)]
        owner_email: Option<String>,
        /// The URL the service is reached at, for the setup link (as for `tenant create`).
        #[arg(long, env = "BUTTERFLY_PUBLIC_URL")]
        public_url: Option<String>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List tenants.
    List {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Issue the tenant's first SCIM token (shown once).
    Issue {
        /// The tenant id (from `tenant create` or `tenant list`).
        #[arg(long)]
        tenant: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Replace the tenant's SCIM token (shown once). As in the admin API, the current token keeps
    /// working until the new one is first used, or for --overlap-hours at most (default 24);
    /// --immediate ends every other token at once (a lost or leaked token).
    Rotate {
        /// The tenant id.
        #[arg(long)]
        tenant: String,
        /// How long the current token may keep working, at most (more than 0, at most 168).
        #[arg(long, conflicts_with = "immediate")]
        overlap_hours: Option<f64>,
        /// End every other token of the tenant now.
        #[arg(long)]
        immediate: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Show the tenant's live tokens: prefix, created, last used, expiry (never the token).
    Show {
        /// The tenant id.
        #[arg(long)]
        tenant: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Set a member's role by hand (audited as the operator; the last super_admin is kept).
    SetRole {
        /// The tenant id.
        #[arg(long)]
        tenant: String,
        /// The member's email (their userName).
        #[arg(long)]
        email: String,
        /// super_admin, admin, operator, auditor or read_only.
        #[arg(long)]
        role: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum DomainCmd {
    /// Check a tenant's domain now (its `_butterfly-verification` TXT record); with `--force`,
    /// mark it verified on the operator's word instead (audited).
    Verify {
        /// The tenant id.
        #[arg(long)]
        tenant: String,
        /// The email domain (one the tenant added, or a new one with --force).
        #[arg(long)]
        domain: String,
        /// Vouch for the domain without DNS (audited as the operator's decision).
        #[arg(long)]
        force: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Re-check every DNS-verified domain due for it, and every pending one (what the scheduled
    /// job does).
    Recheck {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum SsoCmd {
    /// Save the tenant's SSO settings. The issuer is checked by OIDC discovery first; set by the
    /// operator, it is bound to the tenant at once (no test sign-in needed).
    Set {
        /// The tenant id.
        #[arg(long)]
        tenant: String,
        /// Okta domain (acme.okta.com, meaning the org authorization server) or issuer URL.
        #[arg(long)]
        issuer: String,
        /// The client ID of the tenant's Butterfly app in Okta.
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
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Show the tenant's SSO settings (never the secret).
    Show {
        /// The tenant id.
        #[arg(long)]
        tenant: String,
        /// Print one JSON object.
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

/// The owner's email, as the setup link will create their user.
fn parse_owner(s: &str) -> Result<UserName, String> {
    UserName::parse(s).map_err(|e| format!("--owner-email: {}", e.replacen("userName", "the email", 1)))
}

/// Where setup links point: `--public-url`, else the deployment's URL from its stack, else (the
/// embedded store) the local stack's default address.
fn link_base(given: Option<String>, from_stack: Option<String>, embedded: bool) -> Result<String, String> {
    let url = match (given, from_stack) {
        (Some(u), _) => u,
        (None, Some(u)) => u,
        (None, None) if embedded => "http://127.0.0.1:3000".to_string(),
        (None, None) => {
            return Err("a setup link needs the service's URL: give --public-url URL (or --stack NAME)".into());
        }
    };
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && !url.chars().any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#');
    if !ok {
        return Err(format!("--public-url {url:?} is not an http(s) URL"));
    }
    Ok(url.trim_end_matches('/').to_string())
}

fn setup_link_url(issued: &IssuedSetupLink, base: &str) -> String {
    butterfly_api::setup::setup_link_url(base, &issued.link)
}

fn setup_link_json(issued: &IssuedSetupLink, base: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("owner_email".into(), json!(issued.record.owner.as_str()));
    m.insert("setup_link".into(), json!(setup_link_url(issued, base)));
    m.insert("setup_link_expires".into(), json!(issued.record.expires.to_rfc3339()));
    m
}

fn print_setup_link(issued: &IssuedSetupLink, base: &str) {
    println!(
        "One-time setup link for the owner {} (shown once; single use; expires {}):",
        issued.record.owner,
        issued.record.expires.to_rfc3339()
    );
    println!("{}", setup_link_url(issued, base));
    println!("It opens the console as a super_admin, to set up single sign-on. Send it to the owner only.");
}

fn parse_tenant(s: &str) -> Result<TenantId, String> {
    TenantId::parse(s).ok_or_else(|| format!("{s:?} is not a tenant id (see 'butterfly tenant list')"))
}

/// The store, the secret store, the DynamoDB store if it is one, and the deployment's public
/// URL if its stack says it.
type Opened = (Arc<dyn Store>, Arc<dyn SecretStore>, Option<DynamoStore>, Option<String>);

/// A deployment on AWS, as the command found it: from `--stack` (its Outputs) or the flags.
struct Deployment {
    table: String,
    /// The service's URL (the stack's `ScimBaseUrl` output without `/scim/v2`).
    public_url: Option<String>,
    secrets_prefix: Option<String>,
    server_secret_id: Option<String>,
}

impl Cli {
    /// The store the command works on. Naming a deployment (`--stack`, `--table`,
    /// `--secrets-prefix`) means DynamoDB; saying `--store embedded` with one of them is a
    /// mistake refused here, not a command silently run on the local data.
    pub fn store_kind(&self) -> Result<StoreKind, String> {
        let named = [("--stack", &self.stack), ("--table", &self.table), ("--secrets-prefix", &self.secrets_prefix)]
            .into_iter()
            .find_map(|(flag, v)| v.as_ref().map(|_| flag));
        match (self.store, named) {
            (Some(StoreKind::Embedded), Some(flag)) => Err(format!(
                "{flag} names a deployment on DynamoDB, but --store embedded was given: leave out one of them"
            )),
            (Some(kind), _) => Ok(kind),
            (None, Some(_)) => Ok(StoreKind::Dynamodb),
            (None, None) => Ok(StoreKind::Embedded),
        }
    }
}

/// `--store dynamodb` needs a stack or a table, checked before anything else.
fn require_table_or_stack(cli: &Cli) -> Result<(), String> {
    if cli.stack.is_none() && cli.table.is_none() {
        return Err(
            "--store dynamodb needs --stack NAME (the stack sam deploy created), or --table NAME (its TableName output)"
                .into(),
        );
    }
    Ok(())
}

/// AWS configuration for the operator's commands: region and credentials must be there, else one
/// clear sentence (not an SDK error dump) says what is missing.
async fn aws_config() -> Result<aws_config::SdkConfig, String> {
    use aws_credential_types::provider::ProvideCredentials;
    let cfg = butterfly_aws::sdk_config().await;
    if cfg.region().is_none() {
        return Err("no AWS region: set AWS_REGION (or AWS_PROFILE with a region) for the deployment's account".into());
    }
    let provider = cfg.credentials_provider().ok_or(NO_CREDENTIALS)?;
    provider.provide_credentials().await.map_err(|_| NO_CREDENTIALS.to_string())?;
    Ok(cfg)
}

const NO_CREDENTIALS: &str =
    "no usable AWS credentials (missing or expired): set AWS_PROFILE, or AWS_ACCESS_KEY_ID and \
                              AWS_SECRET_ACCESS_KEY, or run `aws sso login`, for the account the stack is deployed in";

/// The deployment the command works on: the stack's Outputs with `--stack`, else the flags.
async fn deployment(
    cli: &Cli,
    cfg: &aws_config::SdkConfig,
    server_secret: Option<String>,
) -> Result<Deployment, String> {
    let Some(stack) = &cli.stack else {
        let table = cli.table.clone().ok_or(
            "--store dynamodb needs --stack NAME (the stack sam deploy created), or --table NAME (its TableName output)",
        )?;
        return Ok(Deployment {
            table,
            public_url: None,
            secrets_prefix: cli.secrets_prefix.clone(),
            server_secret_id: server_secret,
        });
    };
    let out = crate::stack::outputs(cfg, stack).await?;
    let get = |k: &str| {
        out.get(k)
            .cloned()
            .ok_or_else(|| format!("the stack {stack} has no {k} output: is it a Butterfly stack (template.yaml)?"))
    };
    let table = get("TableName")?;
    for (flag, given, from_stack) in [
        ("--table", cli.table.clone(), Some(table.clone())),
        ("--secrets-prefix", cli.secrets_prefix.clone(), out.get("SecretsPrefix").cloned()),
    ] {
        if let (Some(g), Some(s)) = (given, from_stack) {
            if g != s {
                return Err(format!("{flag} {g} differs from the stack's output {s}: leave {flag} out with --stack"));
            }
        }
    }
    if let (Some(given), Some(arn)) = (&server_secret, out.get("CursorKeySecretArn")) {
        if !same_secret(given, arn) {
            return Err(format!(
                "--cursor-key-secret-id {given} differs from the stack's output CursorKeySecretArn {arn}: \
                 leave --cursor-key-secret-id out with --stack"
            ));
        }
    }
    Ok(Deployment {
        table,
        public_url: out.get("ScimBaseUrl").and_then(|u| u.strip_suffix("/scim/v2")).map(str::to_string),
        secrets_prefix: Some(get("SecretsPrefix")?),
        server_secret_id: Some(server_secret.map_or_else(|| get("CursorKeySecretArn"), Ok)?),
    })
}

/// Whether a secret id given by hand (an ARN or a name) is the secret `arn` names. Secrets
/// Manager ARNs end in `:secret:{name}-{six random characters}`.
fn same_secret(given: &str, arn: &str) -> bool {
    if given == arn {
        return true;
    }
    let Some((_, tail)) = arn.split_once(":secret:") else { return false };
    match tail.rsplit_once('-') {
        Some((name, suffix)) => given == name && suffix.len() == 6,
        None => false,
    }
}

fn no_prefix() -> String {
    "this command stores or reads OIDC client secrets: give --stack NAME, or --secrets-prefix PREFIX (the stack's \
     SecretsPrefix output, e.g. butterfly/prod)"
        .to_string()
}

/// Opens the store the command works on, and the matching secret store. On DynamoDB without a
/// secrets prefix, the secret store refuses every use with a message naming the flag.
async fn open_store(cli: &Cli) -> Result<Opened, String> {
    match cli.store_kind()? {
        StoreKind::Embedded => {
            let s = EmbeddedStore::open(&cli.data_dir).map_err(|e| e.to_string())?;
            Ok((Arc::new(s.clone()), Arc::new(s), None, None))
        }
        StoreKind::Dynamodb => {
            require_table_or_stack(cli)?;
            let cfg = aws_config().await?;
            let d = deployment(cli, &cfg, None).await?;
            let s = DynamoStore::new(butterfly_aws::dynamodb_client(&cfg, None), d.table);
            let secrets: Arc<dyn SecretStore> = match d.secrets_prefix {
                Some(prefix) => Arc::new(SecretsManagerStore::new(butterfly_aws::secretsmanager_client(&cfg), prefix)),
                None => Arc::new(NoSecretStore),
            };
            Ok((Arc::new(s.clone()), secrets, Some(s), d.public_url))
        }
    }
}

/// The secret store of a DynamoDB command given no secrets prefix: every use is refused.
struct NoSecretStore;

#[async_trait::async_trait]
impl SecretStore for NoSecretStore {
    async fn put_client_secret(&self, _: &TenantId, _: &Secret) -> butterfly_core::Result<()> {
        Err(butterfly_core::Error::InvalidValue(no_prefix()))
    }
    async fn client_secret(&self, _: &TenantId) -> butterfly_core::Result<Option<Secret>> {
        Err(butterfly_core::Error::InvalidValue(no_prefix()))
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
        scim_rate_limit_per_minute: 1200,
        anonymous_limit_per_minute: 120,
    }));
    if let Command::Serve(a) = command {
        let backend = match cli.store_kind()? {
            StoreKind::Embedded => {
                if a.cursor_key_secret_id.is_some() {
                    return Err(
                        "--cursor-key-secret-id is for serving a DynamoDB deployment; the embedded store keeps \
                                its own server secret"
                            .into(),
                    );
                }
                Backend::Embedded(cli.data_dir)
            }
            StoreKind::Dynamodb => {
                require_table_or_stack(&cli)?;
                if cli.stack.is_none() && a.cursor_key_secret_id.is_none() {
                    return Err("serving --store dynamodb needs --stack NAME, or --cursor-key-secret-id (the stack's \
                                CursorKeySecretArn output)"
                        .into());
                }
                let cfg = aws_config().await?;
                let d = deployment(&cli, &cfg, a.cursor_key_secret_id).await?;
                Backend::Dynamodb {
                    table: d.table,
                    secrets_prefix: d.secrets_prefix.ok_or_else(no_prefix)?,
                    cursor_key_secret_id: d.server_secret_id.ok_or("the stack has no CursorKeySecretArn output")?,
                    allow_loopback_issuer: cli.allow_loopback_issuer.unwrap_or(false),
                }
            }
        };
        let dns = DnsServers::parse(&cli.dns_server)?;
        let limits = butterfly_api::Limits::new(
            butterfly_api::limits::AnonymousLimits {
                per_address_per_minute: a.anonymous_limit_per_minute,
                ..Default::default()
            },
            butterfly_core::limit::QuotaPolicy::per_minute(a.scim_rate_limit_per_minute),
        );
        return serve(ServeOptions { backend, addr: a.addr, public_url: a.public_url, demo: !a.no_demo, dns, limits })
            .await;
    }
    let (store, secrets, dynamo, stack_url) = open_store(&cli).await?;
    let tenants = TenantService::new(store.clone(), Arc::new(SystemClock));
    let tokens = ScimTokenService::new(store.clone(), Arc::new(SystemClock));
    let setup_links = SetupLinkService::new(store.clone(), Arc::new(SystemClock), SsoPolicy::default().absolute_secs);
    let allow_loopback = cli.allow_loopback_issuer.unwrap_or(dynamo.is_none());
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
                        domains
                            .verify(&tenant, &domain, &butterfly_core::actor::Actor::Operator)
                            .await
                            .map(|c| c.record)
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
            let sso = SsoSettingsService::new(store, secrets, Arc::new(idp), Arc::new(SystemClock), policy);
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
        Command::Tenant(TenantCmd::Create { name, domains, owner_email, public_url, json }) => {
            let domains = EmailDomain::parse_list(&domains)?;
            // Everything the setup link needs is checked before the tenant exists.
            let owner = match &owner_email {
                Some(e) => Some((parse_owner(e)?, link_base(public_url, stack_url, dynamo.is_none())?)),
                None => None,
            };
            let t = tenants.create_tenant(&name, &domains).await.map_err(|e| e.to_string())?;
            let link = match &owner {
                Some((owner, base)) => {
                    Some((setup_links.issue(&t.id, Some(owner)).await.map_err(|e| e.to_string())?, base))
                }
                None => None,
            };
            if json {
                let mut v = tenant_json(&t);
                if let (Some((issued, base)), Some(o)) = (&link, v.as_object_mut()) {
                    o.extend(setup_link_json(issued, base));
                }
                println!("{v}");
            } else {
                println!("Created tenant {:?}: {}", t.name, t.id);
                match &link {
                    Some((issued, base)) => print_setup_link(issued, base),
                    None => println!("Next: butterfly scim-token issue --tenant {}", t.id),
                }
            }
            Ok(())
        }
        Command::Tenant(TenantCmd::OwnerLink { tenant, owner_email, public_url, json }) => {
            let tenant = parse_tenant(&tenant)?;
            let owner = owner_email.as_deref().map(parse_owner).transpose()?;
            let base = link_base(public_url, stack_url, dynamo.is_none())?;
            let issued = setup_links.issue(&tenant, owner.as_ref()).await.map_err(|e| match e {
                butterfly_core::Error::InvalidValue(_) => {
                    format!("tenant {tenant} has no owner yet: give --owner-email EMAIL")
                }
                e => e.to_string(),
            })?;
            if json {
                let mut v = json!({ "tenant_id": tenant.as_str() });
                if let Some(o) = v.as_object_mut() {
                    o.extend(setup_link_json(&issued, &base));
                }
                println!("{v}");
            } else {
                print_setup_link(&issued, &base);
                if issued.replaced_unused {
                    println!("The previous setup link no longer works.");
                }
            }
            Ok(())
        }
        Command::User(UserCmd::SetRole { tenant, email, role, json }) => {
            let tenant = parse_tenant(&tenant)?;
            let role = Role::from_name(&role).map_err(|e| e.to_string())?;
            let team = TeamService::new(store.clone(), Arc::new(SystemClock));
            let changed =
                team.change_role_by_email(&tenant, &Actor::Operator, &email, role).await.map_err(|e| match e {
                    butterfly_core::Error::NotFound(_) => {
                        format!("tenant {tenant} has no member with the email {email:?}")
                    }
                    e => e.to_string(),
                })?;
            let u = &changed.user;
            if json {
                println!(
                    "{}",
                    json!({ "tenant_id": tenant.as_str(), "user_id": u.id.to_string(), "email": u.user_name.as_str(),
                            "role": u.effective_role().as_str(), "role_source": u.role_source, "warning": changed.warning })
                );
            } else {
                println!("{} is now {}", u.user_name, u.effective_role().as_str());
                if let Some(w) = &changed.warning {
                    println!("Note: {w}");
                }
            }
            Ok(())
        }
        Command::Tenant(TenantCmd::List { json }) => {
            let ts = tenants.list_tenants().await.map_err(|e| e.to_string())?;
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
                TokenCmd::Rotate { immediate, overlap_hours, .. } => {
                    RotationMode::requested(*immediate, *overlap_hours).map_err(|e| format!("--overlap-hours: {e}"))?
                }
                _ => RotationMode::default(),
            };
            let tenant = parse_tenant(tenant)?;
            let Some(rotate) = rotate else {
                let live = tokens.live_tokens(&tenant).await.map_err(|e| e.to_string())?;
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
                tokens.rotate_token_as(&tenant, mode, &Actor::Operator).await
            } else {
                tokens.issue_token(&tenant).await
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
                if let Some(o) = &issued.overlapped {
                    println!(
                        "The previous token {}… keeps working until this one is first used, or until {} at the latest.",
                        o.display_prefix,
                        o.expires.map(|t| t.to_rfc3339()).unwrap_or_default()
                    );
                }
                match issued.ended {
                    0 => {}
                    1 => println!("The previous token no longer works."),
                    n => println!("The {n} previous tokens no longer work."),
                }
                if rotate && issued.ended == 0 && issued.overlapped.is_none() {
                    println!("The tenant had no token before: this is its first.");
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::Parser;

    fn kind(args: &[&str]) -> Result<StoreKind, String> {
        Cli::try_parse_from(std::iter::once("butterfly").chain(args.iter().copied())).unwrap().store_kind()
    }

    #[test]
    fn naming_a_deployment_means_dynamodb() {
        assert_eq!(kind(&[]), Ok(StoreKind::Embedded));
        assert_eq!(kind(&["--store", "dynamodb"]), Ok(StoreKind::Dynamodb));
        for flag in [["--stack", "s"], ["--table", "t"], ["--secrets-prefix", "butterfly/prod"]] {
            assert_eq!(kind(&flag), Ok(StoreKind::Dynamodb), "{flag:?}");
            let e = kind(&["--store", "embedded", flag[0], flag[1]]).unwrap_err();
            assert!(e.contains(flag[0]) && e.contains("--store embedded"), "{e}");
        }
    }

    #[test]
    fn a_secret_name_matches_its_arn() {
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:butterfly/prod/server-key-AbC123";
        assert!(same_secret(arn, arn));
        assert!(same_secret("butterfly/prod/server-key", arn));
        assert!(!same_secret("butterfly/prod/server", arn));
        assert!(!same_secret("butterfly/staging/server-key", arn));
        assert!(same_secret("butterfly/x/server-key", "butterfly/x/server-key"));
        assert!(!same_secret("butterfly/x/other", "butterfly/x/server-key"));
    }
}

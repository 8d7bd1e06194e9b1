//! The command line. Every command takes `--data-dir`; `--json` prints one JSON object.

use crate::serve::{serve, ServeOptions};
use butterfly_aws::DynamoStore;
use butterfly_core::clock::SystemClock;
use butterfly_core::ids::TenantId;
use butterfly_core::ports::Store;
use butterfly_core::service::AdminService;
use butterfly_core::tenant::Tenant;
use butterfly_core::token::TokenRecord;
use butterfly_embedded::EmbeddedStore;
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
    /// Run the local stack: every endpoint on one port over the embedded store.
    Serve(ServeArgs),
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCmd),
    /// Issue, rotate or inspect a tenant's SCIM bearer token.
    #[command(subcommand, name = "scim-token")]
    ScimToken(TokenCmd),
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
    /// Replace the tenant's SCIM token; the old one stops working at once (shown once).
    Rotate {
        #[arg(long)]
        tenant: String,
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
    })
}

fn parse_tenant(s: &str) -> Result<TenantId, String> {
    TenantId::parse(s).ok_or_else(|| format!("{s:?} is not a tenant id (see 'butterfly tenant list')"))
}

/// Opens the store the command works on.
async fn open_store(cli: &Cli) -> Result<(Arc<dyn Store>, Option<DynamoStore>), String> {
    match cli.store {
        StoreKind::Embedded => {
            let s = EmbeddedStore::open(&cli.data_dir).map_err(|e| e.to_string())?;
            Ok((Arc::new(s), None))
        }
        StoreKind::Dynamodb => {
            let table =
                cli.table.clone().ok_or("--store dynamodb needs --table NAME (the stack's TableName output)")?;
            let cfg = butterfly_aws::sdk_config().await;
            let s = DynamoStore::new(butterfly_aws::dynamodb_client(&cfg, None), table);
            Ok((Arc::new(s.clone()), Some(s)))
        }
    }
}

pub async fn run(mut cli: Cli) -> Result<(), String> {
    let command = cli.command.take().unwrap_or(Command::Serve(ServeArgs {
        addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
        public_url: None,
        no_demo: false,
    }));
    if let Command::Serve(a) = command {
        if cli.store != StoreKind::Embedded {
            return Err("the local stack serves the embedded store; on AWS the Lambdas serve the table".into());
        }
        return serve(ServeOptions {
            data_dir: cli.data_dir,
            addr: a.addr,
            public_url: a.public_url,
            demo: !a.no_demo,
        })
        .await;
    }
    let (store, dynamo) = open_store(&cli).await?;
    let admin = AdminService::new(store, Arc::new(SystemClock));
    match command {
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
                TokenCmd::Rotate { tenant, json } => (tenant, *json, Some(true)),
                TokenCmd::Show { tenant, json } => (tenant, *json, None),
            };
            let tenant = parse_tenant(tenant)?;
            let Some(rotate) = rotate else {
                let meta = admin.token_metadata(&tenant).await.map_err(|e| e.to_string())?;
                match (meta, json_out) {
                    (Some(m), true) => println!("{}", token_meta_json(&m)),
                    (None, true) => println!("{}", json!({"tenant_id": tenant.as_str(), "token": null})),
                    (Some(m), false) => println!(
                        "Token {}… created {}, last used {}",
                        m.display_prefix,
                        m.created.to_rfc3339(),
                        m.last_used.map(|t| t.to_rfc3339()).unwrap_or_else(|| "never".into())
                    ),
                    (None, false) => {
                        println!("Tenant {tenant} has no SCIM token: butterfly scim-token issue --tenant {tenant}")
                    }
                }
                return Ok(());
            };
            let issued = if rotate { admin.rotate_token(&tenant).await } else { admin.issue_token(&tenant).await }
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
                if rotate {
                    println!("The previous token no longer works.");
                }
            }
            Ok(())
        }
    }
}

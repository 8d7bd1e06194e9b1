//! `bare`: the HTTP stack's own limit on this machine, for the side-by-side benchmark. A bare axum
//! server (hyper HTTP/1.1, tokio's multi-threaded runtime, one route, no layers) that answers
//! `GET {prefix}/Users` with the bytes in `--body-file` (the lookup answer Butterfly gave in the
//! same run) and nothing else: no token check, no store, no log. Loopback only.
//!
//! ```text
//! bare --addr 127.0.0.1:PORT --body-file lookup.json [--prefix /scim/v2]
//! ```

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use clap::Parser;
use std::net::SocketAddr;
use std::process::ExitCode;

#[derive(Parser)]
struct Cli {
    #[arg(long)]
    addr: SocketAddr,
    #[arg(long)]
    body_file: std::path::PathBuf,
    #[arg(long, default_value = "/scim/v2")]
    prefix: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if !cli.addr.ip().is_loopback() {
        eprintln!("bare: loopback addresses only ({})", cli.addr);
        return ExitCode::from(2);
    }
    let body = match std::fs::read(&cli.body_file) {
        Ok(b) if !b.is_empty() => bytes::Bytes::from(b),
        Ok(_) => {
            eprintln!("bare: {} is empty", cli.body_file.display());
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("bare: {}: {e}", cli.body_file.display());
            return ExitCode::FAILURE;
        }
    };
    let route = format!("{}/Users", cli.prefix.trim_end_matches('/'));
    let app = axum::Router::new().route(
        &route,
        get(move || {
            let body = body.clone();
            async move { ([(CONTENT_TYPE, "application/scim+json")], body) }
        }),
    );
    let listener = match tokio::net::TcpListener::bind(cli.addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bare: cannot listen on {}: {e}", cli.addr);
            return ExitCode::FAILURE;
        }
    };
    match axum::serve(listener, app).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bare: {e}");
            ExitCode::FAILURE
        }
    }
}

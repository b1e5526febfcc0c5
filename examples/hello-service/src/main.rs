//! hello-service: the web service ship's tests, benchmarks and README ship.
//!
//! Listens on 0.0.0.0:$PORT (default 3000). `GET /api/health` answers
//! `{"status":"ok","version":"…","rpc_url_set":bool,"subgraph_url_set":bool}`: whether
//! RPC_URL and SUBGRAPH_URL are set, never their values. Exits cleanly on SIGTERM or Ctrl-C.

use axum::{routing::get, Json, Router};
use serde_json::{json, Value};
use std::net::SocketAddr;

#[derive(Clone, Copy)]
struct Settings {
    rpc_url_set: bool,
    subgraph_url_set: bool,
}

fn is_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

async fn health(settings: Settings) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "rpc_url_set": settings.rpc_url_set,
        "subgraph_url_set": settings.subgraph_url_set,
    }))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    eprintln!("hello-service: shutting down");
}

#[tokio::main]
async fn main() {
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => match p.parse() {
            Ok(n) => n,
            Err(_) => {
                eprintln!("hello-service: PORT={p:?} is not a port number");
                std::process::exit(2);
            }
        },
        Err(_) => 3000,
    };
    let settings = Settings { rpc_url_set: is_set("RPC_URL"), subgraph_url_set: is_set("SUBGRAPH_URL") };
    let app = Router::new().route("/api/health", get(move || health(settings)));
    let addr = SocketAddr::from(([0, 0, 0, 0], port));
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hello-service: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("hello-service {} listening on {addr}", env!("CARGO_PKG_VERSION"));
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await {
        eprintln!("hello-service: {e}");
        std::process::exit(1);
    }
}

//! `tartanctl`: the calicoctl-style operator CLI of a Tartan fabric. This file owns the entry
//! point (parsing, the runtime, exit codes), the dispatch to the command modules, and the two
//! small commands `version` and `completion`.
//!
//! Modules: `cli` (options and help), `context` (API address, token, errors), `kinds` (table
//! columns per kind), `docs` (resource files), `resources` (get/apply/delete/patch/label),
//! `ipam_show` and `ipam` (address management), `node` (BGP status), `output` (formatting).

mod cli;
mod context;
mod credential;
mod docs;
mod ipam;
mod ipam_show;
mod kinds;
mod node;
mod output;
mod policy;
mod resources;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use serde_json::Value;

use cli::{Cli, Command, DatastoreCommand, IpamCommand, NodeCommand, PolicyCommand, VersionArgs};
use context::{Ctx, Error, Result};
use output::emit;
use resources::Write;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and --version go to stdout with status 0; usage errors are errors (1).
            let _ = e.print();
            return if e.use_stderr() { ExitCode::FAILURE } else { ExitCode::SUCCESS };
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tartanctl: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tartanctl: {e}");
            ExitCode::from(e.exit)
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    if let Command::Completion(args) = &cli.command {
        let mut out = Vec::new();
        clap_complete::generate(args.shell, &mut Cli::command(), "tartanctl", &mut out);
        emit(&String::from_utf8_lossy(&out));
        return Ok(());
    }
    if let Command::Version(VersionArgs { client: true }) = &cli.command {
        emit(&client_version());
        return Ok(());
    }
    if let Command::Datastore(DatastoreCommand::Migrate(args)) = &cli.command {
        return migrate(args).await;
    }
    let ctx = Ctx::resolve(&cli.global)?;
    match cli.command {
        Command::Get(args) => resources::get(&ctx, args).await,
        Command::Apply(args) => resources::write(&ctx, args, Write::Apply).await,
        Command::Create(args) => resources::write(&ctx, args, Write::Create).await,
        Command::Replace(args) => resources::write(&ctx, args, Write::Replace).await,
        Command::Delete(args) => resources::delete(&ctx, args).await,
        Command::Patch(args) => resources::patch(&ctx, args).await,
        Command::Label(args) => resources::label(&ctx, args).await,
        Command::Ipam(IpamCommand::Show(args)) => ipam_show::show(&ctx, args).await,
        Command::Ipam(IpamCommand::Check(args)) => ipam::check(&ctx, args).await,
        Command::Ipam(IpamCommand::Release(args)) => ipam::release(&ctx, args).await,
        Command::Ipam(IpamCommand::Configure(args)) => ipam::configure(&ctx, args).await,
        Command::Ipam(IpamCommand::Allocate(args)) => ipam::allocate(&ctx, args).await,
        Command::Node(NodeCommand::Status(args)) => node::status(&ctx, args).await,
        Command::Node(NodeCommand::Credential(cmd)) => credential::run(&ctx, cmd).await,
        Command::Policy(PolicyCommand::Explain(args)) => policy::explain(&ctx, args).await,
        Command::Version(args) => version(&ctx, args).await,
        Command::Datastore(_) => Ok(()),
        Command::Completion(_) => Ok(()),
    }
}

fn client_version() -> String {
    format!("Client Version:    v{}\n", env!("CARGO_PKG_VERSION"))
}

/// `version`: the client's, then the server's (from /healthz, else /openapi.json's info).
async fn version(ctx: &Ctx, args: VersionArgs) -> Result<()> {
    emit(&client_version());
    if args.client {
        return Ok(());
    }
    let api = ctx.connect_lenient()?;
    let health: Value = api.get("/healthz").await.map_err(|e| {
        Error::new(format!(
            "no server version: {e} (`tartanctl version --client` prints only the client's)"
        ))
    })?;
    let mut server = health.get("version").and_then(Value::as_str).map(str::to_string);
    if server.is_none() {
        if let Ok(doc) = api.get::<Value>("/openapi.json").await {
            server = doc.pointer("/info/version").and_then(Value::as_str).map(str::to_string);
        }
    }
    let server = match server {
        Some(v) => format!("v{v}"),
        None => "unknown (the server answers but does not tell its version without a valid token)"
            .to_string(),
    };
    let revision = health.get("revision").and_then(Value::as_u64).unwrap_or_default();
    emit(&format!(
        "Server Version:    {server}\nAPI:               {} (revision {revision})\n",
        api.url()
    ));
    Ok(())
}

/// `tartanctl datastore migrate`: sled into etcd, step by step on stderr.
async fn migrate(args: &cli::MigrateArgs) -> Result<()> {
    let tls = tartan_ipam::tls::client_config_from(
        args.etcd_ca_file.as_deref(),
        args.etcd_cert_file.as_deref(),
        args.etcd_key_file.as_deref(),
    )
    .map_err(|e| Error::new(format!("datastore migrate: TLS to etcd: {e}")))?;
    let target = tartan_ipam::store::etcd::EtcdConfig {
        endpoints: args.etcd_endpoints.clone(),
        prefix: args.etcd_prefix.clone(),
        tls,
    };
    let mut progress = |step: &str| eprintln!("migrate: {step}");
    let done = tartan_ipam::migrate::sled_to_etcd(&args.from_data_dir, &target, &mut progress)
        .await
        .map_err(|e| Error::new(format!("datastore migrate: {e}")))?;
    emit(&format!(
        "Copied {} resources, {} blocks and {} affinities into etcd under {} ({} keys verified).\n",
        done.resources, done.blocks, done.affinities, args.etcd_prefix, done.verified
    ));
    Ok(())
}

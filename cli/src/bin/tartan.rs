//! `tartan`: the daemons (`apiserver`, `node`, `bgp`) and, when `CNI_COMMAND` is set, the CNI
//! plugin. The modes arrive with their issues; until then this says so instead of pretending.

use std::process::ExitCode;

const USAGE: &str = "\
tartan — Tartan's daemons and CNI plugin

Usage: tartan <MODE> [OPTIONS]

Modes (each arrives with its issue; none is implemented yet):
  apiserver      the datastore and HTTP API (block IPAM over sled)
  node           the node agent: BGP speaker, route programmer, CNI handler
  bgp -c FILE    the BGP speaker alone (route server, reflector, injector)
  sandbox ...    a minimal container runtime for debugging

With CNI_COMMAND set, tartan runs as the CNI plugin of type `tartan`.

Options:
  -h, --help     print this help
  -V, --version  print the version";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some("-V" | "--version") => {
            println!("tartan {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some(mode) => {
            eprintln!(
                "tartan: `{mode}` is not implemented yet in this build (see `tartan --help`)"
            );
            ExitCode::from(2)
        }
    }
}

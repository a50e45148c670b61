//! `tartanctl`: the calicoctl-style operator CLI. Its commands arrive with the datastore issue.

use std::process::ExitCode;

const USAGE: &str = "\
tartanctl — operate a Tartan fabric

Usage: tartanctl <COMMAND>

Commands (arriving with the datastore issue; none is implemented yet):
  get | apply | create | replace | delete | patch | label   resources
  ipam show | check | release | configure                  address management
  node status                                              BGP sessions of a node
  version

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
        Some("-V" | "--version" | "version") => {
            println!("tartanctl {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some(cmd) => {
            eprintln!(
                "tartanctl: `{cmd}` is not implemented yet in this build (see `tartanctl --help`)"
            );
            ExitCode::from(2)
        }
    }
}

//! `mape`: the command-line entry point.
use clap::Parser;

#[derive(Parser)]
#[command(name = "mape", version, about = "MAP-E (RFC 7597) router whose NAT treats the 240-port budget as scarce")]
enum Cli {}

fn main() {
    let _ = Cli::parse();
}

//! `mape`: the command-line entry point. Each subcommand lives in its own module and
//! returns `anyhow::Result<ExitCode>`; errors print as one line on stderr with exit code 2.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod calc;
mod lab;
mod replay;
mod run;
mod show;

#[derive(Parser)]
#[command(
    name = "mape",
    version,
    about = "MAP-E (RFC 7597) router whose NAT treats the 240-port budget as scarce"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compute a CE's MAP-E parameters: IPv4 address, PSID, port set, CE IPv6 address.
    Calc(calc::CalcArgs),
    /// Replay a capture or a built-in scenario under several NAT policies: see when the port budget runs out.
    Replay(replay::ReplayArgs),
    /// Network-namespace lab: LAN hosts, CE, BR and an internet with real servers.
    Lab(lab::LabArgs),
    /// Run the daemon (CE or BR) on a TUN device.
    Run(run::RunArgs),
    /// Ask the running daemon: status and more.
    Show(show::ShowArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Calc(args) => calc::run(&args),
        Command::Replay(args) => replay::run(&args),
        Command::Lab(args) => lab::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Show(args) => show::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // One line, whatever the error chain holds.
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("mape: {msg}");
            ExitCode::from(2)
        }
    }
}

//! `mape`: the command-line entry point. Each subcommand lives in its own module and
//! returns `anyhow::Result<ExitCode>`; errors print as one line on stderr, each cause once,
//! with the status of [`exit::code_of`] (the table: [`exit::TABLE`]).
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod calc;
mod doctor;
mod exit;
mod lab;
mod manual;
mod passwd;
mod provision;
mod replay;
mod run;
mod show;
mod top;

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
    /// Fetch the MAP-E rule the line offers (HB46PP) and show the parameters it gives.
    Provision(provision::ProvisionArgs),
    /// Run the daemon (CE or BR) on a TUN device.
    Run(run::RunArgs),
    /// Ask the running daemon: status and more.
    Show(show::ShowArgs),
    /// Live view of the port budget, hosts, destinations and drops.
    Top(top::TopArgs),
    /// Check the machine, the line and the daemon; say what is wrong and how to fix it.
    Doctor(doctor::DoctorArgs),
    /// Hash a password for the LAN status page and print its `[web]` configuration line.
    Passwd(passwd::PasswdArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page mape(8) (roff), or write every page with --dir.
    Manpage {
        /// Write mape.8, one mape-<command>.8 per subcommand and mape.toml.5 into DIR.
        #[arg(long, value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Calc(args) => calc::run(&args),
        Command::Replay(args) => replay::run(&args),
        Command::Lab(args) => lab::run(&args),
        Command::Provision(args) => provision::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Show(args) => show::run(&args),
        Command::Top(args) => top::run(&args),
        Command::Doctor(args) => doctor::run(&args),
        Command::Passwd(args) => passwd::run(&args),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "mape", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Manpage { dir: Some(dir) } => {
            let cmd = <Cli as clap::CommandFactory>::command();
            manual::write_pages(cmd, &dir)
                .map(|pages| {
                    for p in pages {
                        println!("{}", p.display());
                    }
                    ExitCode::SUCCESS
                })
                .map_err(|e| anyhow::anyhow!("writing the manual into {}: {e}", dir.display()))
        }
        Command::Manpage { dir: None } => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd)
                .section("8")
                .render(&mut page)
                .map_err(anyhow::Error::from)
                .and_then(|()| {
                    use std::io::Write;
                    page.extend_from_slice(exit::man_section().as_bytes());
                    std::io::stdout().write_all(&page)?;
                    Ok(ExitCode::SUCCESS)
                })
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // One line, whatever the error chain holds.
            eprintln!("mape: {}", exit::one_line(&e));
            ExitCode::from(exit::code_of(&e))
        }
    }
}

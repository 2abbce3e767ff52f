//! `mape passwd`: reads the status page's password — from the terminal without echo,
//! twice, or one line of standard input with `--stdin` — and prints the `[web]` line
//! with its argon2 hash (a PHC string) to paste into the configuration.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use anyhow::{anyhow, Result};
use clap::Args;

#[derive(Args, Debug)]
pub(crate) struct PasswdArgs {
    /// Read the password as one line of standard input (for scripts), not from the terminal.
    #[arg(long)]
    stdin: bool,
}

pub(crate) fn run(args: &PasswdArgs) -> Result<ExitCode> {
    let password = if args.stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\n', '\r']).to_string()
    } else {
        let first = rpassword::prompt_password("password for the status page: ")?;
        let again = rpassword::prompt_password("again: ")?;
        if first != again {
            return Err(anyhow!("the two passwords differ; nothing written"));
        }
        first
    };
    if password.is_empty() {
        return Err(anyhow!("an empty password; nothing written"));
    }
    let hash = mape_daemon::web::auth::hash_password(&password)?;
    eprintln!("# under [web] in the configuration, beside listen = \"<LAN address>:<port>\":");
    println!("password_hash = \"{hash}\"");
    Ok(ExitCode::SUCCESS)
}

//! `mape provision hb46pp`: one HB46PP exchange (TXT discovery, GET, answer) through the
//! line's resolvers, printed with the MAP-E parameters it gives for an End-user prefix.
//! The `--json` object is `mape calc --json`'s plus the HB46PP keys. `mape provision
//! dhcpv6` is in [`dhcpv6`].

mod dhcpv6;

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use mape_provision::machine::{HttpResult, TxtResult};
use mape_provision::request::Credentials;
use mape_provision::shell::{run_once, Shell, ShellConfig, Step};
use mape_provision::{Client, Config, FailureClass, Offer, Outcome};
use mape_rules::Ipv6Net;
use rand::SeedableRng;
use serde::Serialize;

use crate::calc;

/// Exit codes of `mape provision hb46pp`, one per failure class (2 is a usage error).
const EXIT_CODES: &str = "Exit status:
  0  the server offered MAP-E and the prefix maps
  2  usage error (bad argument, no global IPv6 address without --prefix)
  3  no record: 4over6.info has no TXT record (NXDOMAIN/NODATA): the line has no HB46PP
  4  DNS failure: the resolvers did not answer or failed
  5  server unreachable: no HTTP answer (connect, TLS verification, time-out)
  6  refused: the server answered 403 or 404 (it does not know this address)
  7  nothing offered: order is empty, or only technologies mape does not run
  8  bad answer: unusable TXT record, JSON, status, redirect, or no rule for the prefix";

/// Arguments of `mape provision`.
#[derive(Args, Debug)]
pub(crate) struct ProvisionArgs {
    #[command(subcommand)]
    method: Method,
}

#[derive(Subcommand, Debug)]
enum Method {
    /// One HB46PP exchange: TXT record of 4over6.info, the GET, the answer, the parameters.
    #[command(after_help = EXIT_CODES)]
    Hb46pp(Hb46ppArgs),
    /// One DHCPv6 exchange on the WAN: the delegated prefix (IA_PD) and the RFC 7598
    /// options (S46_CONT_MAPE), then the parameters.
    #[command(after_help = dhcpv6::EXIT_CODES)]
    Dhcpv6(dhcpv6::Dhcpv6Args),
    /// Delete the HB46PP answer the daemon keeps (<state dir>/<tun>.hb46pp.json, HB46PP
    /// 3.5): the next start fetches anew and cannot fall back on it.
    Erase(EraseArgs),
}

/// Arguments of `mape provision erase`.
#[derive(Args, Debug)]
pub(crate) struct EraseArgs {
    /// Configuration file (its [state] dir and [tun] name locate the answer).
    #[arg(long, short, default_value = mape_daemon::config::DEFAULT_CONFIG)]
    config: PathBuf,
}

/// Arguments of `mape provision hb46pp`.
#[derive(Args, Debug)]
pub(crate) struct Hb46ppArgs {
    /// The line's DNS resolver (repeatable; default: /etc/resolv.conf).
    #[arg(long = "dns", value_name = "ADDR")]
    dns: Vec<IpAddr>,
    /// End-user prefix (delegated prefix) or CE address to resolve the BMR for
    /// (default: the host's first global IPv6 address).
    #[arg(long, value_name = "PREFIX|ADDRESS")]
    prefix: Option<Ipv6Net>,
    /// Trust roots for t=b (PEM, repeatable; default: the Mozilla roots).
    #[arg(long, value_name = "FILE")]
    ca_file: Vec<PathBuf>,
    /// Time-out of each DNS query and of each GET, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    timeout: u64,
    /// HB46PP user (sent with --pass under the spec's rules).
    #[arg(long, requires = "pass")]
    user: Option<String>,
    /// HB46PP password.
    #[arg(long, requires = "user")]
    pass: Option<String>,
    /// With --user: send the credentials only to this host, over verified https.
    #[arg(long, value_name = "HOST", requires = "user")]
    server_name: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// The JSON output.
#[derive(Serialize)]
struct ProvisionJson {
    #[serde(flatten)]
    calc: calc::CalcJson,
    source: &'static str,
    enabler_name: Option<String>,
    service_name: Option<String>,
    isp_name: Option<String>,
    ttl: Option<u32>,
    mesh: bool,
    rules_count: usize,
    url: String,
    order: Vec<String>,
    unsupported: Vec<String>,
}

/// Runs `mape provision`.
pub(crate) fn run(args: &ProvisionArgs) -> Result<ExitCode> {
    match &args.method {
        Method::Hb46pp(a) => hb46pp(a),
        Method::Dhcpv6(a) => dhcpv6::run(a),
        Method::Erase(a) => {
            let (path, existed) = mape_daemon::provisioning::erase(&a.config)?;
            if existed {
                println!("erased {}", path.display());
            } else {
                println!("no stored answer at {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn exit_code(class: FailureClass) -> u8 {
    match class {
        FailureClass::NoRecord => 3,
        FailureClass::Dns => 4,
        FailureClass::Unreachable => 5,
        FailureClass::Refused => 6,
        FailureClass::NothingOffered => 7,
        FailureClass::BadAnswer => 8,
    }
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn hb46pp(args: &Hb46ppArgs) -> Result<ExitCode> {
    let prefix = match args.prefix {
        Some(p) => p,
        None => host_address()?,
    };
    let credentials = match (&args.user, &args.pass) {
        (Some(u), Some(p)) => {
            Some(Credentials::new(u, p, args.server_name.as_deref()).map_err(|e| anyhow!("{e}"))?)
        }
        _ => None,
    };
    let shell = Shell::new(&ShellConfig {
        resolvers: args.dns.clone(),
        ca_files: args.ca_file.clone(),
        timeout: Duration::from_secs(args.timeout.max(1)),
    })?;
    let config = Config {
        info: mape_provision::request::ClientInfo::mape(),
        credentials,
    };
    let rng = rand::rngs::StdRng::from_os_rng();
    let mut client = Client::new(config, rng, None, false);
    let (steps, outcome) = run_once(&mut client, &shell, now);
    let mut out = String::new();
    if !args.json {
        out += &transcript(&steps);
    }
    let offer = match outcome {
        Outcome::Configure(offer) => offer,
        Outcome::Failed(f) => {
            calc::write_stdout(&out)?;
            eprintln!("mape: provision hb46pp: {}", f.detail);
            return Ok(ExitCode::from(exit_code(f.class)));
        }
        // A fresh client runs nothing, so its first success configures.
        Outcome::Unchanged => bail!("provision hb46pp: no answer kept"),
    };
    let url = client
        .last_good()
        .map(|l| l.url.clone())
        .unwrap_or_default();
    let p = match offer.provision(&prefix) {
        Ok(p) => p,
        Err(e) => {
            calc::write_stdout(&out)?;
            eprintln!("mape: provision hb46pp: {url}: {e}");
            return Ok(ExitCode::from(exit_code(FailureClass::BadAnswer)));
        }
    };
    let o = calc::Outcome::from(p);
    if args.json {
        let j = json(calc::json(&o), &offer, url);
        out += &(serde_json::to_string(&j)? + "\n");
    } else {
        out += &summary(&offer);
        out += &calc::text(&o);
    }
    calc::write_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}

fn json(calc: calc::CalcJson, offer: &Offer, url: String) -> ProvisionJson {
    let m = offer.map_e.as_ref();
    ProvisionJson {
        calc,
        source: "hb46pp",
        enabler_name: offer.enabler_name.clone(),
        service_name: offer.service_name.clone(),
        isp_name: offer.isp_name.clone(),
        ttl: offer.ttl,
        mesh: m.is_some_and(|m| m.mesh),
        rules_count: m.map_or(0, |m| m.domain.rules().len()),
        url,
        order: offer.order.iter().map(|t| t.to_string()).collect(),
        unsupported: offer.unsupported().iter().map(|t| t.to_string()).collect(),
    }
}

/// What was asked and answered, one line per exchange.
fn transcript(steps: &[Step]) -> String {
    let mut t = String::new();
    for s in steps {
        match s {
            Step::Txt(TxtResult::Records(r)) => {
                for rec in r {
                    t += &format!("txt 4over6.info \"{}\"\n", String::from_utf8_lossy(rec));
                }
            }
            Step::Txt(TxtResult::NoRecord) => t += "txt 4over6.info none\n",
            Step::Txt(TxtResult::Failed(e)) => t += &format!("txt 4over6.info failed: {e}\n"),
            Step::Get(g) => {
                let (req, res) = &**g;
                let r = match res {
                    HttpResult::Response {
                        status,
                        location: Some(l),
                        ..
                    } if *status == 307 => format!("307 -> {l}"),
                    HttpResult::Response { status, body, .. } => {
                        format!("{status} ({} bytes)", body.len())
                    }
                    HttpResult::NoAnswer(e) => format!("no answer: {e}"),
                };
                t += &format!("get {} t={}: {r}\n", req.url, req.verify.letter());
            }
        }
    }
    t
}

fn summary(o: &Offer) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let order: Vec<String> = o.order.iter().map(|t| t.to_string()).collect();
    let mut t = format!(
        "enabler {} service {} ttl {}\norder {}\n",
        opt(&o.enabler_name),
        opt(&o.service_name),
        o.ttl.map_or("none".into(), |t| format!("{t}s")),
        order.join(",")
    );
    let unsupported: Vec<String> = o.unsupported().iter().map(|t| t.to_string()).collect();
    if !unsupported.is_empty() {
        t += &format!("offered, not run by mape: {}\n", unsupported.join(","));
    }
    if let Some(m) = &o.map_e {
        t += &format!(
            "map_e {} rules, {}, iid {}\n",
            m.domain.rules().len(),
            if m.mesh { "mesh" } else { "hub-and-spoke" },
            m.iid_format
        );
    }
    t
}

/// The host's first global IPv6 address that is neither temporary, deprecated nor
/// tentative, as a /128.
fn host_address() -> Result<Ipv6Net> {
    mape_daemon::provisioning::wan::global_address(None)
        .and_then(mape_daemon::provisioning::wan::as_end_user)
        .ok_or_else(|| anyhow!("no global IPv6 address on this host; give --prefix"))
}

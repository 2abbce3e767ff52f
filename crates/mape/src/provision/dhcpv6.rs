//! `mape provision dhcpv6`: one DHCPv6 exchange on the WAN interface (Solicit, Advertise,
//! Request, Reply; with `--renew` also the Renew at T1), printed with the delegated prefix
//! and the MAP-E parameters its RFC 7598 options give. The `--json` object is
//! `mape calc --json`'s plus the DHCPv6 keys. With `--stateless` (an RA-only line that
//! delegates no prefix) it is one Information-request and its Reply (RFC 8415 §18.2.6),
//! resolved for `--prefix` or the interface's global address.

use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use clap::Args;
use mape_provision::dhcpv6::shell::{self, Socket};
use mape_provision::dhcpv6::{Client, Config, Duid, Event, FailureClass, Lease};
use mape_rules::{IidFormat, Ipv6Net};
use rand::SeedableRng;
use serde::Serialize;

use crate::calc;

/// Exit codes of `mape provision dhcpv6`, the classes of `mape provision hb46pp`'s.
pub(super) const EXIT_CODES: &str = "Exit status:
  0  a prefix was delegated and the RFC 7598 options map it
  2  usage error (bad argument, unknown interface, the socket could not be opened)
  5  server unreachable: no DHCPv6 server answered within --timeout
  6  refused: the server answered with an error status (UnspecFail, NotOnLink, ...)
  7  nothing offered: no prefix (NoPrefixAvail), or no OPTION_S46_CONT_MAPE (94)
  8  bad answer: option 94 is malformed, or no S46 rule covers the prefix";

/// Arguments of `mape provision dhcpv6`.
#[derive(Args, Debug)]
pub(crate) struct Dhcpv6Args {
    /// The WAN interface (the client binds [::]:546 on it; needs root).
    #[arg(long, value_name = "IF")]
    interface: String,
    /// End-user prefix or CE address to resolve the BMR for (default: the delegated
    /// prefix).
    #[arg(long, value_name = "PREFIX|ADDRESS")]
    prefix: Option<Ipv6Net>,
    /// Interface identifier format: rfc7597 (default) or draft03 (RFC 7598 does not say).
    #[arg(long, value_name = "FORMAT")]
    iid_format: Option<String>,
    /// Where the client DUID is kept (DUID-LLT, made on first use); default: DUID-LL of
    /// the interface's MAC, not stored.
    #[arg(long, value_name = "FILE")]
    duid_file: Option<PathBuf>,
    /// Seconds to wait for the exchange (and, with --renew, for the Renew after T1).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    timeout: u64,
    /// After the Reply, wait for T1, Renew, and print the lease the Renew gave.
    #[arg(long)]
    renew: bool,
    /// Information-request only (RFC 8415 §18.2.6): for an RA-only line whose /64 is
    /// on-link and which delegates no prefix. The BMR is resolved for --prefix, else the
    /// interface's global IPv6 address.
    #[arg(long, conflicts_with = "renew")]
    stateless: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// The JSON output of `--stateless`.
#[derive(Serialize)]
struct StatelessJson {
    #[serde(flatten)]
    calc: calc::CalcJson,
    source: &'static str,
    mode: &'static str,
    interface: String,
    end_user_prefix: String,
    refresh: u32,
    server_duid: String,
    client_duid: String,
    dns: Vec<Ipv6Addr>,
}

/// The JSON output.
#[derive(Serialize)]
struct Dhcpv6Json {
    #[serde(flatten)]
    calc: calc::CalcJson,
    source: &'static str,
    interface: String,
    delegated_prefix: String,
    t1: u32,
    t2: u32,
    preferred_lifetime: u32,
    valid_lifetime: u32,
    server_duid: String,
    client_duid: String,
    dns: Vec<Ipv6Addr>,
    renewed: bool,
}

fn exit_code(class: FailureClass) -> u8 {
    match class {
        FailureClass::NoServer => 5,
        FailureClass::Refused => 6,
        FailureClass::NoPrefix => 7,
    }
}

const NOTHING_OFFERED: u8 = 7;
const BAD_ANSWER: u8 = 8;

fn fail(out: &str, code: u8, detail: &str) -> Result<ExitCode> {
    calc::write_stdout(out)?;
    eprintln!("mape: provision dhcpv6: {detail}");
    Ok(ExitCode::from(code))
}

/// The exchange line by line (none with `--json`).
fn transcript(log: &shell::RunLog, json: bool) -> String {
    if json {
        return String::new();
    }
    log.lines.iter().map(|l| format!("{l}\n")).collect()
}

/// No lease or configuration: the client's last failure, else no server answered
/// (`silent` says so in words).
fn gave_up(
    out: &str,
    client: &Client<rand::rngs::StdRng>,
    silent: impl FnOnce() -> String,
) -> Result<ExitCode> {
    match client.last_failure() {
        Some(f) => fail(out, exit_code(f.class), &f.detail),
        None => fail(out, exit_code(FailureClass::NoServer), &silent()),
    }
}

/// Runs `mape provision dhcpv6`.
pub(crate) fn run(args: &Dhcpv6Args) -> Result<ExitCode> {
    let iid = args
        .iid_format
        .as_deref()
        .map(|f| {
            f.parse::<IidFormat>()
                .map_err(|e| anyhow!("--iid-format: {e}"))
        })
        .transpose()?;
    let mac = shell::mac(&args.interface)?;
    let unix = super::now().as_secs();
    let duid = match &args.duid_file {
        Some(p) => shell::load_or_create_duid(p, mac, unix)?,
        None => Duid::link_layer(mac),
    };
    let socket = Socket::open(&args.interface)?;
    let config = Config {
        duid: duid.clone(),
        iaid: shell::iaid(mac),
        hint: None,
    };
    let rng = rand::rngs::StdRng::from_os_rng();
    if args.stateless {
        return stateless(args, Client::stateless(config, rng), &socket, iid, &duid);
    }
    let mut client = Client::new(config, rng);
    // The machine's clock: time since this run began.
    let t0 = Instant::now();
    let now = || t0.elapsed();
    let timeout = Duration::from_secs(args.timeout.max(1));
    client.start(now());
    let mut log = shell::run(&mut client, &socket, now, timeout, |e| {
        matches!(e, Event::Bound { .. })
    })?;
    let mut renewed = false;
    if args.renew {
        if let Some(t1) = client.lease().and_then(Lease::t1_at) {
            let more = shell::run(&mut client, &socket, now, t1 + timeout, |e| {
                matches!(e, Event::Bound { .. } | Event::Lost { .. })
            })?;
            renewed = matches!(more.events.last(), Some(Event::Bound { .. }));
            log.events.extend(more.events);
            log.lines.extend(more.lines);
        }
    }
    let mut out = transcript(&log, args.json);
    let lease = log.events.iter().rev().find_map(|e| match e {
        Event::Bound { lease, .. } => Some(lease.clone()),
        _ => None,
    });
    let Some(lease) = lease else {
        return gave_up(&out, &client, || {
            format!(
                "no DHCPv6 server answered on {} within {}s",
                args.interface,
                timeout.as_secs()
            )
        });
    };
    if args.renew && !renewed {
        return fail(
            &out,
            exit_code(FailureClass::NoServer),
            &format!(
                "no Reply to Renew within {}s after T1 ({}s)",
                timeout.as_secs(),
                lease.t1
            ),
        );
    }
    let prefix = lease.prefix.prefix;
    if !lease.has_s46() {
        return fail(
            &out,
            NOTHING_OFFERED,
            &format!("{prefix} delegated, but the Reply has no OPTION_S46_CONT_MAPE (94)"),
        );
    }
    let p = match lease.provision(args.prefix.as_ref(), iid, &[]) {
        Ok(p) => p,
        Err(e) => return fail(&out, BAD_ANSWER, &e.to_string()),
    };
    let o = calc::Outcome::from(p);
    if args.json {
        let j = Dhcpv6Json {
            calc: calc::json(&o),
            source: "dhcpv6",
            interface: args.interface.clone(),
            delegated_prefix: prefix.to_string(),
            t1: lease.t1,
            t2: lease.t2,
            preferred_lifetime: lease.prefix.preferred,
            valid_lifetime: lease.prefix.valid,
            server_duid: shell_hex(&lease.server_id),
            client_duid: duid.to_hex(),
            dns: lease.dns.clone(),
            renewed,
        };
        out += &(serde_json::to_string(&j)? + "\n");
    } else {
        out += &format!(
            "delegated {prefix} preferred {}s valid {}s t1 {}s t2 {}s{}\nserver {}\n",
            lease.prefix.preferred,
            lease.prefix.valid,
            lease.t1,
            lease.t2,
            if renewed { " (renewed)" } else { "" },
            shell_hex(&lease.server_id)
        );
        out += &calc::text(&o);
    }
    calc::write_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// `--stateless`: one Information-request exchange; the End-user prefix is `--prefix` or
/// the interface's global address (/128).
fn stateless(
    args: &Dhcpv6Args,
    mut client: Client<rand::rngs::StdRng>,
    socket: &Socket,
    iid: Option<IidFormat>,
    duid: &Duid,
) -> Result<ExitCode> {
    let t0 = Instant::now();
    let now = || t0.elapsed();
    let timeout = Duration::from_secs(args.timeout.max(1));
    client.start(now());
    let log = shell::run(&mut client, socket, now, timeout, |e| {
        matches!(e, Event::Informed { .. })
    })?;
    let mut out = transcript(&log, args.json);
    let Some(info) = client.information().cloned() else {
        return gave_up(&out, &client, || {
            format!(
                "no Reply to Information-request on {} within {}s",
                args.interface,
                timeout.as_secs()
            )
        });
    };
    if !info.has_s46() {
        return fail(
            &out,
            NOTHING_OFFERED,
            "the Reply to Information-request has no OPTION_S46_CONT_MAPE (94)",
        );
    }
    let end_user = args.prefix.or_else(|| {
        mape_daemon::provisioning::wan::global_address(Some(&args.interface))
            .and_then(mape_daemon::provisioning::wan::as_end_user)
    });
    let Some(end_user) = end_user else {
        return Err(anyhow!(
            "{} has no global IPv6 address to resolve the rule for: give --prefix",
            args.interface
        ));
    };
    let p = match info.provision(&end_user, iid, &[]) {
        Ok(p) => p,
        Err(e) => return fail(&out, BAD_ANSWER, &e.to_string()),
    };
    let o = calc::Outcome::from(p);
    if args.json {
        let j = StatelessJson {
            calc: calc::json(&o),
            source: "dhcpv6",
            mode: "stateless",
            interface: args.interface.clone(),
            end_user_prefix: end_user.to_string(),
            refresh: info.refresh,
            server_duid: shell_hex(&info.server_id),
            client_duid: duid.to_hex(),
            dns: info.dns.clone(),
        };
        out += &(serde_json::to_string(&j)? + "\n");
    } else {
        out += &format!(
            "stateless (no prefix delegated): end-user {end_user} refresh {}s\nserver {}\n",
            info.refresh,
            shell_hex(&info.server_id)
        );
        out += &calc::text(&o);
    }
    calc::write_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}

fn shell_hex(b: &[u8]) -> String {
    mape_provision::dhcpv6::machine::hex(b)
}

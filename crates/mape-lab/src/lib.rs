//! The lab: network namespaces with two LAN hosts, the CE running `mape run ce`, an ISP
//! running `mape run br`, and an "internet" with real servers (dnsmasq for a lab zone, two
//! HTTP servers, iperf3, a UDP echo, a TCP accept-and-close listener, coturn on demand)
//! and silent sinks that never answer.
//!
//! ```text
//!  lan1 192.168.10.10 ─┐                                    ┌─ inet 203.0.113.10 (dns, http, iperf3,
//!                     │                                    │      udp echo :7008, tcp close :7009)
//!                     ├─ br-lan 192.168.10.1 [ce] ce-wan ── isp-ce [isp] isp-inet ─┤  203.0.113.11 (http, turn)
//!  lan2 192.168.10.23 ─┘   2001:db8:0:1::2/64    2001:db8:0:1::1  203.0.113.1      └─ sink 198.51.100.99,
//!                                                                                       192.168.1.211 (silent)
//! ```
//! MAP rule (documentation ranges): 2001:db8::/40 → 192.0.2.0/24, EA 16, PSID offset 4 →
//! End-user prefix 2001:db8:12:3400::/56 gets 192.0.2.18, PSID 0x34, 240 ports. BR
//! 2001:db8:ffff::1. Every address a test sends to is held by a lab namespace. Names carry a
//! per-run prefix; everything is removed on drop, on `down`, and by `down --all` after a crash.

use std::fs;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub mod bench;
pub mod churn;
pub mod demo;
pub mod hb46pp;
pub mod storm;

/// Prefix shared by every lab namespace name (per run: `mlab<pid>-`).
pub const NS_FAMILY: &str = "mlab";
/// Where lab runs record what they created.
pub const STATE_DIR: &str = "/run/mape-lab";

/// Addresses of the lab.
pub mod addr {
    use std::net::Ipv4Addr;
    /// The CE's LAN address.
    pub const CE_LAN: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 1);
    /// The normal LAN host.
    pub const LAN1: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 10);
    /// The storm host.
    pub const LAN2: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 23);
    /// The CE's external IPv4 (rule: 2001:db8:12:34xx → 192.0.2.18).
    pub const CE_EXTERNAL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 18);
    /// Internet server (DNS, HTTP, iperf3, TURN primary).
    pub const SERVER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
    /// Second internet address (RFC 5780 needs two; a second HTTP server on port 80).
    pub const SERVER2: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 11);
    /// The ISP's IPv4 side.
    pub const ISP_INET: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
    /// A public address that never answers.
    pub const SINK: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 99);
    /// The seed's private target of another network (held silently by the sink host).
    pub const PRIVATE_TARGET: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 211);
    /// The CE's MAP IPv6 address (RFC 7597 IID).
    pub const CE_MAP: &str = "2001:db8:12:3400:0:c000:212:34";
    /// The BR.
    pub const BR: &str = "2001:db8:ffff::1";
    /// The lab zone's web host.
    pub const WWW: &str = "www.lab.example";
}

/// The 240-port set of the lab CE (PSID 0x34, a = 4, k = 8): first range 4928-4943.
pub const LAB_PORTS_FIRST: u16 = 4928;

/// Lab errors.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Not root.
    #[error("the lab needs root (network namespaces, veth, TUN); run it with sudo")]
    NotRoot,
    /// A tool is missing.
    #[error("missing tool {0}: run scripts/install-deps.sh")]
    Missing(String),
    /// A command failed.
    #[error("{cmd}: {detail}")]
    Command {
        /// The command line.
        cmd: String,
        /// stderr or the error.
        detail: String,
    },
    /// Something did not come up in time.
    #[error("{0} did not come up within {1:?}; logs in {2}")]
    Timeout(String, Duration, String),
    /// File system.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// How to build a lab.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// The `mape` binary to run as CE and BR.
    pub mape: PathBuf,
    /// NAT policy of the CE.
    pub policy: String,
    /// Extra `[nat]` TOML lines for the CE (timeouts, forwards, filtering, ...).
    pub nat_extra: String,
    /// Per-run prefix (default `mlab<pid>`).
    pub prefix: Option<String>,
    /// Start coturn on the two server addresses.
    pub turn: bool,
    /// RA-only line: the MAP address sits in the WAN's on-link /64 (2001:db8:12:3400::/64)
    /// and the CE answers neighbour discovery for it; no prefix is routed to the CE.
    pub onlink: bool,
}

impl LabOptions {
    /// Defaults: the running binary, policy `mape`.
    pub fn new(mape: PathBuf, policy: &str) -> Self {
        Self {
            mape,
            policy: policy.into(),
            nat_extra: String::new(),
            prefix: None,
            turn: false,
            onlink: false,
        }
    }
}

/// What a lab run created, on disk so `down` works after a crash.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LabState {
    /// Namespaces.
    pub namespaces: Vec<String>,
    /// Processes started (killed by PID).
    pub pids: Vec<u32>,
    /// Working directory (configs, logs).
    pub dir: PathBuf,
}

/// A running lab. Dropping it tears it down.
pub struct Lab {
    /// Per-run prefix.
    pub prefix: String,
    /// Working directory (configs, logs, sockets).
    pub dir: PathBuf,
    state: LabState,
    children: Vec<Child>,
    opts: LabOptions,
    daemons: Vec<u32>,
}

fn is_root() -> bool {
    // SAFETY-free check: effective uid from /proc.
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Runs a command, failing with its stderr.
pub fn run(cmd: &mut Command) -> Result<Output, LabError> {
    let text = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| LabError::Command {
        cmd: text.clone(),
        detail: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(LabError::Command {
            cmd: text,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out)
}

fn ip(args: &[&str]) -> Result<Output, LabError> {
    run(Command::new("ip").args(args))
}

/// Whether a lab test can run here: `true` when [`preflight`] passes; otherwise it says why
/// and returns `false` (the test skips), except under `CI=true`, where a lab that cannot
/// run is a failure and this panics.
pub fn possible_or_skip(what: &str) -> bool {
    match preflight() {
        Ok(()) => true,
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{what} cannot run under CI: {e}");
            }
            eprintln!("skipping {what}: {e}");
            false
        }
    }
}

/// Checks that the tools the lab needs exist.
pub fn preflight() -> Result<(), LabError> {
    if !is_root() {
        return Err(LabError::NotRoot);
    }
    for tool in ["ip", "dnsmasq", "iperf3", "dig", "curl", "python3"] {
        if Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .stdout(Stdio::null())
            .status()
            .map(|s| !s.success())
            .unwrap_or(true)
        {
            return Err(LabError::Missing(tool.into()));
        }
    }
    if !Path::new("/dev/net/tun").exists() {
        return Err(LabError::Missing("/dev/net/tun".into()));
    }
    Ok(())
}

const SILENT_SINK_PY: &str = r#"
import socket, select, sys
socks = []
for a in sys.argv[1:]:
    host, port = a.rsplit(':', 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, int(port)))
    socks.append(s)
while True:
    r, _, _ = select.select(socks, [], [], 3600)
    for s in r:
        s.recv(65535)  # read and never answer
"#;

impl Lab {
    /// Namespace name for a role.
    pub fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    /// Creates the namespaces and links, starts the servers and the two daemons, and waits
    /// until the CE answers on its control socket.
    pub fn up(opts: LabOptions) -> Result<Self, LabError> {
        preflight()?;
        let prefix = opts
            .prefix
            .clone()
            .unwrap_or_else(|| format!("{NS_FAMILY}{}", std::process::id()));
        let mut lab = Self::empty(prefix, opts)?;
        if let Err(e) = lab.build() {
            lab.teardown();
            return Err(e);
        }
        Ok(lab)
    }

    /// A lab with nothing in it yet: its working directory, named after `prefix`.
    fn empty(prefix: String, opts: LabOptions) -> Result<Self, LabError> {
        let dir = std::env::temp_dir().join(format!("mape-lab-{prefix}"));
        fs::create_dir_all(&dir)?;
        Ok(Self {
            prefix,
            dir: dir.clone(),
            state: LabState {
                dir,
                ..Default::default()
            },
            children: Vec::new(),
            opts,
            daemons: Vec::new(),
        })
    }

    fn save(&self) {
        let _ = fs::create_dir_all(STATE_DIR);
        if let Ok(text) = serde_json::to_string(&self.state) {
            let _ = fs::write(
                Path::new(STATE_DIR).join(format!("{}.json", self.prefix)),
                text,
            );
        }
    }

    fn add_ns(&mut self, role: &str) -> Result<String, LabError> {
        let ns = self.ns(role);
        self.state.namespaces.push(ns.clone());
        self.save();
        ip(&["netns", "add", &ns])?;
        self.exec_ok(&ns, &["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Runs a command inside namespace `ns` and returns its output (success or not).
    pub fn exec(&self, ns: &str, args: &[&str]) -> Result<Output, LabError> {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .output()
            .map_err(|e| LabError::Command {
                cmd: args.join(" "),
                detail: e.to_string(),
            })
    }

    /// Runs a command inside `ns`, failing on a non-zero exit.
    pub fn exec_ok(&self, ns: &str, args: &[&str]) -> Result<Output, LabError> {
        run(Command::new("ip").args(["netns", "exec", ns]).args(args))
    }

    /// Starts a long-running process in `ns`, logging to `dir/<name>.log`; killed by PID.
    pub fn spawn(&mut self, ns: &str, name: &str, args: &[&str]) -> Result<u32, LabError> {
        let log = fs::File::create(self.dir.join(format!("{name}.log")))?;
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| LabError::Command {
                cmd: args.join(" "),
                detail: e.to_string(),
            })?;
        let pid = child.id();
        self.state.pids.push(pid);
        self.children.push(child);
        self.save();
        Ok(pid)
    }

    fn veth(&self, a_ns: &str, a: &str, b_ns: &str, b: &str) -> Result<(), LabError> {
        // Create in a_ns directly so no device ever appears in the host namespace.
        self.exec_ok(
            a_ns,
            &[
                "ip", "link", "add", a, "type", "veth", "peer", "name", b, "netns", b_ns,
            ],
        )?;
        self.exec_ok(a_ns, &["ip", "link", "set", a, "up"])?;
        self.exec_ok(b_ns, &["ip", "link", "set", b, "up"])?;
        Ok(())
    }

    fn build(&mut self) -> Result<(), LabError> {
        let lan1 = self.add_ns("lan1")?;
        let lan2 = self.add_ns("lan2")?;
        let ce = self.add_ns("ce")?;
        let isp = self.add_ns("isp")?;
        let inet = self.add_ns("inet")?;
        let sink = self.add_ns("sink")?;

        // LAN: a bridge in the CE joins both hosts.
        self.exec_ok(&ce, &["ip", "link", "add", "br-lan", "type", "bridge"])?;
        self.exec_ok(&ce, &["ip", "link", "set", "br-lan", "up"])?;
        self.exec_ok(
            &ce,
            &["ip", "addr", "add", "192.168.10.1/24", "dev", "br-lan"],
        )?;
        for (ns, host, port) in [
            (&lan1, "192.168.10.10/24", "ce-lan1"),
            (&lan2, "192.168.10.23/24", "ce-lan2"),
        ] {
            self.veth(&ce, port, ns, "eth0")?;
            self.exec_ok(&ce, &["ip", "link", "set", port, "master", "br-lan"])?;
            self.exec_ok(ns, &["ip", "addr", "add", host, "dev", "eth0"])?;
            self.exec_ok(
                ns,
                &["ip", "route", "add", "default", "via", "192.168.10.1"],
            )?;
        }
        // WAN: CE ↔ ISP, IPv6 only.
        self.veth(&ce, "ce-wan", &isp, "isp-ce")?;
        let (ce6, isp6) = if self.opts.onlink {
            ("2001:db8:12:3400::2", "2001:db8:12:3400::1")
        } else {
            ("2001:db8:0:1::2", "2001:db8:0:1::1")
        };
        self.exec_ok(
            &ce,
            &[
                "ip",
                "addr",
                "add",
                &format!("{ce6}/64"),
                "dev",
                "ce-wan",
                "nodad",
            ],
        )?;
        self.exec_ok(
            &ce,
            &[
                "ip", "-6", "route", "add", "default", "via", isp6, "dev", "ce-wan",
            ],
        )?;
        self.exec_ok(
            &isp,
            &[
                "ip",
                "addr",
                "add",
                &format!("{isp6}/64"),
                "dev",
                "isp-ce",
                "nodad",
            ],
        )?;
        if !self.opts.onlink {
            self.exec_ok(
                &isp,
                &[
                    "ip",
                    "-6",
                    "route",
                    "add",
                    "2001:db8:12:3400::/56",
                    "via",
                    ce6,
                ],
            )?;
        }
        // ISP ↔ internet, IPv4.
        self.veth(&isp, "isp-inet", &inet, "eth0")?;
        self.exec_ok(
            &isp,
            &["ip", "addr", "add", "203.0.113.1/24", "dev", "isp-inet"],
        )?;
        for a in ["203.0.113.10/24", "203.0.113.11/24"] {
            self.exec_ok(&inet, &["ip", "addr", "add", a, "dev", "eth0"])?;
        }
        self.exec_ok(
            &inet,
            &["ip", "route", "add", "default", "via", "203.0.113.1"],
        )?;
        // The silent sink hangs off the internet host.
        self.veth(&inet, "sink0", &sink, "eth0")?;
        self.exec_ok(
            &inet,
            &["ip", "addr", "add", "198.51.100.1/24", "dev", "sink0"],
        )?;
        self.exec_ok(
            &sink,
            &["ip", "addr", "add", "198.51.100.99/24", "dev", "eth0"],
        )?;
        self.exec_ok(
            &sink,
            &["ip", "addr", "add", "192.168.1.211/32", "dev", "eth0"],
        )?;
        self.exec_ok(
            &sink,
            &["ip", "route", "add", "default", "via", "198.51.100.1"],
        )?;
        self.exec_ok(
            &inet,
            &[
                "ip",
                "route",
                "add",
                "192.168.1.211/32",
                "via",
                "198.51.100.99",
            ],
        )?;
        self.exec_ok(
            &isp,
            &[
                "ip",
                "route",
                "add",
                "198.51.100.0/24",
                "via",
                "203.0.113.10",
            ],
        )?;
        self.exec_ok(
            &isp,
            &[
                "ip",
                "route",
                "add",
                "192.168.1.211/32",
                "via",
                "203.0.113.10",
            ],
        )?;
        for ns in [&isp, &inet] {
            self.exec_ok(ns, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        }
        self.exec_ok(&isp, &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])?;

        self.start_servers(&inet, &sink)?;
        self.start_daemons(&ce, &isp)?;
        self.warm_up(&lan1)
    }

    /// Waits until lan1 resolves the lab's web name through the tunnel: servers listening,
    /// neighbour caches filled, the whole path proven before any test counts anything.
    fn warm_up(&self, lan1: &str) -> Result<(), LabError> {
        let limit = Duration::from_secs(15);
        let t0 = Instant::now();
        self.wait_listeners(limit)?;
        while t0.elapsed() < limit {
            let ok = self
                .exec(
                    lan1,
                    &[
                        "dig",
                        "+time=1",
                        "+tries=1",
                        "+short",
                        "@203.0.113.10",
                        addr::WWW,
                    ],
                )
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("203.0.113.10"))
                .unwrap_or(false);
            let http = ok
                && self
                    .exec(
                        lan1,
                        &[
                            "curl",
                            "-s",
                            "-f",
                            "-m",
                            "2",
                            "http://203.0.113.10/index.html",
                        ],
                    )
                    .map(|o| o.status.success())
                    .unwrap_or(false);
            if http {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(LabError::Timeout(
            "DNS and HTTP from lan1 through the tunnel".into(),
            limit,
            self.dir.display().to_string(),
        ))
    }

    /// Waits until the internet host's servers that tests talk to are listening.
    fn wait_listeners(&self, limit: Duration) -> Result<(), LabError> {
        let inet = self.ns("inet");
        let want = [
            ("-Hltn", "203.0.113.10:80".to_string()),
            ("-Hltn", "203.0.113.11:80".to_string()),
            ("-Hltn", format!("203.0.113.10:{}", churn::TCP_CLOSE_PORT)),
            ("-Hlun", format!("203.0.113.10:{}", churn::UDP_ECHO_PORT)),
        ];
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            let all = want.iter().all(|(flags, local)| {
                self.exec(&inet, &["ss", flags])
                    .map(|o| {
                        String::from_utf8_lossy(&o.stdout)
                            .split_whitespace()
                            .any(|w| w == local)
                    })
                    .unwrap_or(false)
            });
            if all {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(LabError::Timeout(
            "the internet host's servers".into(),
            limit,
            self.dir.display().to_string(),
        ))
    }

    fn start_servers(&mut self, inet: &str, sink: &str) -> Result<(), LabError> {
        // A 10 MB file with a known hash for the HTTP download test.
        let www = self.dir.join("www");
        fs::create_dir_all(&www)?;
        let mut f = fs::File::create(www.join("10mb.bin"))?;
        let mut x: u32 = 0x1234_5678;
        let mut block = vec![0u8; 1 << 20];
        for _ in 0..10 {
            for b in block.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x as u8;
            }
            f.write_all(&block)?;
        }
        fs::write(www.join("index.html"), "mape lab\n")?;
        let www_s = www.display().to_string();
        self.spawn(
            inet,
            "http",
            &[
                "python3",
                "-m",
                "http.server",
                "80",
                "--bind",
                "203.0.113.10",
                "--directory",
                &www_s,
            ],
        )?;
        self.spawn(
            inet,
            "dns",
            &[
                "dnsmasq",
                "--no-daemon",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=203.0.113.10",
                "--address=/www.lab.example/203.0.113.10",
                "--address=/sink.lab.example/198.51.100.99",
                "--log-facility=-",
                "--pid-file=",
                "--user=root",
            ],
        )?;
        self.spawn(inet, "iperf3", &["iperf3", "-s", "-B", "203.0.113.10"])?;
        // A second web server (another destination for the same host), a UDP echo and a
        // TCP listener that accepts and closes at once, for the churn tests and the bench.
        self.spawn(
            inet,
            "http2",
            &[
                "python3",
                "-m",
                "http.server",
                "80",
                "--bind",
                "203.0.113.11",
                "--directory",
                &www_s,
            ],
        )?;
        churn::write_scripts(&self.dir)?;
        let servers = self.dir.join("servers.py").display().to_string();
        let echo = format!("203.0.113.10:{}", churn::UDP_ECHO_PORT);
        let close = format!("203.0.113.10:{}", churn::TCP_CLOSE_PORT);
        self.spawn(inet, "udp-echo", &["python3", &servers, "udp-echo", &echo])?;
        self.spawn(
            inet,
            "tcp-close",
            &["python3", &servers, "tcp-close", &close],
        )?;
        let sink_py = self.dir.join("sink.py");
        fs::write(&sink_py, SILENT_SINK_PY)?;
        let sink_s = sink_py.display().to_string();
        self.spawn(
            sink,
            "sink",
            &[
                "python3",
                &sink_s,
                "198.51.100.99:59870",
                "198.51.100.99:59781",
                "192.168.1.211:59870",
                "192.168.1.211:59781",
            ],
        )?;
        if self.opts.turn {
            self.spawn(
                inet,
                "turn",
                &[
                    "turnserver",
                    "-n",
                    "--no-cli",
                    "--no-tls",
                    "--no-dtls",
                    "--no-tcp",
                    "-S",
                    "-z",
                    "-L",
                    "203.0.113.10",
                    "-L",
                    "203.0.113.11",
                    "-p",
                    "3480",
                    "--alt-listening-port",
                    "3481",
                    "--log-file",
                    "stdout",
                    "--simple-log",
                ],
            )?;
        }
        Ok(())
    }

    /// The CE configuration the lab runs.
    pub fn ce_config(&self) -> String {
        format!(
            r#"mode = "ce"
[wan]
interface = "ce-wan"
map_address = "{map_address}"
[map]
prefix = "{prefix}"
ipv6_prefix = "2001:db8::/40"
ipv4_prefix = "192.0.2.0/24"
ea_len = 16
psid_offset = 4
br = ["{br}"]
[lan]
prefixes = ["192.168.10.0/24"]
[tun]
name = "mape0"
queues = 2
[nat]
policy = "{policy}"
allow_destinations = ["203.0.113.0/24", "198.51.100.0/24"]
{extra}
[control]
socket = "{dir}/ce.sock"
[state]
dir = "{dir}/ce-state"
[metrics]
listen = "127.0.0.1:9469"
"#,
            br = addr::BR,
            map_address = if self.opts.onlink { "onlink" } else { "routed" },
            prefix = if self.opts.onlink {
                "2001:db8:12:3400::/64"
            } else {
                "2001:db8:12:3400::/56"
            },
            policy = self.opts.policy,
            extra = self.opts.nat_extra,
            dir = self.dir.display()
        )
    }

    fn br_config(&self) -> String {
        format!(
            r#"mode = "br"
[br]
address = "{br}"
[map]
prefix = "2001:db8:12:3400::/56"
ipv6_prefix = "2001:db8::/40"
ipv4_prefix = "192.0.2.0/24"
ea_len = 16
psid_offset = 4
[tun]
name = "mape0"
queues = 1
[control]
socket = "{dir}/br.sock"
[state]
dir = "{dir}/br-state"
"#,
            br = addr::BR,
            dir = self.dir.display()
        )
    }

    /// The CE's control socket.
    pub fn ce_socket(&self) -> PathBuf {
        self.dir.join("ce.sock")
    }

    /// The CE's configuration file.
    pub fn ce_config_path(&self) -> PathBuf {
        self.dir.join("ce.toml")
    }

    /// The exact command the lab runs the CE with (inside the CE namespace).
    pub fn ce_argv(&self) -> Vec<String> {
        vec![
            self.opts.mape.display().to_string(),
            "run".into(),
            "ce".into(),
            "--config".into(),
            self.ce_config_path().display().to_string(),
        ]
    }

    /// PID of the CE daemon [`Lab::up`] started.
    pub fn ce_pid(&self) -> Option<u32> {
        self.daemons.get(1).copied()
    }

    /// Waits until the CE answers on its control socket (after a restart by a test).
    pub fn wait_ce(&self) -> Result<(), LabError> {
        self.wait_socket(&self.ce_socket(), "the CE daemon", "ce")
    }

    /// The exit status of process `pid` (started by [`Lab::spawn`]) if it has exited.
    pub fn exit_status(&mut self, pid: u32) -> Option<std::process::ExitStatus> {
        self.children
            .iter_mut()
            .find(|c| c.id() == pid)
            .and_then(|c| c.try_wait().ok().flatten())
    }

    fn start_daemons(&mut self, ce: &str, isp: &str) -> Result<(), LabError> {
        let ce_cfg = self.dir.join("ce.toml");
        let br_cfg = self.dir.join("br.toml");
        fs::write(&ce_cfg, self.ce_config())?;
        fs::write(&br_cfg, self.br_config())?;
        let mape = self.opts.mape.display().to_string();
        let br_s = br_cfg.display().to_string();
        let ce_s = ce_cfg.display().to_string();
        let br = self.spawn(isp, "br", &[&mape, "run", "br", "--config", &br_s])?;
        self.daemons.push(br);
        self.wait_socket(&self.dir.join("br.sock"), "the BR daemon", "br")?;
        let ce_pid = self.spawn(ce, "ce", &[&mape, "run", "ce", "--config", &ce_s])?;
        self.daemons.push(ce_pid);
        self.wait_socket(&self.ce_socket(), "the CE daemon", "ce")?;
        Ok(())
    }

    fn wait_socket(&self, sock: &Path, what: &str, log: &str) -> Result<(), LabError> {
        let limit = Duration::from_secs(15);
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if mape_daemon::control::request(sock, "status", serde_json::Value::Null).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(LabError::Timeout(
            what.into(),
            limit,
            self.dir.join(format!("{log}.log")).display().to_string(),
        ))
    }

    /// Asks the CE daemon.
    pub fn ce_query(&self, cmd: &str) -> Result<serde_json::Value, LabError> {
        mape_daemon::control::request(&self.ce_socket(), cmd, serde_json::Value::Null).map_err(
            |e| LabError::Command {
                cmd: format!("control {cmd}"),
                detail: e,
            },
        )
    }

    /// Asks the CE daemon, with arguments.
    pub fn ce_query_args(
        &self,
        cmd: &str,
        args: serde_json::Value,
    ) -> Result<serde_json::Value, LabError> {
        mape_daemon::control::request(&self.ce_socket(), cmd, args).map_err(|e| LabError::Command {
            cmd: format!("control {cmd}"),
            detail: e,
        })
    }

    /// Removes everything: processes by PID, then namespaces, then the state file.
    pub fn teardown(&mut self) {
        for c in self.children.iter_mut() {
            // SIGTERM first so the daemons tear down their own routes.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .stderr(Stdio::null())
                .status();
        }
        let t0 = Instant::now();
        for c in self.children.iter_mut() {
            while t0.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        self.children.clear();
        for ns in self.state.namespaces.drain(..).rev() {
            let _ = ip(&["netns", "del", &ns]);
        }
        let _ = fs::remove_file(Path::new(STATE_DIR).join(format!("{}.json", self.prefix)));
    }

    /// Starts tshark on `iface` in `ns` with capture `filter`, writing `dir/<name>.pcap`.
    /// Returns the PID and the file.
    pub fn capture(
        &mut self,
        ns: &str,
        name: &str,
        iface: &str,
        filter: &str,
    ) -> Result<(u32, PathBuf), LabError> {
        let file = self.dir.join(format!("{name}.pcap"));
        let f = file.display().to_string();
        let pid = self.spawn(
            ns,
            name,
            &["tshark", "-q", "-i", iface, "-f", filter, "-w", &f],
        )?;
        Ok((pid, file))
    }

    /// Stops a capture started by [`Lab::capture`] (SIGINT lets tshark flush) and waits.
    pub fn stop_capture(&mut self, pid: u32) {
        let _ = Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .stderr(Stdio::null())
            .status();
        self.wait_pid(pid, Duration::from_secs(5));
    }

    /// Starts the seed's storm from `ns` (`mape lab storm`) toward `targets` at `rate_x`
    /// for `secs` seconds; returns its PID.
    pub fn storm(
        &mut self,
        ns: &str,
        name: &str,
        targets: &[String],
        rate_x: u32,
        secs: u64,
    ) -> Result<u32, LabError> {
        let mape = self.opts.mape.display().to_string();
        let (rate, dur) = (rate_x.to_string(), secs.to_string());
        let mut args: Vec<&str> =
            vec![&mape, "lab", "storm", "--rate-x", &rate, "--duration", &dur];
        for t in targets {
            args.extend_from_slice(&["--target", t]);
        }
        self.spawn(ns, name, &args)
    }

    /// Stops the CE and BR daemons (SIGTERM: they remove their TUNs and routes).
    pub fn stop_daemons(&mut self) {
        for pid in std::mem::take(&mut self.daemons) {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .stderr(Stdio::null())
                .status();
            self.wait_pid(pid, Duration::from_secs(5));
        }
    }

    /// Waits up to `limit` for the process `pid` (started by [`Lab::spawn`]) to exit.
    pub fn wait_pid(&mut self, pid: u32, limit: Duration) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            match self.children.iter_mut().find(|c| c.id() == pid) {
                Some(c) => {
                    if let Ok(Some(_)) = c.try_wait() {
                        return true;
                    }
                }
                None => return true,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// The working directory's log of a process.
    pub fn log(&self, name: &str) -> String {
        fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Removes labs recorded in the state directory (after a crash): kills their PIDs and
/// deletes their namespaces. With `all`, also deletes any namespace of the lab family.
pub fn down(all: bool) -> Result<usize, LabError> {
    let mut removed = 0;
    if let Ok(rd) = fs::read_dir(STATE_DIR) {
        for e in rd.flatten() {
            let Ok(text) = fs::read_to_string(e.path()) else {
                continue;
            };
            if let Ok(st) = serde_json::from_str::<LabState>(&text) {
                for pid in &st.pids {
                    let _ = Command::new("kill")
                        .arg("-TERM")
                        .arg(pid.to_string())
                        .stderr(Stdio::null())
                        .status();
                }
                std::thread::sleep(Duration::from_millis(500));
                for pid in &st.pids {
                    let _ = Command::new("kill")
                        .arg("-KILL")
                        .arg(pid.to_string())
                        .stderr(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                }
                for ns in st.namespaces.iter().rev() {
                    if ip(&["netns", "del", ns]).is_ok() {
                        removed += 1;
                    }
                }
            }
            let _ = fs::remove_file(e.path());
        }
    }
    if all {
        if let Ok(out) = ip(&["netns", "list"]) {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let name = line.split_whitespace().next().unwrap_or_default();
                if name.starts_with(NS_FAMILY) && ip(&["netns", "del", name]).is_ok() {
                    removed += 1;
                }
            }
        }
    }
    Ok(removed)
}

/// Lists lab namespaces now present.
pub fn status() -> Result<Vec<String>, LabError> {
    let out = ip(&["netns", "list"])?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(NS_FAMILY))
        .map(str::to_string)
        .collect())
}

/// Parses `a.b.c.d:port`.
pub fn parse_target(s: &str) -> Option<(Ipv4Addr, u16)> {
    let (a, p) = s.rsplit_once(':')?;
    Some((a.parse().ok()?, p.parse().ok()?))
}

/// Frames in a capture file, as tshark reads them (0 when unreadable).
pub fn count_frames(file: &Path) -> u64 {
    Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(["-T", "fields", "-e", "frame.number"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().count() as u64)
        .unwrap_or(0)
}

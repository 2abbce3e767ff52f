//! The lab's namespaces, links and processes: [`Lab`] with its options and on-disk
//! [`LabState`], running commands in a namespace, starting and stopping processes, and
//! tearing it all down (also after a crash: [`down`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cmd::{ip, run};
use crate::error::LabError;

/// Prefix shared by every lab namespace name (per run: `mlab<pid>-`).
pub const NS_FAMILY: &str = "mlab";
/// Where lab runs record what they created.
pub const STATE_DIR: &str = "/run/mape-lab";

/// How to build a lab.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// The `mape` binary to run as CE and BR.
    pub mape: PathBuf,
    /// NAT policy of the CE.
    pub policy: String,
    /// Extra `[nat]` TOML lines for the CE (timeouts, forwards, filtering, ...).
    pub nat_extra: String,
    /// The CE's `[mappings]` lines (default: PCP, NAT-PMP and UPnP IGD on its LAN address, so a
    /// person can try them by hand in `mape lab up`).
    pub mappings: String,
    /// Per-run prefix (default `mlab<pid>`).
    pub prefix: Option<String>,
    /// Start coturn on the two server addresses.
    pub turn: bool,
    /// RA-only line: the MAP address sits in the WAN's on-link /64 (2001:db8:12:3400::/64)
    /// and the CE answers neighbour discovery for it; no prefix is routed to the CE.
    pub onlink: bool,
    /// `[datapath] fast_path` of both daemons: `auto` (the default) or `off`; the
    /// environment variable `MAPE_LAB_FAST_PATH` sets the default, so a whole test suite
    /// runs once with the kernel fast path and once without (scripts/test.sh).
    pub fast_path: String,
    /// The BR's addresses (default [`crate::addr::BR`] alone): the first is its
    /// `[br] address`, the outer source of everything it sends to CEs; with more, all of
    /// them are its `[map] br` and it accepts tunnel packets to each.
    pub br: Vec<String>,
}

impl LabOptions {
    /// Defaults: the running binary, policy `mape`.
    pub fn new(mape: PathBuf, policy: &str) -> Self {
        Self {
            mape,
            policy: policy.into(),
            nat_extra: String::new(),
            mappings: format!(
                "pcp = true\nnatpmp = true\nupnp = true\nlisten = [\"{}\"]",
                crate::addr::CE_LAN
            ),
            prefix: None,
            turn: false,
            onlink: false,
            fast_path: std::env::var("MAPE_LAB_FAST_PATH").unwrap_or_else(|_| "auto".into()),
            br: vec![crate::addr::BR.into()],
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
    pub(crate) state: LabState,
    pub(crate) children: Vec<Child>,
    pub(crate) opts: LabOptions,
    /// PIDs of the BR and the CE daemon, in that order.
    pub(crate) daemons: Vec<u32>,
}

impl Lab {
    /// Namespace name for a role.
    pub fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    pub(crate) fn save(&self) {
        let _ = fs::create_dir_all(STATE_DIR);
        if let Ok(text) = serde_json::to_string(&self.state) {
            let _ = fs::write(
                Path::new(STATE_DIR).join(format!("{}.json", self.prefix)),
                text,
            );
        }
    }

    pub(crate) fn add_ns(&mut self, role: &str) -> Result<String, LabError> {
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

    pub(crate) fn veth(&self, a_ns: &str, a: &str, b_ns: &str, b: &str) -> Result<(), LabError> {
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

    /// Creates the namespaces, links, addresses and routes of the picture in the crate
    /// documentation.
    pub(crate) fn build_links(&mut self) -> Result<(), LabError> {
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
        Ok(())
    }

    /// The exit status of process `pid` (started by [`Lab::spawn`]) if it has exited.
    pub fn exit_status(&mut self, pid: u32) -> Option<std::process::ExitStatus> {
        self.children
            .iter_mut()
            .find(|c| c.id() == pid)
            .and_then(|c| c.try_wait().ok().flatten())
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
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown();
        self.remove_dir();
    }
}

/// Set to keep a lab's working directory after it is dropped, whatever happened.
pub const KEEP_ENV: &str = "MAPE_LAB_KEEP";

/// Files bigger than this are deleted from a kept working directory unless
/// [`KEEP_ENV`] is set: the logs stay for the failure, a capture of a bulk run does not
/// fill the disk of the run that follows.
const KEPT_FILE_MAX: u64 = 64 << 20;

impl Lab {
    /// Deletes the working directory once its lab is gone. After a panic (a failing test)
    /// the logs and configs stay, named on stderr, without the big files; with
    /// [`KEEP_ENV`] set everything stays.
    fn remove_dir(&self) {
        if std::env::var_os(KEEP_ENV).is_some() {
            eprintln!("lab {}: kept {}", self.prefix, self.dir.display());
            return;
        }
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
            return;
        }
        if let Ok(rd) = fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                let big = e
                    .metadata()
                    .is_ok_and(|m| m.is_file() && m.len() > KEPT_FILE_MAX);
                if big {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        eprintln!(
            "lab {}: logs kept in {} (files over {} MiB removed; {KEEP_ENV}=1 keeps all)",
            self.prefix,
            self.dir.display(),
            KEPT_FILE_MAX >> 20
        );
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
                // Its working directory too, when it is one a lab made.
                let ours = st
                    .dir
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("mape-lab-"));
                if ours && st.dir.starts_with(std::env::temp_dir()) {
                    let _ = fs::remove_dir_all(&st.dir);
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

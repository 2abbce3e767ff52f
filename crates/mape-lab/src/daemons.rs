//! The two `mape` daemons of the lab: their configurations, starting and stopping them,
//! and asking the CE over its control socket.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mape_control::reply::Status;
use mape_control::Request;

use crate::addr;
use crate::error::LabError;
use crate::topology::Lab;

impl Lab {
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
[datapath]
fast_path = "{fast_path}"
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
[mappings]
{mappings}
"#,
            br = addr::BR,
            map_address = if self.opts.onlink { "onlink" } else { "routed" },
            prefix = if self.opts.onlink {
                "2001:db8:12:3400::/64"
            } else {
                "2001:db8:12:3400::/56"
            },
            policy = self.opts.policy,
            fast_path = self.opts.fast_path,
            extra = self.opts.nat_extra,
            mappings = self.opts.mappings,
            dir = self.dir.display()
        )
    }

    pub(crate) fn br_config(&self) -> String {
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
{brs}[tun]
name = "mape0"
queues = 1
[datapath]
fast_path = "{fast_path}"
[control]
socket = "{dir}/br.sock"
[state]
dir = "{dir}/br-state"
"#,
            br = self.opts.br.first().map_or(addr::BR, String::as_str),
            brs = if self.opts.br.len() < 2 {
                String::new()
            } else {
                let all: Vec<String> = self.opts.br.iter().map(|a| format!("\"{a}\"")).collect();
                format!("br = [{}]\n", all.join(", "))
            },
            fast_path = self.opts.fast_path,
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

    pub(crate) fn start_daemons(&mut self, ce: &str, isp: &str) -> Result<(), LabError> {
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

    /// A CE configuration for a provisioning line (HB46PP, DHCPv6: no BR, no LAN link):
    /// WAN `ce-wan`, LAN 192.168.10.0/24, TUN `mape0`, socket and state in the lab's
    /// directory, with `map` under `[map]` and `provisioning` (its sections) at the end.
    pub(crate) fn line_ce_config(&self, map: &str, provisioning: &str) -> String {
        let d = self.dir.display();
        format!(
            r#"mode = "ce"
[wan]
interface = "ce-wan"
[map]
{map}
[lan]
prefixes = ["192.168.10.0/24"]
[tun]
name = "mape0"
queues = 1
[control]
socket = "{d}/ce.sock"
[state]
dir = "{d}/ce-state"
{provisioning}
"#
        )
    }

    /// Writes `config` to `<dir>/ce.toml` and starts `mape run ce` with it in `ns` (log
    /// `log`); its PID once it answers on `sock`.
    pub fn start_ce_in(
        &mut self,
        ns: &str,
        mape: &str,
        config: &str,
        sock: &Path,
        log: &str,
    ) -> Result<u32, LabError> {
        let path = self.dir.join("ce.toml");
        fs::write(&path, config)?;
        let p = path.display().to_string();
        let pid = self.spawn(ns, log, &[mape, "run", "ce", "--config", &p])?;
        self.wait_socket(sock, "the CE daemon", log)?;
        Ok(pid)
    }

    /// Restarts the CE daemon [`Lab::up`] started with `config` (written to
    /// [`Lab::ce_config_path`]; log `log`): stops it, starts `mape run ce` with the lab's
    /// command, waits until it answers; its PID (also [`Lab::ce_pid`] from then on).
    pub fn restart_ce(&mut self, config: &str, log: &str) -> Result<u32, LabError> {
        if let Some(old) = self.ce_pid() {
            self.stop_pid(old);
        }
        let (ns, mape, sock) = (
            self.ns("ce"),
            self.opts.mape.display().to_string(),
            self.ce_socket(),
        );
        let pid = self.start_ce_in(&ns, &mape, config, &sock, log)?;
        match self.daemons.get_mut(1) {
            Some(p) => *p = pid,
            None => self.daemons.push(pid),
        }
        Ok(pid)
    }

    /// Stops a process this lab started (SIGTERM, then waits up to 10 s); its exit status
    /// if it ended.
    pub fn stop_pid(&mut self, pid: u32) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill").arg(pid.to_string()).status();
        self.wait_pid(pid, Duration::from_secs(10));
        self.exit_status(pid)
    }

    pub(crate) fn wait_socket(&self, sock: &Path, what: &str, log: &str) -> Result<(), LabError> {
        let limit = Duration::from_secs(15);
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if mape_control::request(sock, &Request::Status).is_ok() {
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

    /// Asks the CE daemon; its answer as JSON.
    pub fn ce_query(&self, req: &Request) -> Result<serde_json::Value, LabError> {
        mape_control::request(&self.ce_socket(), req).map_err(|e| LabError::Command {
            cmd: format!("control {}", req.cmd()),
            detail: e.to_string(),
        })
    }

    /// Asks the CE daemon for its status.
    pub fn ce_status(&self) -> Result<Status, LabError> {
        mape_control::request_typed(&self.ce_socket(), &Request::Status).map_err(|e| {
            LabError::Command {
                cmd: "control status".into(),
                detail: e.to_string(),
            }
        })
    }

    /// The BR's control socket.
    pub fn br_socket(&self) -> PathBuf {
        self.dir.join("br.sock")
    }

    /// PID of the BR daemon [`Lab::up`] started.
    pub fn br_pid(&self) -> Option<u32> {
        self.daemons.first().copied()
    }

    /// Asks the BR daemon for its status.
    pub fn br_status(&self) -> Result<Status, LabError> {
        mape_control::request_typed(&self.br_socket(), &Request::Status).map_err(|e| {
            LabError::Command {
                cmd: "control status (BR)".into(),
                detail: e.to_string(),
            }
        })
    }

    /// Stops the BR daemon and starts it again with the addresses `br` (as
    /// [`crate::LabOptions::br`]): the CEs' sessions live on (the BR is stateless), the
    /// addresses it no longer has are unreachable.
    pub fn restart_br(&mut self, br: Vec<String>) -> Result<(), LabError> {
        if let Some(pid) = self.daemons.first().copied() {
            self.stop_pid(pid);
        }
        self.opts.br = br;
        let br_cfg = self.dir.join("br.toml");
        fs::write(&br_cfg, self.br_config())?;
        let (mape, cfg) = (
            self.opts.mape.display().to_string(),
            br_cfg.display().to_string(),
        );
        let isp = self.ns("isp");
        let pid = self.spawn(
            &isp,
            "br-restarted",
            &[&mape, "run", "br", "--config", &cfg],
        )?;
        match self.daemons.first_mut() {
            Some(first) => *first = pid,
            None => self.daemons.push(pid),
        }
        self.wait_socket(&self.br_socket(), "the BR daemon", "br-restarted")
    }

    /// Restarts both daemons with `[datapath] fast_path = fast_path` (the bench's
    /// `mape_tun` mode).
    pub fn restart_daemons(&mut self, fast_path: &str) -> Result<(), LabError> {
        self.stop_daemons();
        self.opts.fast_path = fast_path.into();
        let (ce, isp) = (self.ns("ce"), self.ns("isp"));
        self.start_daemons(&ce, &isp)
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
}

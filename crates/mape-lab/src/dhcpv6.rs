//! A DHCPv6 line in two namespaces: `ce` (where `mape provision dhcpv6` runs) and `isp`
//! with a real DHCPv6 server, ISC Kea (`kea-dhcp6`), that delegates one /56 (IA_PD) and
//! serves RFC 7598's OPTION_S46_CONT_MAPE with Kea's own option definitions
//! (`s46-cont-mape`, `s46-rule`, `s46-portparams`, `s46-br`).
//!
//! ```text
//!  ce  fe80::…, 2001:db8:0:1::2 ── ce-wan ═ isp-ce ── isp 2001:db8:0:1::1, kea-dhcp6
//! ```
//! The rule is the lab's (see the crate documentation): 2001:db8::/40 → 192.0.2.0/24,
//! EA 16, PSID offset 4 (PSID length 8), BR 2001:db8:ffff::1; the pool holds only
//! [`DELEGATED`]. Lease file, server DUID and Kea's pid and lock files stay in the lab's
//! directory. Torn down like [`Lab`].

use std::fs;
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use crate::{Lab, LabError, LabOptions};

/// The prefix the server delegates.
pub const DELEGATED: &str = "2001:db8:12:3400::/56";
/// The CE's WAN interface.
pub const CE_WAN: &str = "ce-wan";
/// The rule's IPv4 prefix (a /24).
pub const IPV4: &str = "192.0.2.0";

/// The server's timers, seconds.
#[derive(Debug, Clone, Copy)]
pub struct Timers {
    /// T1 (Kea `renew-timer`).
    pub t1: u32,
    /// T2 (`rebind-timer`).
    pub t2: u32,
    /// Preferred lifetime.
    pub preferred: u32,
    /// Valid lifetime.
    pub valid: u32,
}

/// What the server offers.
#[derive(Debug, Clone)]
pub struct Offer {
    /// Lifetimes and timers.
    pub timers: Timers,
    /// Serve option 94.
    pub s46: bool,
    /// The rule's IPv4 prefix (/24; default [`IPV4`]).
    pub ipv4: &'static str,
    /// A pool to delegate from (`None`: no pool, NoPrefixAvail).
    pub pool: Option<&'static str>,
    /// The S46_BR address (default [`crate::addr::BR`]).
    pub br: &'static str,
    /// An Information Refresh Time (option 32, RFC 8415 §21.23) for the Replies to
    /// Information-request, seconds (`None`: Kea sends none).
    pub refresh: Option<u32>,
}

impl Offer {
    /// The lab's offer with `timers`: a /56 from a pool of [`DELEGATED`] alone, option 94
    /// with the rule on [`IPV4`] and the BR [`crate::addr::BR`].
    pub fn lab(timers: Timers) -> Self {
        Self {
            timers,
            s46: true,
            ipv4: IPV4,
            pool: Some(DELEGATED),
            br: crate::addr::BR,
            refresh: None,
        }
    }
}

/// A running DHCPv6 line.
pub struct Dhcpv6Lab {
    lab: Lab,
    kea_pid: Option<u32>,
}

impl Dhcpv6Lab {
    /// Builds the namespaces and the link; no server yet. `tag` makes the names unique
    /// among labs of one process.
    pub fn up(tag: &str) -> Result<Self, LabError> {
        crate::preflight()?;
        if !std::path::Path::new("/usr/sbin/kea-dhcp6").exists() {
            return Err(LabError::Missing(
                "kea-dhcp6 (Debian kea-dhcp6-server)".into(),
            ));
        }
        let prefix = format!("mdh{}{tag}", std::process::id());
        let _ = fs::remove_dir_all(std::env::temp_dir().join(format!("mape-lab-{prefix}")));
        let lab = Lab::empty(prefix, LabOptions::new(PathBuf::from("mape"), "mape"))?;
        let mut me = Self { lab, kea_pid: None };
        me.build()?;
        Ok(me)
    }

    fn build(&mut self) -> Result<(), LabError> {
        let ce = self.lab.add_ns("ce")?;
        let isp = self.lab.add_ns("isp")?;
        // No DAD: the link-local addresses are usable at once (the client sends from its
        // link-local address, Kea binds to the server's).
        for ns in [&ce, &isp] {
            for k in ["all", "default"] {
                self.lab.exec_ok(
                    ns,
                    &["sysctl", "-qw", &format!("net.ipv6.conf.{k}.accept_dad=0")],
                )?;
            }
        }
        self.lab.veth(&ce, CE_WAN, &isp, "isp-ce")?;
        self.lab.exec_ok(
            &ce,
            &[
                "ip",
                "addr",
                "add",
                "2001:db8:0:1::2/64",
                "dev",
                CE_WAN,
                "nodad",
            ],
        )?;
        self.lab.exec_ok(
            &isp,
            &[
                "ip",
                "addr",
                "add",
                "2001:db8:0:1::1/64",
                "dev",
                "isp-ce",
                "nodad",
            ],
        )?;
        for (ns, dev) in [(&ce, CE_WAN), (&isp, "isp-ce")] {
            let t0 = Instant::now();
            loop {
                let o = self.lab.exec_ok(
                    ns,
                    &[
                        "ip",
                        "-6",
                        "addr",
                        "show",
                        "dev",
                        dev,
                        "scope",
                        "link",
                        "-tentative",
                    ],
                )?;
                if String::from_utf8_lossy(&o.stdout).contains("fe80::") {
                    break;
                }
                if t0.elapsed() > Duration::from_secs(10) {
                    return Err(LabError::Timeout(
                        format!("link-local address on {dev}"),
                        t0.elapsed(),
                        self.lab.dir.display().to_string(),
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    /// The CE namespace.
    pub fn ce(&self) -> String {
        self.lab.ns("ce")
    }

    /// The working directory.
    pub fn dir(&self) -> PathBuf {
        self.lab.dir.clone()
    }

    /// (Re)starts Kea with `offer`, waiting until it listens on port 547.
    pub fn serve(&mut self, offer: &Offer) -> Result<(), LabError> {
        self.stop();
        self.kea_pid = Some(self.lab.serve_dhcpv6(offer)?);
        Ok(())
    }

    /// Stops Kea (by its PID) if it runs.
    pub fn stop(&mut self) {
        if let Some(pid) = self.kea_pid.take() {
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
            self.lab.wait_pid(pid, Duration::from_secs(5));
        }
    }

    /// Kea's lease file (memfile CSV, one line per lease update).
    pub fn leases(&self) -> String {
        fs::read_to_string(self.lab.dir.join("leases6.csv")).unwrap_or_default()
    }

    /// Kea's log.
    pub fn server_log(&self) -> String {
        self.lab.log("kea")
    }

    /// The CE daemon's control socket.
    pub fn ce_socket(&self) -> PathBuf {
        self.lab.dir.join("ce.sock")
    }

    /// A CE daemon configuration with no rule: `[provisioning] method = "dhcpv6"` (mape's
    /// own client on [`CE_WAN`]), with `extra` appended.
    pub fn ce_config(&self, extra: &str) -> String {
        self.lab.line_ce_config(
            "",
            &format!(
                "[provisioning]\nmethod = \"dhcpv6\"\n[provisioning.dhcpv6]\ntimeout_s = 3\n{extra}"
            ),
        )
    }

    /// Starts `mape run ce` with `config` in the CE namespace (log `log`); its PID once
    /// it answers on its socket.
    pub fn start_ce(&mut self, mape: &str, config: &str, log: &str) -> Result<u32, LabError> {
        let (ce, sock) = (self.ce(), self.ce_socket());
        self.lab.start_ce_in(&ce, mape, config, &sock, log)
    }

    /// Stops a process this lab started; its exit status if it ended.
    pub fn stop_pid(&mut self, pid: u32) -> Option<std::process::ExitStatus> {
        self.lab.stop_pid(pid)
    }

    /// A process's log.
    pub fn log(&self, name: &str) -> String {
        self.lab.log(name)
    }

    /// Runs a command in the CE namespace.
    pub fn exec_ce(&self, args: &[&str]) -> Result<Output, LabError> {
        self.lab.exec(&self.ce(), args)
    }
}

impl Lab {
    /// The full lab's CE configuration ([`Lab::ce_config`]) with no rule, not even
    /// `[map] prefix`, and `[provisioning] method = "dhcpv6"`: the delegated prefix, the
    /// rule and the BR all come from the server on the ISP link ([`Lab::serve_dhcpv6`]).
    pub fn dhcpv6_ce_config(&self) -> String {
        let rule_lines = [
            "prefix =",
            "ipv6_prefix",
            "ipv4_prefix",
            "ea_len",
            "psid_offset",
            "br =",
        ];
        let mut config: String = self
            .ce_config()
            .lines()
            .filter(|l| !rule_lines.iter().any(|k| l.trim_start().starts_with(k)))
            .map(|l| format!("{l}\n"))
            .collect();
        config += "[provisioning]\nmethod = \"dhcpv6\"\n";
        config
    }

    fn kea_config(&self, offer: &Offer) -> String {
        let d = self.dir.display().to_string();
        let t = offer.timers;
        let mut s46 = if offer.s46 {
            serde_json::json!([
                {"space": "dhcp6", "name": "s46-cont-mape"},
                {"space": "s46-cont-mape-options", "name": "s46-rule",
                 "data": format!("0, 16, 24, {}, 2001:db8::/40", offer.ipv4)},
                {"space": "s46-rule-options", "name": "s46-portparams", "data": "4, 0/8"},
                {"space": "s46-cont-mape-options", "name": "s46-br",
                 "data": offer.br},
                {"space": "dhcp6", "name": "dns-servers", "data": "2001:db8:0:1::53"}
            ])
        } else {
            serde_json::json!([])
        };
        if let (Some(r), Some(list)) = (offer.refresh, s46.as_array_mut()) {
            list.push(serde_json::json!(
                {"space": "dhcp6", "name": "information-refresh-time", "data": r.to_string()}
            ));
        }
        let pools = match offer.pool {
            Some(p) => {
                let (addr, len) = p.split_once('/').unwrap_or((p, "56"));
                let len: u8 = len.parse().unwrap_or(56);
                serde_json::json!([{"prefix": addr, "prefix-len": len, "delegated-len": len}])
            }
            None => serde_json::json!([]),
        };
        serde_json::json!({"Dhcp6": {
            "interfaces-config": {"interfaces": ["isp-ce"]},
            "data-directory": d,
            "lease-database": {"type": "memfile", "persist": true,
                               "name": format!("{d}/leases6.csv"), "lfc-interval": 0},
            "server-id": {"type": "LL", "htype": 1, "identifier": "0a0000000001",
                          "persist": false},
            "renew-timer": t.t1, "rebind-timer": t.t2,
            "preferred-lifetime": t.preferred, "valid-lifetime": t.valid,
            "subnet6": [{"id": 1, "subnet": "2001:db8:0:1::/64", "interface": "isp-ce",
                         "pd-pools": pools, "option-data": s46}],
            "loggers": [{"name": "kea-dhcp6", "severity": "INFO",
                         "output_options": [{"output": "stdout"}]}]
        }})
        .to_string()
    }

    /// Starts Kea in the `isp` namespace on `isp-ce` with `offer`, waiting until it
    /// listens on port 547; its PID (the full lab's ISP link has the same addresses as
    /// [`Dhcpv6Lab`]'s, so a CE daemon with a BR can take its rule from Kea too).
    pub fn serve_dhcpv6(&mut self, offer: &Offer) -> Result<u32, LabError> {
        let conf = self.dir.join("kea-dhcp6.json");
        fs::write(&conf, self.kea_config(offer))?;
        let d = self.dir.display().to_string();
        let isp = self.ns("isp");
        let (pid_dir, lock_dir) = (
            format!("KEA_PIDFILE_DIR={d}"),
            format!("KEA_LOCKFILE_DIR={d}"),
        );
        let c = conf.display().to_string();
        let pid = self.spawn(
            &isp,
            "kea",
            &["env", &pid_dir, &lock_dir, "/usr/sbin/kea-dhcp6", "-c", &c],
        )?;
        let t0 = Instant::now();
        loop {
            let o = self.exec(&isp, &["ss", "-Hlun", "sport", "=", ":547"])?;
            if !String::from_utf8_lossy(&o.stdout).trim().is_empty() {
                return Ok(pid);
            }
            if self.exit_status(pid).is_some() || t0.elapsed() > Duration::from_secs(10) {
                return Err(LabError::Timeout(
                    format!("kea-dhcp6 on port 547: {}", self.log("kea")),
                    t0.elapsed(),
                    d,
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

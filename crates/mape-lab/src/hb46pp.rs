//! An HB46PP line in two namespaces: `ce` (where `mape provision hb46pp` runs) and `vne`
//! with the VNE's resolver (dnsmasq answering the TXT record of `4over6.info`) and a
//! provisioning server (python3's http.server; http on [::80]:80 and https on
//! [::443]:443 with a certificate from a CA made by openssl for this run).
//!
//! The resolver also knows the https server as `prov.lab.example` ([`HTTPS_NAME`]).
//!
//! ```text
//!  ce  2001:db8:0:1::2 ── ce-wan ═ vne-ce ── vne 2001:db8:0:1::1, ::53 (dns),
//!                                              ::80 (http), ::443 (https)
//! ```
//! The server's answers come from a routes file (path → status, headers, body) that a test
//! rewrites between runs; every request line is logged beside it. Torn down like [`Lab`].

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::{run, Lab, LabError, LabOptions};

/// The resolver's address.
pub const DNS: &str = "2001:db8:0:1::53";
/// The http server's address.
pub const HTTP: &str = "2001:db8:0:1::80";
/// The https server's address (in the certificate as an IP SAN).
pub const HTTPS: &str = "2001:db8:0:1::443";
/// The https server's name (AAAA at the lab resolver only; the certificate's DNS SAN).
pub const HTTPS_NAME: &str = "prov.lab.example";

const SERVER_PY: &str = r#"
import http.server, json, socket, ssl, sys
bind, port, routes = sys.argv[1], int(sys.argv[2]), sys.argv[3]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(routes + '.log', 'a') as f:
            f.write(self.path + '\n')
        with open(routes) as f:
            r = json.load(f).get(self.path.split('?')[0])
        if r is None:
            r = {'status': 404}
        body = r.get('body', '').encode()
        self.send_response(r.get('status', 200))
        for k, v in r.get('headers', {}).items():
            self.send_header(k, v)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(http.server.HTTPServer):
    address_family = socket.AF_INET6
s = S((bind, port), H)
if len(sys.argv) > 5:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[4], sys.argv[5])
    s.socket = ctx.wrap_socket(s.socket, server_side=True)
print('ready', flush=True)
s.serve_forever()
"#;

/// A running HB46PP line.
pub struct Hb46ppLab {
    lab: Lab,
    dns_pid: Option<u32>,
}

impl Hb46ppLab {
    /// Builds the namespaces, the CAs and the http(s) servers; no TXT record yet. `tag`
    /// makes the names unique among labs of one process.
    pub fn up(tag: &str) -> Result<Self, LabError> {
        crate::preflight()?;
        if Command::new("openssl").arg("version").output().is_err() {
            return Err(LabError::Missing("openssl".into()));
        }
        let prefix = format!("mhb{}{tag}", std::process::id());
        let _ = fs::remove_dir_all(std::env::temp_dir().join(format!("mape-lab-{prefix}")));
        let lab = Lab::empty(prefix, LabOptions::new(PathBuf::from("mape"), "mape"))?;
        let mut me = Self { lab, dns_pid: None };
        // On error the Lab's drop tears down what was made.
        me.build()?;
        Ok(me)
    }

    /// The CE namespace.
    pub fn ce(&self) -> String {
        self.lab.ns("ce")
    }

    /// The working directory.
    pub fn dir(&self) -> PathBuf {
        self.lab.dir.clone()
    }

    /// The CA that signed the server certificate (PEM).
    pub fn ca(&self) -> PathBuf {
        self.lab.dir.join("ca.pem")
    }

    /// A CA that signed nothing here (PEM).
    pub fn other_ca(&self) -> PathBuf {
        self.lab.dir.join("other-ca.pem")
    }

    fn build(&mut self) -> Result<(), LabError> {
        let ce = self.lab.add_ns("ce")?;
        let vne = self.lab.add_ns("vne")?;
        self.lab.veth(&ce, "ce-wan", &vne, "vne-ce")?;
        let add = |ns: &str, a: &str, dev: &str| {
            self.lab
                .exec_ok(ns, &["ip", "addr", "add", a, "dev", dev, "nodad"])
                .map(|_| ())
        };
        add(&ce, "2001:db8:0:1::2/64", "ce-wan")?;
        for a in [
            "2001:db8:0:1::1/64",
            "2001:db8:0:1::53/64",
            "2001:db8:0:1::80/64",
            "2001:db8:0:1::443/64",
        ] {
            add(&vne, a, "vne-ce")?;
        }
        self.make_certs()?;
        let script = self.lab.dir.join("server.py");
        fs::write(&script, SERVER_PY)?;
        self.set_routes("{}")?;
        let (s, r) = (
            script.display().to_string(),
            self.routes().display().to_string(),
        );
        let d = self.lab.dir.display().to_string();
        let (cert, key) = (format!("{d}/server.pem"), format!("{d}/server.key"));
        self.lab
            .spawn(&vne, "http", &["python3", &s, HTTP, "80", &r])?;
        self.lab.spawn(
            &vne,
            "https",
            &["python3", &s, HTTPS, "443", &r, &cert, &key],
        )?;
        for name in ["http", "https"] {
            let t0 = Instant::now();
            while !self.lab.log(name).contains("ready") {
                if t0.elapsed() > Duration::from_secs(10) {
                    return Err(LabError::Timeout(name.into(), t0.elapsed(), d.clone()));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    fn make_certs(&self) -> Result<(), LabError> {
        let d = &self.lab.dir;
        let p = |f: &str| d.join(f).display().to_string();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        for (name, cn) in [("ca", "mape lab CA"), ("other-ca", "mape lab unknown CA")] {
            run(Command::new("openssl")
                .args(["req", "-x509", "-days", "1", "-subj", &format!("/CN={cn}")])
                .args(ec)
                .args([
                    "-keyout",
                    &p(&format!("{name}.key")),
                    "-out",
                    &p(&format!("{name}.pem")),
                ])
                .args(["-addext", "basicConstraints=critical,CA:TRUE"])
                .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]))?;
        }
        run(Command::new("openssl")
            .args(["req", "-subj", "/CN=prov.lab.example"])
            .args(ec)
            .args(["-keyout", &p("server.key"), "-out", &p("server.csr")]))?;
        fs::write(
            d.join("server.ext"),
            format!(
                "subjectAltName=IP:{HTTPS},DNS:prov.lab.example\nbasicConstraints=CA:FALSE\n\
                 keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
            ),
        )?;
        run(Command::new("openssl").args([
            "x509",
            "-req",
            "-days",
            "1",
            "-in",
            &p("server.csr"),
            "-CA",
            &p("ca.pem"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-out",
            &p("server.pem"),
            "-extfile",
            &p("server.ext"),
        ]))?;
        Ok(())
    }

    fn routes(&self) -> PathBuf {
        self.lab.dir.join("routes.json")
    }

    /// Sets the server's answers: a JSON object `{"/path": {"status": N, "headers":
    /// {...}, "body": "..."}}`; a path not listed answers 404.
    pub fn set_routes(&self, routes: &str) -> Result<(), LabError> {
        let tmp = self.lab.dir.join("routes.json.tmp");
        fs::write(&tmp, routes)?;
        fs::rename(&tmp, self.routes())?;
        Ok(())
    }

    /// The request lines (path and query) the server received, oldest first.
    pub fn requests(&self) -> Vec<String> {
        fs::read_to_string(self.lab.dir.join("routes.json.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// (Re)starts the resolver answering `record` as the TXT of 4over6.info; `None`: the
    /// name does not exist (NXDOMAIN).
    pub fn set_txt(&mut self, record: Option<&str>) -> Result<(), LabError> {
        if let Some(pid) = self.dns_pid.take() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            self.lab.wait_pid(pid, Duration::from_secs(5));
        }
        let vne = self.lab.ns("vne");
        let listen = format!("--listen-address={DNS}");
        let txt = record.map(|r| format!("--txt-record=4over6.info,{r}"));
        let mut args = vec![
            "dnsmasq",
            "--no-daemon",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            &listen,
            // Answer for the name from local data only: NXDOMAIN without a record.
            "--local=/4over6.info/",
            // The https server by name (the certificate's DNS SAN), in the lab zone only.
            "--local=/lab.example/",
            "--host-record=prov.lab.example,2001:db8:0:1::443",
            "--log-facility=-",
            "--pid-file=",
            "--user=root",
        ];
        if let Some(t) = &txt {
            args.push(t);
        }
        self.dns_pid = Some(self.lab.spawn(&vne, "dns", &args)?);
        let ce = self.ce();
        let t0 = Instant::now();
        loop {
            let o = self.lab.exec(
                &ce,
                &[
                    "dig",
                    "+time=1",
                    "+tries=1",
                    &format!("@{DNS}"),
                    "4over6.info",
                    "TXT",
                ],
            )?;
            if String::from_utf8_lossy(&o.stdout).contains("status:") {
                return Ok(());
            }
            if t0.elapsed() > Duration::from_secs(10) {
                return Err(LabError::Timeout(
                    "dnsmasq".into(),
                    t0.elapsed(),
                    self.lab.dir.display().to_string(),
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs a command in the CE namespace.
    pub fn exec_ce(&self, args: &[&str]) -> Result<Output, LabError> {
        self.lab.exec(&self.ce(), args)
    }

    /// The CE daemon's control socket.
    pub fn ce_socket(&self) -> PathBuf {
        self.lab.dir.join("ce.sock")
    }

    /// A CE daemon configuration that takes its rule from this line's HB46PP server
    /// (`[provisioning] method = "hb46pp"`, the lab resolver), with `extra` appended.
    pub fn ce_config(&self, extra: &str) -> String {
        self.lab.line_ce_config(
            "prefix = \"2001:db8:12:3400::/56\"",
            &format!(
                "[provisioning]\nmethod = \"hb46pp\"\n[provisioning.hb46pp]\ndns = [\"{DNS}\"]\ntimeout_s = 2\n{extra}"
            ),
        )
    }

    /// Writes `config` and starts `mape run ce` with it in the CE namespace (log `log`);
    /// returns its PID once it answers on its socket.
    pub fn start_ce(&mut self, mape: &str, config: &str, log: &str) -> Result<u32, LabError> {
        let (ce, sock) = (self.ce(), self.ce_socket());
        self.lab.start_ce_in(&ce, mape, config, &sock, log)
    }

    /// Stops a process this lab started (SIGTERM, then waits up to 10 s); its exit status
    /// if it ended.
    pub fn stop(&mut self, pid: u32) -> Option<std::process::ExitStatus> {
        self.lab.stop_pid(pid)
    }

    /// A process's log.
    pub fn log(&self, name: &str) -> String {
        self.lab.log(name)
    }
}

//! The internet's servers (HTTP with a known 10 MB file, dnsmasq for the lab zone, iperf3,
//! a second web server, the UDP echo and TCP accept-and-close listeners, coturn on demand)
//! and the silent sink; waiting until they listen and the path through the tunnel works.

use std::fs;
use std::io::Write;
use std::time::{Duration, Instant};

use crate::addr;
use crate::churn;
use crate::error::LabError;
use crate::topology::Lab;

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
    /// Waits until lan1 resolves the lab's web name and fetches its page through the tunnel
    /// ([`lan1_iteration`]): servers listening, neighbour caches filled, the whole path
    /// proven before any test counts anything.
    pub(crate) fn warm_up(&self) -> Result<(), LabError> {
        let limit = Duration::from_secs(15);
        let t0 = Instant::now();
        self.wait_listeners(limit)?;
        while t0.elapsed() < limit {
            if lan1_iteration(self) {
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
    pub(crate) fn wait_listeners(&self, limit: Duration) -> Result<(), LabError> {
        let inet = self.ns("inet");
        let want = [
            ("-Hltn", "203.0.113.10:80".to_string()),
            ("-Hltn", "203.0.113.11:80".to_string()),
            ("-Hltn", format!("203.0.113.10:{}", churn::TCP_CLOSE_PORT)),
            ("-Hltn", format!("203.0.113.10:{}", churn::TCP_WAIT_PORT)),
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

    pub(crate) fn start_servers(&mut self, inet: &str, sink: &str) -> Result<(), LabError> {
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
        let wait = format!("203.0.113.10:{}", churn::TCP_WAIT_PORT);
        self.spawn(inet, "tcp-wait", &["python3", &servers, "tcp-wait", &wait])?;
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
}

/// One lan1 iteration: resolve with dig, then fetch with curl. True when both worked.
pub fn lan1_iteration(lab: &Lab) -> bool {
    let ns = lab.ns("lan1");
    let Ok(out) = lab.exec(
        &ns,
        &[
            "dig",
            "+time=1",
            "+tries=1",
            "+short",
            "@203.0.113.10",
            addr::WWW,
        ],
    ) else {
        return false;
    };
    let answer = String::from_utf8_lossy(&out.stdout);
    let Some(ip) = answer
        .lines()
        .find(|l| l.parse::<std::net::Ipv4Addr>().is_ok())
    else {
        return false;
    };
    let resolve = format!("{}:80:{ip}", addr::WWW);
    let url = format!("http://{}/index.html", addr::WWW);
    lab.exec(
        &ns,
        &["curl", "-s", "-f", "-m", "2", "--resolve", &resolve, &url],
    )
    .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("mape lab"))
    .unwrap_or(false)
}

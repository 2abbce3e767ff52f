//! Port mappings from the LAN side (issue #15 §2), in the lab with real clients:
//!
//! - `natpmpc` (Debian's NAT-PMP client, RFC 6886) on lan1 asks for TCP 8080. The lab
//!   CE's port set is PSID 0x34 of 8 bits, offset 4 (RFC 7597 §5.1): ports
//!   A·4096 + 0x340 + M, i.e. 4928-4943, 9024-9039, ...; 8080 is not in it, and the
//!   nearest port of the set is 9024 (944 away; 4943 is 3137 away), which is what the
//!   client must be told. A server on lan1 is then reached from the lab's internet host
//!   through the BR at 192.0.2.18:9024; after the delete (lifetime 0) a new connection
//!   is not let in.
//! - A PCP client (RFC 6887) whose request bytes are built here by hand from Figure 2
//!   (request header) and Figure 9 (MAP payload), its replies read with mape-wire's
//!   parser: a suggested port in the set is granted as is, one outside it gets the
//!   nearest in-set port, PREFER_FAILURE outside the set is CANNOT_PROVIDE_EXTERNAL,
//!   another host's address is ADDRESS_MISMATCH, and once lan1 holds its share of TCP
//!   ports (half of 240 while lan2 is active too) the next MAP is NO_RESOURCES.
//!
//! - `upnpc` (miniupnpc, UPnP IGD) finds the CE by SSDP from lan1: AddPortMapping of a
//!   port outside the set is ConflictInMappingEntry (718), of an in-set port works from
//!   the internet, AddAnyPortMapping of an outside port gets an in-set one, and
//!   DeletePortMapping closes it.
//!
//! Needs root, python3, natpmpc and miniupnpc (.ci/apt-packages.txt). Without them the test skips,
//! except under CI (CI=true). Bounded: every client has a timeout of a few seconds.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use mape_control::Request;
use mape_lab::{addr, Lab, LabOptions};
use mape_rules::PortSet;
use mape_wire::pcp;

mod common;
use common::{bin as mape, text};

/// A TCP server: every connection gets one line and is closed.
const SERVER: &str = r#"
import socket, sys
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", int(sys.argv[1])))
srv.listen()
while True:
    c, peer = srv.accept()
    c.sendall(b"mapped-ok\n")
    c.close()
"#;

/// One TCP connection with a 3 s timeout: prints what the server sent, exits 1 on
/// failure.
const CONNECT: &str = r#"
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
    print(s.recv(64).decode().strip())
except Exception as e:
    print("FAIL", e)
    sys.exit(1)
"#;

/// UDP to the PCP server: each argument is a request in hex, sent in turn; each reply
/// printed in hex on its own line ("none" after 2 s without one).
const UDP_ASK: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
for h in sys.argv[2:]:
    s.sendto(bytes.fromhex(h), (sys.argv[1], 5351))
    try:
        print(s.recv(2048).hex())
    except socket.timeout:
        print("none")
"#;

/// The lab CE's port set (RFC 7597 Appendix A example 1's rule, PSID 0x34).
fn lab_ports() -> PortSet {
    PortSet::new(0x34, 8, 4).expect("lab port set")
}

/// RFC 6887 Figure 2 + Figure 9, byte by byte: version 2, R 0 and opcode 1 (MAP),
/// reserved 16 bits, requested lifetime 32 bits, PCP client's IP address 128 bits
/// (IPv4-mapped, ::ffff:a.b.c.d); mapping nonce 96 bits, protocol 8 bits, reserved 24
/// bits, internal port, suggested external port, suggested external IP 128 bits; then
/// options (`options`: whole option bytes).
fn map_request(
    client: Ipv4Addr,
    nonce: u8,
    proto: u8,
    internal: u16,
    suggested: u16,
    lifetime: u32,
    options: &[u8],
) -> String {
    let mut b = vec![0x02, 0x01, 0x00, 0x00];
    b.extend_from_slice(&lifetime.to_be_bytes());
    b.extend_from_slice(&[0; 10]);
    b.extend_from_slice(&[0xff, 0xff]);
    b.extend_from_slice(&client.octets());
    b.extend_from_slice(&[nonce; 12]);
    b.extend_from_slice(&[proto, 0, 0, 0]);
    b.extend_from_slice(&internal.to_be_bytes());
    b.extend_from_slice(&suggested.to_be_bytes());
    b.extend_from_slice(&[0; 16]);
    b.extend_from_slice(options);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// PREFER_FAILURE (RFC 6887 §13.2): option code 2, reserved, length 0.
const PREFER_FAILURE: [u8; 4] = [0x02, 0x00, 0x00, 0x00];

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// The (result code, lifetime, assigned external port) of each reply; `None` for none.
fn ask(lab: &Lab, ns: &str, requests: &[String]) -> Vec<Option<(u8, u32, u16)>> {
    let gw = addr::CE_LAN.to_string();
    let mut args = vec!["python3", "-c", UDP_ASK, gw.as_str()];
    args.extend(requests.iter().map(String::as_str));
    let o = lab.exec(ns, &args).expect("pcp client");
    assert!(o.status.success(), "pcp client: {}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let bytes = unhex(l.trim());
            let r = pcp::Response::parse(&bytes).ok()?;
            let port = match r.op {
                pcp::ResponseOp::Map(m) => m.external_port,
                _ => 0,
            };
            Some((r.result, r.lifetime, port))
        })
        .collect()
}

fn connect(lab: &Lab, port: u16) -> (bool, String) {
    let inet = lab.ns("inet");
    let ext = addr::CE_EXTERNAL.to_string();
    let port = port.to_string();
    let o = lab
        .exec(&inet, &["python3", "-c", CONNECT, &ext, &port])
        .expect("connect");
    (o.status.success(), text(&o))
}

/// The port natpmpc said it got ("Mapped public port N protocol TCP to local port ...").
fn natpmpc_port(out: &str) -> Option<u16> {
    let at = out.find("Mapped public port ")? + "Mapped public port ".len();
    out[at..].split_whitespace().next()?.parse().ok()
}

/// `upnpc` on lan1, SSDP from lan1's address; its output (success or not). `-i`: the
/// lab's external address is in 192.0.2.0/24 (TEST-NET-1), which miniupnpc takes for a
/// reserved one and the IGD for "not connected" unless told to go on.
fn upnpc(lab: &Lab, args: &[&str]) -> String {
    let lan1 = lab.ns("lan1");
    let me = addr::LAN1.to_string();
    let mut argv = vec!["timeout", "15", "upnpc", "-i", "-m", me.as_str()];
    argv.extend_from_slice(args);
    let o = lab.exec(&lan1, &argv).expect("upnpc");
    text(&o)
}

fn natpmpc(lab: &Lab, public: u16, private: u16, lifetime: u32) -> String {
    let lan1 = lab.ns("lan1");
    let gw = addr::CE_LAN.to_string();
    let (public, private, lifetime) = (
        public.to_string(),
        private.to_string(),
        lifetime.to_string(),
    );
    let o = lab
        .exec(
            &lan1,
            &[
                "timeout", "10", "natpmpc", "-g", &gw, "-a", &public, &private, "tcp", &lifetime,
            ],
        )
        .expect("natpmpc");
    let out = text(&o);
    assert!(o.status.success(), "natpmpc: {out}");
    out
}

/// TCP ports lan1 holds now (the CE's snapshot).
fn tcp_ports_of(lab: &Lab, host: Ipv4Addr) -> u64 {
    let snap = lab.ce_query(&Request::Snapshot).expect("snapshot");
    snap["hosts"]
        .as_array()
        .and_then(|hs| {
            hs.iter()
                .find(|h| h["addr"].as_str() == Some(&host.to_string()))
        })
        .and_then(|h| h["ports_by_proto"][0].as_u64())
        .unwrap_or(0)
}

fn wait_for_listener(lab: &Lab, port: u16) {
    let lan1 = lab.ns("lan1");
    let deadline = Instant::now() + Duration::from_secs(10);
    let want = format!(":{port} ");
    while Instant::now() < deadline {
        let o = lab.exec(&lan1, &["ss", "-ltn"]).expect("ss");
        if text(&o).contains(&want) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no listener on {port} in lan1");
}

#[test]
fn lan_apps_get_ports_inside_the_set_and_are_reached_through_the_br() {
    if !mape_lab::possible_or_skip("port mapping lab test") {
        return;
    }
    if std::process::Command::new("sh")
        .args(["-c", "command -v natpmpc && command -v upnpc"])
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "natpmpc or upnpc missing under CI (.ci/apt-packages.txt)"
        );
        eprintln!("skipping: natpmpc or upnpc not installed");
        return;
    }
    let mut opts = LabOptions::new(mape(), "mape");
    opts.mappings
        .push_str("\nmax_per_host = 300\nrequests_per_sec = 2000\n");
    let mut lab = Lab::up(opts).expect("lab up");
    let lan1 = lab.ns("lan1");
    let lan2 = lab.ns("lan2");

    // --- NAT-PMP with natpmpc -------------------------------------------------------
    lab.spawn(&lan1, "server", &["python3", "-c", SERVER, "8080"])
        .expect("server");
    wait_for_listener(&lab, 8080);
    let out = natpmpc(&lab, 0, 8080, 600);
    eprintln!("natpmpc: {out}");
    let port = natpmpc_port(&out).unwrap_or_else(|| panic!("no mapping in: {out}"));
    assert_eq!(port, 9024, "the in-set port nearest to 8080: {out}");
    assert!(lab_ports().contains(port));
    assert!(out.contains(&addr::CE_EXTERNAL.to_string()), "{out}");
    let shown = lab.ce_query(&Request::Mappings).expect("mappings");
    assert_eq!(shown[0]["external"], format!("{}:9024", addr::CE_EXTERNAL));
    assert_eq!(shown[0]["internal"], format!("{}:8080", addr::LAN1));
    assert_eq!(shown[0]["origin"], "nat_pmp");
    // `mape show mappings` prints the same.
    let socket = lab.ce_socket().display().to_string();
    let o = std::process::Command::new(mape())
        .args(["show", "mappings", "--socket", &socket])
        .output()
        .expect("mape show mappings");
    let table = text(&o);
    assert!(
        table.contains("192.0.2.18:9024") && table.contains("nat_pmp"),
        "{table}"
    );

    // Reached from the internet through the BR.
    let (ok, got) = connect(&lab, port);
    assert!(
        ok && got.contains("mapped-ok"),
        "inbound through the mapping: {got}"
    );

    // Deleted: a new connection is not let in.
    let out = natpmpc(&lab, port, 8080, 0);
    eprintln!("natpmpc delete: {out}");
    let shown = lab.ce_query(&Request::Mappings).expect("mappings");
    assert_eq!(shown.as_array().map(Vec::len), Some(0), "{shown}");
    let (ok, got) = connect(&lab, port);
    assert!(!ok, "a new connection after the delete: {got}");

    // Expired: a 2 s mapping works, then its lifetime runs out and it closes. 9024 is
    // still held by the closed connection's TIME_WAIT, so the nearest free port is 9025.
    let out = natpmpc(&lab, 0, 8080, 2);
    let short = natpmpc_port(&out).unwrap_or_else(|| panic!("no mapping in: {out}"));
    assert_eq!(short, 9025, "{out}");
    let (ok, got) = connect(&lab, short);
    assert!(ok && got.contains("mapped-ok"), "before expiry: {got}");
    std::thread::sleep(Duration::from_millis(2500));
    let shown = lab.ce_query(&Request::Mappings).expect("mappings");
    assert_eq!(shown.as_array().map(Vec::len), Some(0), "expired: {shown}");
    let (ok, got) = connect(&lab, short);
    assert!(!ok, "a new connection after the expiry: {got}");

    // --- PCP by hand -----------------------------------------------------------------
    let me = addr::LAN1;
    let first = lab_ports().nth(2).expect("port"); // 4930
    let got = ask(
        &lab,
        &lan1,
        &[
            // Suggested 4930, in the set and free: granted.
            map_request(me, 1, 6, 8081, first, 3600, &[]),
            // Suggested 8000, outside the set: the nearest free in-set port. 9024 (1024
            // away; 4943 is 3057 away) and 9025 are held by the TIME_WAIT of the two
            // closed connections, so 9026.
            map_request(me, 2, 6, 8082, 8000, 3600, &[]),
            // PREFER_FAILURE outside the set: CANNOT_PROVIDE_EXTERNAL (11).
            map_request(me, 3, 6, 8083, 8000, 3600, &PREFER_FAILURE),
            // lan2's address from lan1: ADDRESS_MISMATCH (12).
            map_request(addr::LAN2, 4, 6, 8084, 0, 3600, &[]),
        ],
    );
    assert_eq!(got[0], Some((0, 3600, 4930)), "{got:?}");
    assert_eq!(got[1], Some((0, 3600, 9026)), "{got:?}");
    assert_eq!(got[2].map(|g| g.0), Some(11), "{got:?}");
    assert_eq!(got[3].map(|g| g.0), Some(12), "{got:?}");

    // --- UPnP IGD with upnpc (discovery by SSDP multicast from lan1) -----------------
    // 8080 is outside the set: an IGD:1 AddPortMapping cannot be told another port, so
    // ConflictInMappingEntry (718).
    let out = upnpc(&lab, &["-a", "192.168.10.10", "8080", "8080", "TCP"]);
    assert!(out.contains("718"), "out of set: {out}");
    // 4933 is in the set and free: granted, and reached through the BR.
    let out = upnpc(&lab, &["-a", "192.168.10.10", "8080", "4933", "TCP"]);
    assert!(
        out.contains("external 192.0.2.18:4933 TCP is redirected to internal 192.168.10.10:8080"),
        "{out}"
    );
    let (ok, got) = connect(&lab, 4933);
    assert!(
        ok && got.contains("mapped-ok"),
        "inbound through the IGD mapping: {got}"
    );
    let out = upnpc(&lab, &["-l"]);
    assert!(out.contains("4933->192.168.10.10:8080"), "listed: {out}");
    // AddAnyPortMapping with 8000: an in-set port instead (the nearest free one).
    let out = upnpc(&lab, &["-n", "192.168.10.10", "8085", "8000", "TCP"]);
    let shown = lab.ce_query(&Request::Mappings).expect("mappings");
    let any = shown
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["internal"] == "192.168.10.10:8085")
        .unwrap_or_else(|| panic!("AddAnyPortMapping: {out} {shown}"));
    assert_eq!(any["origin"], "upnp");
    let any_port: u16 = any["external"]
        .as_str()
        .and_then(|e| e.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .expect("port");
    assert!(lab_ports().contains(any_port), "{any}");
    // Deleted: closed to new connections.
    let out = upnpc(&lab, &["-d", "4933", "TCP"]);
    eprintln!("upnpc -d: {out}");
    let (ok, got) = connect(&lab, 4933);
    assert!(!ok, "a new connection after DeletePortMapping: {got}");

    // --- mape doctor names the app asking outside the set (the miniupnpd failure mode)
    // lan1 asked for ports outside the set four times: PCP 8000 twice, UPnP 8080
    // (AddPortMapping) and UPnP 8000 (AddAnyPortMapping), the last.
    let st = lab.ce_query(&Request::Status).expect("status");
    let asks = &st["mapping_asks_outside_set"];
    assert_eq!(asks[0]["host"], addr::LAN1.to_string(), "{asks}");
    assert!(asks[0]["requests"].as_u64() >= Some(4), "{asks}");
    assert_eq!(
        (&asks[0]["via"], &asks[0]["proto"], &asks[0]["port"]),
        (&"upnp".into(), &"tcp".into(), &8000.into()),
        "{asks}"
    );
    let m = mape().display().to_string();
    let cfg = lab.dir.join("ce.toml").display().to_string();
    let ce = lab.ns("ce");
    let o = lab
        .exec(
            &ce,
            &[&m, "doctor", "--config", &cfg, "--no-probe", "--json"],
        )
        .expect("doctor");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("doctor json");
    let check = v["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == "mappings")
        .unwrap_or_else(|| panic!("no mappings check: {v}"));
    assert_eq!(check["level"], "warn", "{check}");
    let msg = check["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("192.168.10.10 asked") && msg.contains("(last: TCP port 8000 by UPnP IGD)"),
        "{msg}"
    );
    assert!(msg.contains("4928-4943"), "{msg}");
    assert!(
        check["fix"]
            .as_str()
            .unwrap_or("")
            .contains("app on 192.168.10.10"),
        "{check}"
    );

    // Share: lan2 takes one UDP mapping (it is active now), so lan1 may hold 120 TCP
    // ports (the mape policy's 50 % of 240); its requests succeed up to there, then
    // NO_RESOURCES (8).
    let lan2_map = ask(
        &lab,
        &lan2,
        &[map_request(addr::LAN2, 5, 17, 9000, 0, 3600, &[])],
    );
    assert_eq!(lan2_map[0].map(|g| g.0), Some(0), "{lan2_map:?}");
    let held = tcp_ports_of(&lab, me);
    // lan1 holds its TCP mappings and the ports of its TCP flows still alive outside
    // them (the closed connections' TIME_WAIT, and the lab's own readiness check over
    // HTTP).
    let mapped: Vec<String> = lab
        .ce_query(&Request::Mappings)
        .expect("mappings")
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| {
            m["proto"] == "tcp"
                && m["internal"]
                    .as_str()
                    .is_some_and(|i| i.starts_with("192.168.10.10:"))
        })
        .filter_map(|m| m["external"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(mapped.len(), 3, "4930, 9026 and the AddAny one: {mapped:?}");
    let sessions = lab
        .ce_query(&Request::Sessions(Default::default()))
        .expect("sessions");
    let mut flow_ports: Vec<&str> = sessions
        .as_array()
        .into_iter()
        .flatten()
        .filter(|x| x["proto"] == "tcp")
        .filter(|x| {
            x["internal"]
                .as_str()
                .is_some_and(|i| i.starts_with("192.168.10.10:"))
        })
        .filter_map(|x| x["external"].as_str())
        .filter(|e| !mapped.iter().any(|m| m == e))
        .collect();
    flow_ports.sort_unstable();
    flow_ports.dedup();
    for closed in ["192.0.2.18:9024", "192.0.2.18:9025", "192.0.2.18:4933"] {
        assert!(flow_ports.contains(&closed), "{closed}: {sessions}");
    }
    assert_eq!(held, 3 + flow_ports.len() as u64, "{sessions}");
    let requests: Vec<String> = (0..130u16)
        .map(|i| map_request(me, 6, 6, 20_000 + i, 0, 600, &[]))
        .collect();
    let got = ask(&lab, &lan1, &requests);
    let granted = got.iter().take_while(|g| g.map(|g| g.0) == Some(0)).count();
    assert_eq!(granted as u64 + held, 120, "{got:?}");
    assert_eq!(got[granted].map(|g| (g.0, g.1)), Some((8, 30)), "{got:?}");
    for g in &got[..granted] {
        assert!(lab_ports().contains(g.expect("granted").2));
    }
    assert_eq!(tcp_ports_of(&lab, me), 120);
    lab.teardown();
}

#[test]
fn natpmpc_output_is_read() {
    let out = "initnatpmp() returned 0 (SUCCESS)\nPublic IP address : 192.0.2.18\nepoch = 12\nMapped public port 9024 protocol TCP to local port 8080 liftime 600\nepoch = 12\nclosenatpmp() returned 0 (SUCCESS)\n";
    assert_eq!(natpmpc_port(out), Some(9024));
    assert_eq!(natpmpc_port("sendnewportmappingrequest returned -7"), None);
    assert_eq!(unhex("02810008"), [2, 0x81, 0, 8]);
    // The hand-built request is what mape-wire parses as the same MAP (independent
    // layouts agree).
    let req = unhex(&map_request(
        addr::LAN1,
        9,
        6,
        8081,
        4930,
        3600,
        &PREFER_FAILURE,
    ));
    assert_eq!(req.len(), 64);
    let parsed = pcp::Request::parse(&req).expect("parses");
    assert_eq!(parsed.lifetime, 3600);
    assert_eq!(parsed.client_ip, addr::LAN1.to_ipv6_mapped());
    let pcp::RequestOp::Map(m) = parsed.op else {
        panic!("not MAP")
    };
    assert_eq!(
        (m.protocol, m.internal_port, m.external_port),
        (6, 8081, 4930)
    );
    assert_eq!(
        parsed.options.iter().map(|(c, _)| c).collect::<Vec<_>>(),
        [2]
    );
    assert_eq!(lab_ports().nth(0), Some(addr::LAB_PORTS_FIRST));
}

/// Listens on lan1 as the RFCs' clients do: UDP 5350 on every address, member of
/// 224.0.0.1 (RFC 6886 §3.2.1, RFC 6887 §14.1.3); prints "ready", then each datagram as
/// "<ms since ready> <source ip>:<port> <hex>" until `argv[1]` seconds have passed.
const LISTEN_5350: &str = r#"
import socket, struct, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5350))
try:
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                 struct.pack("4s4s", socket.inet_aton("224.0.0.1"), socket.inet_aton("0.0.0.0")))
except OSError:
    pass
print("ready", flush=True)
t0 = time.monotonic()
end = t0 + float(sys.argv[1])
while time.monotonic() < end:
    s.settimeout(max(0.05, end - time.monotonic()))
    try:
        d, a = s.recvfrom(2048)
    except socket.timeout:
        continue
    print(int((time.monotonic() - t0) * 1000), "%s:%d" % a, d.hex(), flush=True)
"#;

/// After the CE restarts, lan1 hears it announce itself (RFC 6886 §3.2.1, RFC 6887
/// §14.1.3): NAT-PMP's external address response (version 0, opcode 128, the lab CE's
/// external address) and PCP's ANNOUNCE response (version 2, R 1 opcode 0, SUCCESS,
/// lifetime 0), from the CE's LAN address port 5351 to 224.0.0.1:5350, several rounds
/// spaced 250 ms, 500 ms, ... apart, the epoch starting near 0.
#[test]
fn the_ce_announces_after_a_restart() {
    use std::io::{BufRead, BufReader};
    if !mape_lab::possible_or_skip("port mapping announcement lab test") {
        return;
    }
    let mut lab = Lab::up(LabOptions::new(mape(), "mape")).expect("lab up");
    let lan1 = lab.ns("lan1");
    let mut listener = std::process::Command::new("ip")
        .args(["netns", "exec", &lan1, "python3", "-c", LISTEN_5350, "25"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("listener");
    let mut lines = BufReader::new(listener.stdout.take().expect("stdout")).lines();
    assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("ready"));
    let fast_path = std::env::var("MAPE_LAB_FAST_PATH").unwrap_or_else(|_| "auto".into());
    lab.restart_daemons(&fast_path).expect("restart");
    let _ = listener.wait();
    let got: Vec<(u64, String, Vec<u8>)> = lines
        .map_while(Result::ok)
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((
                w.next()?.parse().ok()?,
                w.next()?.to_owned(),
                unhex(w.next()?),
            ))
        })
        .collect();
    lab.teardown();
    let from = format!("{}:5351", addr::CE_LAN);
    assert!(got.iter().all(|(_, src, _)| *src == from), "{got:?}");
    let natpmp: Vec<&(u64, String, Vec<u8>)> = got
        .iter()
        .filter(|(_, _, d)| d.first() == Some(&0))
        .collect();
    let pcp_ann: Vec<&(u64, String, Vec<u8>)> = got
        .iter()
        .filter(|(_, _, d)| d.first() == Some(&2))
        .collect();
    // Ten rounds span 127.75 s; in the 25 s listened at least the first seven come.
    assert!(natpmp.len() >= 7 && pcp_ann.len() >= 7, "{got:?}");
    for (_, _, d) in &natpmp {
        assert_eq!(d.len(), 12, "{d:?}");
        assert_eq!(&d[..4], &[0, 128, 0, 0]);
        assert_eq!(&d[8..12], &addr::CE_EXTERNAL.octets());
    }
    for (_, _, d) in &pcp_ann {
        let r = pcp::Response::parse(d).expect("an ANNOUNCE response");
        assert_eq!(
            (r.op, r.result, r.lifetime),
            (pcp::ResponseOp::Announce, 0, 0)
        );
    }
    // The epoch starts over: the first rounds say 0 seconds.
    let epoch = |d: &[u8]| u32::from_be_bytes([d[4], d[5], d[6], d[7]]);
    assert_eq!(epoch(&natpmp[0].2), 0, "{got:?}");
    assert_eq!(pcp::Response::parse(&pcp_ann[0].2).map(|r| r.epoch), Ok(0));
    // The gaps double: 250, 500, 1000, 2000, 4000 ms (±150 ms of scheduling).
    let at: Vec<u64> = natpmp.iter().map(|x| x.0).collect();
    for (i, w) in at.windows(2).take(5).enumerate() {
        let want = 250u64 << i;
        assert!(
            w[1] - w[0] + 150 >= want && w[1] - w[0] <= want + 150,
            "{at:?}"
        );
    }
}

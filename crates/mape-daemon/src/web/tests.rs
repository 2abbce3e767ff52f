//! The page's handlers without a socket (tower's `oneshot`), over a real CE pipeline built
//! from the lab's configuration, with one flow through it.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;
use crate::config::tests::LAB;
use crate::config::Settings;
use crate::control::tests::udp4;
use crate::counters::IoCounters;

const PASSWORD: &str = "lan page test";

/// One hash for every test (argon2 is slow by design).
fn hash() -> &'static str {
    static H: OnceLock<String> = OnceLock::new();
    H.get_or_init(|| auth::hash_password(PASSWORD).unwrap())
}

fn web() -> Shared {
    let settings = Settings::parse(LAB, std::path::Path::new("test.toml")).unwrap();
    let pipeline = crate::pipeline::build(&settings).unwrap();
    let ctx = Context {
        shared: Arc::new(Mutex::new(pipeline)),
        start: Instant::now(),
        up_since: Instant::now(),
        counters: Arc::new(IoCounters::default()),
        config_path: "test.toml".into(),
        provisioning: None,
        portmap: Arc::default(),
    };
    Web::new(ctx, hash().to_string())
}

/// A LAN host's DNS query through the CE: one UDP port taken.
fn one_flow(web: &Web) {
    let pkt = udp4(
        Ipv4Addr::new(192, 168, 1, 10),
        40000,
        Ipv4Addr::new(203, 0, 113, 10),
        53,
        b"query",
    );
    let mut p = web.ctx.shared.lock().unwrap();
    p.process_batch(now_since(web.ctx.start), &[&pkt], &mut |_| {});
}

const PEER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10)), 50000);

fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut r = Request::get(path);
    if let Some(c) = cookie {
        r = r.header(header::COOKIE, c);
    }
    r.body(Body::empty()).unwrap()
}

fn post_login(password: &str, peer: SocketAddr) -> Request<Body> {
    Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .extension(ConnectInfo(Peer(peer)))
        .body(Body::from(format!(
            "password={}",
            password.replace(' ', "+")
        )))
        .unwrap()
}

async fn send(web: &Shared, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let r = router(web.clone()).oneshot(req).await.unwrap();
    let (parts, body) = r.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// Logs in; the `Cookie` header value to send afterwards.
async fn log_in(web: &Shared) -> String {
    let (status, headers, _) = send(web, post_login(PASSWORD, PEER)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let set = headers[header::SET_COOKIE].to_str().unwrap();
    set.split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn without_a_login_the_page_redirects_and_the_data_is_refused() {
    let web = web();
    let (status, headers, _) = send(&web, get("/", None)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/login");
    let (status, _, _) = send(&web, get("/api/status", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A made-up token is no login either.
    let (status, _, _) = send(&web, get("/api/status", Some("mape_session=00ff"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, body) = send(&web, get("/login", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(r#"type="password""#), "{body}");
    assert!(body.contains(r#"name="viewport""#), "{body}");
}

#[tokio::test]
async fn a_wrong_password_is_401_and_gives_no_cookie() {
    let web = web();
    let (status, headers, body) = send(&web, post_login("lan page tesT", PEER)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.get(header::SET_COOKIE).is_none());
    assert!(body.contains("Wrong password."), "{body}");
}

#[tokio::test]
async fn the_right_password_gives_a_strict_httponly_session_cookie() {
    let web = web();
    let (status, headers, _) = send(&web, post_login(PASSWORD, PEER)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/");
    let set = headers[header::SET_COOKIE].to_str().unwrap();
    let attrs: Vec<&str> = set.split("; ").collect();
    assert!(attrs[0].starts_with("mape_session="), "{set}");
    assert_eq!(attrs[0].len(), "mape_session=".len() + 64, "{set}");
    for a in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(attrs.contains(&a), "{a} missing: {set}");
    }
    let cookie = attrs[0].to_string();
    let (status, _, body) = send(&web, get("/", Some(&cookie))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(r#"id="gauge-used""#), "{body}");
    // The login form sends a logged-in person to the page.
    let (status, headers, _) = send(&web, get("/login", Some(&cookie))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/");
}

#[tokio::test]
async fn the_json_counts_what_the_engine_counts() {
    let web = web();
    one_flow(&web);
    web.sample();
    let cookie = log_in(&web).await;
    let (status, headers, body) = send(&web, get("/api/status", Some(&cookie))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    let d: PageData = serde_json::from_str(&body).unwrap();
    // The lab rule: PSID offset 4 and 8 PSID bits leave 4 bits, 16 ports a range, in the
    // 15 ranges above port 4095: 240 ports. One DNS query holds one UDP port.
    assert_eq!(d.budget.total, 240);
    assert_eq!(d.budget.used, 1);
    assert_eq!(d.budget.peak, 1);
    let udp = d
        .budget
        .protocols
        .iter()
        .find(|p| p.proto == "udp")
        .unwrap();
    assert_eq!((udp.used, udp.total), (1, 240));
    assert_eq!(d.hosts.len(), 1);
    assert_eq!(
        (d.hosts[0].addr.as_str(), d.hosts[0].ports),
        ("192.168.1.10", 1)
    );
    assert_eq!(d.destinations[0].dst, "203.0.113.10:53");
    assert_eq!(d.history.len(), 1);
    assert_eq!(d.history[0].used, 1);
    // tcp: the configuration's static forward (tcp 4930) holds its port; udp: the query.
    assert_eq!(d.history[0].by_proto, [1, 1, 0]);
    // The banner is `mape show culprits`' text.
    assert_eq!(d.culprit.host, None);
    assert_eq!(d.culprit.lines, ["no culprit: no host stands out"]);
    let rule: std::collections::HashMap<_, _> = d.rule.fields.iter().cloned().collect();
    assert_eq!(rule["ipv4"], "192.0.2.18");
    assert!(rule.contains_key("rule source"), "{rule:?}");
    // The page itself shows the same number.
    let (_, _, html) = send(&web, get("/", Some(&cookie))).await;
    assert!(html.contains(r#"<span id="gauge-used">1</span>"#), "{html}");
    assert!(
        html.contains(r#"<span id="gauge-total">240</span>"#),
        "{html}"
    );
}

#[tokio::test]
async fn logins_are_rate_limited_per_source() {
    let web = web();
    let (status, _, _) = send(&web, post_login("guess", PEER)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The rest of the burst, taken at once (an argon2 check lasts long enough in a debug
    // build for the bucket to refill between attempts sent one after the other; the
    // counting itself is `auth`'s test, with explicit times).
    let now = Instant::now();
    for _ in 1..auth::ATTEMPTS_BURST {
        assert!(web.limiter.lock().unwrap().allow(PEER.ip(), now));
    }
    // Over the burst: refused before the password is looked at, even the right one.
    let (status, headers, _) = send(&web, post_login(PASSWORD, PEER)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.get(header::SET_COOKIE).is_none());
    // Another LAN host is not locked out by the guesser.
    let other = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 11)), 50000);
    let (status, _, _) = send(&web, post_login(PASSWORD, other)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn logout_ends_the_session_on_the_server() {
    let web = web();
    let cookie = log_in(&web).await;
    let req = Request::post("/logout")
        .header(header::COOKIE, &cookie)
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = send(&web, req).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    // The old cookie, replayed, is refused.
    let (status, _, _) = send(&web, get("/api/status", Some(&cookie))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn assets_come_from_the_binary_and_name_no_other_site() {
    let web = web();
    let (status, headers, css) = send(&web, get("/assets/status.css", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    let (status, headers, js) = send(&web, get("/assets/status.js", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let cookie = log_in(&web).await;
    let (_, _, html) = send(&web, get("/", Some(&cookie))).await;
    for (name, text) in [("css", &css), ("js", &js), ("html", &html)] {
        for bad in ["@import", "url(", "src=\"http", "href=\"http", "//cdn"] {
            assert!(!text.contains(bad), "{name} has {bad}");
        }
    }
    // The only absolute URL in the script is the SVG namespace, which is never fetched.
    assert_eq!(js.matches("://").count(), 1);
    assert!(js.contains("fetch(\"/api/status\""));
}

#[test]
fn only_lan_peers_are_served() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let settings = WebSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            password_hash: hash().to_string(),
            lan: vec!["192.168.10.0/24".parse().unwrap()],
        };
        let l = LanOnly::bind(&settings).await.unwrap();
        let lan = |s: &str| serves(&settings.lan, &s.parse::<SocketAddr>().unwrap());
        assert!(lan("192.168.10.23:40000"));
        assert!(lan("[::ffff:192.168.10.23]:40000"));
        assert!(!lan("192.168.11.23:40000"));
        assert!(!lan("203.0.113.10:40000"));
        assert!(!lan("[2001:db8:0:1::1]:40000"));
        // And a real connection from outside the LAN (loopback here) is closed unanswered.
        let addr = axum::serve::Listener::local_addr(&l).unwrap();
        let server = tokio::spawn(serve(l, web()));
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        c.write_all(b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .ok();
        let mut buf = Vec::new();
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), c.read_to_end(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0, "answered: {}", String::from_utf8_lossy(&buf));
        server.abort();
    });
}

#[tokio::test(start_paused = true)]
async fn a_silent_connection_is_closed_after_the_idle_time() {
    use tokio::io::AsyncReadExt;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let slots = Arc::new(tokio::sync::Semaphore::new(1));
    let client = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (io, _) = l.accept().await.unwrap();
    let mut c = conn::Conn::new(io, slots.clone().try_acquire_owned().unwrap());
    assert_eq!(slots.available_permits(), 0);
    let mut buf = [0u8; 16];
    let t0 = tokio::time::Instant::now();
    // The paused clock jumps to the idle deadline once nothing else can happen.
    let e = c.read(&mut buf).await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
    assert_eq!(t0.elapsed(), conn::IDLE);
    drop(c);
    assert_eq!(slots.available_permits(), 1);
    drop(client);
}

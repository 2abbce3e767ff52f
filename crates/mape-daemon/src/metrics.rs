//! Prometheus exposition on a localhost address: conventional names and units (budget and
//! ports in use by protocol, sessions, refusals and drops by reason as counters, per-host
//! ports held for the top hosts plus "other", packets and bytes each way). Built fresh from
//! the pipeline at each scrape, so the packet path never touches a metric.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use mape_control::reply::IoStatus;

type Labels = Vec<(String, String)>;

/// A scrape being assembled.
#[derive(Default)]
pub struct Metrics {
    registry: Registry,
    gauges: HashMap<&'static str, Family<Labels, Gauge<i64, std::sync::atomic::AtomicI64>>>,
    counters: HashMap<&'static str, Family<Labels, Counter<u64, AtomicU64>>>,
}

fn labels(l: &[(&str, &str)]) -> Labels {
    l.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Metrics {
    /// Sets gauge `name{labels}` to `value`.
    pub fn gauge(&mut self, name: &'static str, help: &str, l: &[(&str, &str)], value: u64) {
        let fam = self.gauges.entry(name).or_insert_with(|| {
            let f = Family::<Labels, Gauge<i64, std::sync::atomic::AtomicI64>>::default();
            self.registry.register(name, help, f.clone());
            f
        });
        fam.get_or_create(&labels(l))
            .set(i64::try_from(value).unwrap_or(i64::MAX));
    }

    /// Sets counter `name{labels}` (exposed as `name_total`) to `value`.
    pub fn counter(&mut self, name: &'static str, help: &str, l: &[(&str, &str)], value: u64) {
        let fam = self.counters.entry(name).or_insert_with(|| {
            let f = Family::<Labels, Counter<u64, AtomicU64>>::default();
            self.registry.register(name, help, f.clone());
            f
        });
        fam.get_or_create(&labels(l)).inc_by(value);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// One scrape of the daemon: the pipeline's part (`fill`), then the io shell's counters,
/// the build and the start time (`uptime` ago).
pub fn scrape(fill: impl FnOnce(&mut Metrics), io: &IoStatus, uptime: Duration) -> String {
    let mut m = Metrics::default();
    fill(&mut m);
    m.counter(
        "mape_tun_packets",
        "Packets through the TUN device",
        &[("direction", "read")],
        io.rx_packets,
    );
    m.counter(
        "mape_tun_packets",
        "Packets through the TUN device",
        &[("direction", "written")],
        io.tx_packets,
    );
    m.counter(
        "mape_tun_errors",
        "TUN read or write errors",
        &[("op", "read")],
        io.rx_errors,
    );
    m.counter(
        "mape_tun_errors",
        "TUN read or write errors",
        &[("op", "write")],
        io.tx_errors,
    );
    build_and_start(&mut m, uptime, SystemTime::now());
    m.render()
}

/// `mape_build_info` (the version and target as labels, value 1) and
/// `process_start_time_seconds` (Unix time, the Prometheus client convention that
/// `time() - process_start_time_seconds` is the uptime), for a daemon up `uptime` at `now`.
fn build_and_start(m: &mut Metrics, uptime: Duration, now: SystemTime) {
    m.gauge(
        "mape_build_info",
        "The mape build: version and target architecture",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("arch", std::env::consts::ARCH),
        ],
        1,
    );
    let started = now
        .checked_sub(uptime)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default();
    m.gauge(
        "process_start_time_seconds",
        "Start time of the process since the Unix epoch, in seconds",
        &[],
        started.as_secs(),
    );
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const TEXT_004: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether the request's `Accept` header asks for OpenMetrics (Prometheus does; curl,
/// promtool and most other tools take the classic text format).
fn wants_openmetrics(request: &str) -> bool {
    request.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("accept") && v.contains("application/openmetrics-text")
        })
    })
}

/// The classic Prometheus text format (0.0.4) of an OpenMetrics exposition that has only
/// counters and gauges, as [`Metrics::render`] makes it. OpenMetrics names a counter
/// family `x` and its sample `x_total`; the text format names both `x_total`. There is no
/// `# EOF` line. Escaping of help text and label values is the same in both.
pub fn text_format_004(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| Some((p, line.strip_prefix(p)?)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let suffix = if counters.contains(name) {
                    "_total"
                } else {
                    ""
                };
                out.push_str(&format!("{prefix}{name}{suffix} {tail}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// Builds one scrape's text, at each request.
pub type Scraper = Arc<dyn Fn() -> String + Send + Sync>;

/// Serves `GET /metrics` on `listen` (HTTP/1.0, one response per connection).
pub async fn serve(listener: tokio::net::TcpListener, scrape: Scraper) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let scrape = scrape.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let n = match tokio::time::timeout(
                std::time::Duration::from_secs(5),
                stream.read(&mut buf),
            )
            .await
            {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let req = String::from_utf8_lossy(&buf[..n]);
            let resp = if req.starts_with("GET /metrics") {
                let (body, content_type) = if wants_openmetrics(&req) {
                    (scrape(), OPENMETRICS)
                } else {
                    (text_format_004(&scrape()), TEXT_004)
                };
                format!(
                    "HTTP/1.0 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.0 404 Not Found\r\nContent-Length: 20\r\n\r\ntry GET /metrics\r\n\r\n"
                    .to_string()
            };
            let _ = stream.write_all(resp.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_parses_with_an_independent_parser() {
        let mut m = Metrics::default();
        m.gauge(
            "mape_ports_in_use",
            "Ports in use",
            &[("proto", "udp")],
            231,
        );
        m.gauge("mape_ports_in_use", "Ports in use", &[("proto", "tcp")], 12);
        m.counter(
            "mape_drops",
            "Drops by reason",
            &[("reason", "destination_filtered")],
            42,
        );
        let text = m.render();
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
        let find = |name: &str, k: &str, v: &str| {
            scrape
                .samples
                .iter()
                .find(|s| s.metric == name && s.labels.get(k) == Some(v))
                .map(|s| match s.value {
                    prometheus_parse::Value::Gauge(x)
                    | prometheus_parse::Value::Counter(x)
                    | prometheus_parse::Value::Untyped(x) => x,
                    _ => f64::NAN,
                })
        };
        assert_eq!(find("mape_ports_in_use", "proto", "udp"), Some(231.0));
        assert_eq!(find("mape_ports_in_use", "proto", "tcp"), Some(12.0));
        assert_eq!(
            find("mape_drops_total", "reason", "destination_filtered"),
            Some(42.0)
        );
    }

    #[test]
    fn the_classic_text_format_names_counter_families_with_total_and_has_no_eof() {
        let mut m = Metrics::default();
        m.counter("mape_drops", "Drops", &[("reason", "no_rule")], 3);
        m.gauge("mape_sessions", "Sessions", &[], 2);
        let text = text_format_004(&m.render());
        assert!(text.contains("# HELP mape_drops_total Drops"), "{text}");
        assert!(text.contains("# TYPE mape_drops_total counter"), "{text}");
        assert!(
            text.contains("mape_drops_total{reason=\"no_rule\"} 3"),
            "{text}"
        );
        assert!(text.contains("# TYPE mape_sessions gauge"), "{text}");
        assert!(!text.contains("# EOF"), "{text}");
    }

    #[test]
    fn openmetrics_only_when_asked_for() {
        let prometheus = "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: application/openmetrics-text;version=1.0.0;q=0.75,text/plain;version=0.0.4;q=0.5\r\n\r\n";
        assert!(wants_openmetrics(prometheus));
        assert!(!wants_openmetrics(
            "GET /metrics HTTP/1.1\r\nAccept: */*\r\n\r\n"
        ));
        assert!(!wants_openmetrics("GET /metrics HTTP/1.0\r\n\r\n"));
    }
}

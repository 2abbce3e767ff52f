//! Prometheus exposition on a localhost address: conventional names and units (budget and
//! ports in use by protocol, sessions, refusals and drops by reason as counters, per-host
//! ports held for the top hosts plus "other", packets and bytes each way). Built fresh from
//! the pipeline at each scrape, so the packet path never touches a metric. Served by axum
//! on the control plane's runtime (the HTTP stack of the status page, `crate::web`), on
//! its own listen address.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

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

/// Whether the request's `Accept` header values ask for OpenMetrics (Prometheus does;
/// curl, promtool and most other tools take the classic text format).
fn wants_openmetrics<'a>(accept: impl IntoIterator<Item = &'a str>) -> bool {
    accept
        .into_iter()
        .any(|v| v.contains("application/openmetrics-text"))
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

/// `GET /metrics`; any other path is 404 with a hint.
pub fn router(scrape: Scraper) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(exposition))
        .fallback(|| async { (StatusCode::NOT_FOUND, "try GET /metrics\r\n\r\n") })
        .with_state(scrape)
}

async fn exposition(State(scrape): State<Scraper>, headers: HeaderMap) -> Response {
    let open = wants_openmetrics(
        headers
            .get_all(ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    // The copy under the datapath lock is taken on the blocking pool, as the control
    // socket's handlers do, so a scrape never stalls the runtime.
    match tokio::task::spawn_blocking(move || scrape()).await {
        Ok(body) if open => ([(CONTENT_TYPE, OPENMETRICS)], body).into_response(),
        Ok(body) => ([(CONTENT_TYPE, TEXT_004)], text_format_004(&body)).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "the scrape failed").into_response(),
    }
}

/// Scrapers served at once (Prometheus holds one connection; a second for a person with
/// curl, and some to spare).
pub const MAX_CONNECTIONS: usize = 8;

/// Serves [`router`] on `listener` until the task is dropped, within the bounds of
/// [`crate::web::conn`] (connections at once, idle time).
pub async fn serve(listener: tokio::net::TcpListener, scrape: Scraper) {
    let listener = crate::web::conn::Bounded::new(listener, MAX_CONNECTIONS);
    if let Err(e) = axum::serve(listener, router(scrape)).await {
        tracing::error!(error = %e, "metrics endpoint stopped");
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
        // Prometheus's Accept header.
        let prometheus =
            "application/openmetrics-text;version=1.0.0;q=0.75,text/plain;version=0.0.4;q=0.5";
        assert!(wants_openmetrics([prometheus]));
        assert!(!wants_openmetrics(["*/*"]));
        assert!(!wants_openmetrics([]));
    }

    async fn get(accept: Option<&str>, path: &str) -> (StatusCode, String, String) {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let scrape: Scraper = Arc::new(|| {
            let mut m = Metrics::default();
            m.counter("mape_drops", "Drops", &[("reason", "no_rule")], 3);
            m.render()
        });
        let mut req = axum::http::Request::get(path);
        if let Some(a) = accept {
            req = req.header(ACCEPT, a);
        }
        let r = router(scrape)
            .oneshot(req.body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap();
        let status = r.status();
        let ct = r
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (status, ct, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn the_endpoint_answers_each_format_and_hints_elsewhere() {
        let (status, ct, body) = get(None, "/metrics").await;
        assert_eq!((status, ct.as_str()), (StatusCode::OK, TEXT_004));
        assert!(
            body.contains("mape_drops_total{reason=\"no_rule\"} 3"),
            "{body}"
        );
        assert!(!body.contains("# EOF"), "{body}");
        let (status, ct, body) = get(
            Some(
                "application/openmetrics-text;version=1.0.0;q=0.75,text/plain;version=0.0.4;q=0.5",
            ),
            "/metrics",
        )
        .await;
        assert_eq!((status, ct.as_str()), (StatusCode::OK, OPENMETRICS));
        assert!(body.ends_with("# EOF\n"), "{body}");
        let (status, _, body) = get(None, "/").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, "try GET /metrics\r\n\r\n");
    }
}

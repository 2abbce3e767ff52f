//! The IO shell: the TXT lookup through given resolvers (hickory-resolver), the GET over
//! IPv6 (ureq with rustls, the server's name resolved through the same resolvers: http, https unverified for `t=a`, verified for `t=b`), and
//! [`run_once`], which drives a [`Client`] through one round.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError, NoRecords};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{Resolver, TokioResolver};
use rand::Rng;
use ureq::config::IpFamily;
use ureq::http::Uri;
use ureq::tls::{Certificate, RootCerts, TlsConfig};
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver as UreqResolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use crate::machine::{Action, Client, HttpResult, Outcome, Request, Time, TxtResult};
use crate::txt::{Verify, DISCOVERY_NAME};

/// Largest answer body read (a 256-rule answer is about 30 KiB).
pub const MAX_BODY: u64 = 1 << 20;

/// How the shell reaches the network.
#[derive(Debug, Clone)]
pub struct ShellConfig {
    /// The line's resolvers (RA RDNSS / DHCPv6); empty: /etc/resolv.conf.
    pub resolvers: Vec<IpAddr>,
    /// Trust roots for `t=b` in PEM files; empty: the Mozilla roots (webpki-roots).
    pub ca_files: Vec<PathBuf>,
    /// Time-out of one DNS query and of one whole GET.
    pub timeout: Duration,
}

impl Default for ShellConfig {
    fn default() -> Self {
        Self {
            resolvers: Vec::new(),
            ca_files: Vec::new(),
            timeout: Duration::from_secs(5),
        }
    }
}

/// Why the shell could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    /// The async runtime for the resolver.
    #[error("DNS runtime: {0}")]
    Runtime(std::io::Error),
    /// The resolver configuration.
    #[error("DNS resolver: {0}")]
    Resolver(String),
    /// A CA file.
    #[error("CA file {path}: {detail}")]
    Ca {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
}

/// The network side of the client.
pub struct Shell {
    dns: Arc<LineDns>,
    unverified: ureq::Agent,
    verified: ureq::Agent,
}

impl fmt::Debug for Shell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Shell")
    }
}

/// The line's resolvers and the runtime they run on, shared by the TXT lookup and the
/// HTTP agents' name resolution.
struct LineDns {
    /// `None` only while dropped.
    rt: Option<tokio::runtime::Runtime>,
    resolver: TokioResolver,
}

impl LineDns {
    /// Runs a lookup on the resolver's runtime (`None`: shut down).
    fn block_on<F: std::future::Future>(&self, f: F) -> Option<F::Output> {
        self.rt.as_ref().map(|rt| rt.block_on(f))
    }
}

impl Drop for LineDns {
    /// Without waiting: a shell may be dropped on an async runtime's thread (the daemon's
    /// control plane), where a blocking runtime shutdown panics.
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Resolves the provisioning server's name through the line's resolvers, AAAA only
/// (§3.3: the request goes over IPv6). An IPv6 literal needs no lookup.
#[derive(Clone)]
struct AaaaResolver(Arc<LineDns>);

impl fmt::Debug for AaaaResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AaaaResolver")
    }
}

impl UreqResolver for AaaaResolver {
    fn resolve(
        &self,
        uri: &Uri,
        _config: &ureq::config::Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let host = uri.host().ok_or(ureq::Error::HostNotFound)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        let mut out = self.empty();
        if let Ok(ip) = host.parse::<Ipv6Addr>() {
            out.push(SocketAddr::new(IpAddr::V6(ip), port));
            return Ok(out);
        }
        let lookup = self
            .0
            .block_on(self.0.resolver.ipv6_lookup(host))
            .ok_or(ureq::Error::HostNotFound)?
            .map_err(|_| ureq::Error::HostNotFound)?;
        for r in lookup.answers() {
            if let RData::AAAA(a) = &r.data {
                // A full list keeps the first 16.
                let _ = out.try_push(SocketAddr::new(IpAddr::V6(a.0), port));
            }
        }
        if out.is_empty() {
            return Err(ureq::Error::HostNotFound);
        }
        Ok(out)
    }
}

fn agent(tls: TlsConfig, timeout: Duration, dns: &Arc<LineDns>) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        // 307 is a step of the state machine, not something to follow blindly.
        .max_redirects(0)
        .max_redirects_will_error(false)
        .http_status_as_error(false)
        // §3.3: the client reaches the server over IPv6 (MUST).
        .ip_family(IpFamily::Ipv6Only)
        .timeout_global(Some(timeout))
        .user_agent(concat!("mape/", env!("CARGO_PKG_VERSION")))
        .tls_config(tls)
        .build();
    ureq::Agent::with_parts(config, DefaultConnector::new(), AaaaResolver(dns.clone()))
}

impl Shell {
    /// Sets up the resolver and the two HTTP agents.
    pub fn new(cfg: &ShellConfig) -> Result<Self, ShellError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ShellError::Runtime)?;
        let provider = TokioRuntimeProvider::default();
        let mut builder = if cfg.resolvers.is_empty() {
            Resolver::builder(provider).map_err(|e| ShellError::Resolver(e.to_string()))?
        } else {
            let servers = cfg
                .resolvers
                .iter()
                .map(|ip| NameServerConfig::udp_and_tcp(*ip))
                .collect();
            Resolver::builder_with_config(ResolverConfig::from_name_servers(servers), provider)
        };
        let opts: &mut ResolverOpts = builder.options_mut();
        opts.timeout = cfg.timeout;
        opts.attempts = 2;
        opts.cache_size = 0;
        let resolver = builder
            .build()
            .map_err(|e| ShellError::Resolver(e.to_string()))?;
        let roots = if cfg.ca_files.is_empty() {
            RootCerts::WebPki
        } else {
            RootCerts::new_with_certs(&load_cas(&cfg.ca_files)?)
        };
        let dns = Arc::new(LineDns {
            rt: Some(rt),
            resolver,
        });
        let verified = agent(
            TlsConfig::builder().root_certs(roots).build(),
            cfg.timeout,
            &dns,
        );
        let unverified = agent(
            TlsConfig::builder().disable_verification(true).build(),
            cfg.timeout,
            &dns,
        );
        Ok(Self {
            dns,
            unverified,
            verified,
        })
    }

    /// Looks up the TXT record of `4over6.info` (§3.1).
    pub fn resolve_txt(&self) -> TxtResult {
        let Some(answer) = self
            .dns
            .block_on(self.dns.resolver.txt_lookup(DISCOVERY_NAME))
        else {
            return TxtResult::Failed("the resolver is shut down".into());
        };
        match answer {
            Ok(lookup) => {
                let records: Vec<Vec<u8>> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::TXT(t) => {
                            Some(t.txt_data.iter().flat_map(|s| s.iter().copied()).collect())
                        }
                        _ => None,
                    })
                    .collect();
                if records.is_empty() {
                    TxtResult::NoRecord
                } else {
                    TxtResult::Records(records)
                }
            }
            Err(NetError::Dns(DnsError::NoRecordsFound(NoRecords {
                response_code: ResponseCode::NXDomain | ResponseCode::NoError,
                ..
            }))) => TxtResult::NoRecord,
            Err(NetError::Dns(DnsError::ResponseCode(ResponseCode::NXDomain))) => {
                TxtResult::NoRecord
            }
            Err(e) => TxtResult::Failed(e.to_string()),
        }
    }

    /// Sends the GET (§3.3) and reads the answer.
    pub fn get(&self, req: &Request) -> HttpResult {
        let agent = match req.verify {
            Verify::No => &self.unverified,
            Verify::Yes => &self.verified,
        };
        match agent.get(req.url.as_str()).call() {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let location = resp
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                match resp.body_mut().with_config().limit(MAX_BODY).read_to_vec() {
                    Ok(body) => HttpResult::Response {
                        status,
                        location,
                        body,
                    },
                    // A 307 or an error status need no body.
                    Err(_) if status != 200 => HttpResult::Response {
                        status,
                        location,
                        body: Vec::new(),
                    },
                    Err(e) => HttpResult::NoAnswer(format!("reading the body: {e}")),
                }
            }
            Err(e) => HttpResult::NoAnswer(e.to_string()),
        }
    }
}

fn load_cas(files: &[PathBuf]) -> Result<Vec<Certificate<'static>>, ShellError> {
    let mut certs = Vec::new();
    for f in files {
        let err = |detail: String| ShellError::Ca {
            path: f.display().to_string(),
            detail,
        };
        let pem = std::fs::read(f).map_err(|e| err(e.to_string()))?;
        let before = certs.len();
        for item in ureq::tls::parse_pem(&pem) {
            if let ureq::tls::PemItem::Certificate(c) = item.map_err(|e| err(e.to_string()))? {
                certs.push(c);
            }
        }
        if certs.len() == before {
            return Err(err("no certificate in it".into()));
        }
    }
    Ok(certs)
}

/// One exchange of a round, for the transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The TXT lookup and its result.
    Txt(TxtResult),
    /// A GET and its result.
    Get(Box<(Request, HttpResult)>),
}

/// Drives `client` through one round (from [`Client::start`] to the first wait) with
/// `shell`; returns the exchanges and the outcome. `now` reads the clock.
pub fn run_once<R: Rng>(
    client: &mut Client<R>,
    shell: &Shell,
    mut now: impl FnMut() -> Time,
) -> (Vec<Step>, Outcome) {
    let mut steps = Vec::new();
    let mut action = client.start();
    loop {
        action = match action {
            Action::ResolveTxt => {
                let r = shell.resolve_txt();
                steps.push(Step::Txt(r.clone()));
                client.on_txt(now(), r)
            }
            Action::Get(req) => {
                let r = shell.get(&req);
                steps.push(Step::Get(Box::new((req, r.clone()))));
                client.on_http(now(), r)
            }
            Action::Wait { outcome, .. } => return (steps, outcome),
        };
    }
}

//! The LAN status page (`[web]`, off unless configured): axum on the control plane's
//! tokio runtime, serving only LAN-side peers ([`LanOnly`]) on a LAN address the
//! configuration check accepted. Read-only: the only requests that change anything are
//! logging in and out. The page's data come from the control handlers' typed values
//! ([`crate::control::status`], the NAT snapshot) on the blocking pool, at most once a
//! second whatever the number of open pages ([`CACHE_FOR`]); the chart's samples come from
//! a timer ([`view::SAMPLE_EVERY`]), never from the packet path.
//!
//! No CSRF token: the session cookie is `SameSite=Strict`, so a request another site makes
//! the browser send carries no login, and the only state-changing requests, `POST /login`
//! and `POST /logout`, can at worst log a person in (with the password) or out.

pub mod auth;
pub mod conn;
mod page;
pub mod view;

#[cfg(test)]
mod tests;

use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, Form, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mape_rules::Ipv4Net;
use serde::Deserialize;

use crate::clock::now_since;
use crate::control::{self, Context};
use view::{History, PageData};

/// How long one built [`PageData`] answers every page that asks.
pub const CACHE_FOR: Duration = Duration::from_secs(1);

/// The checked `[web]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSettings {
    /// Where the page listens: an address inside the LAN prefixes.
    pub listen: SocketAddrV4,
    /// The argon2 PHC string of the password (`mape passwd`).
    pub password_hash: String,
    /// The LAN prefixes: the only peers served.
    pub lan: Vec<Ipv4Net>,
}

/// Why the status page could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The listen address could not be bound (not an address of this host yet, or in use).
    #[error("status page on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddrV4,
        /// Why.
        source: std::io::Error,
    },
}

/// The page's state, shared by its handlers and its sampler.
pub struct Web {
    ctx: Context,
    password_hash: String,
    sessions: Mutex<auth::Sessions>,
    limiter: Mutex<auth::Limiter>,
    history: Mutex<History>,
    cache: Mutex<Option<(Instant, Arc<PageData>)>>,
}

type Shared = Arc<Web>;

impl Web {
    /// The page's state over the control plane's context.
    pub fn new(ctx: Context, password_hash: String) -> Shared {
        Arc::new(Self {
            ctx,
            password_hash,
            sessions: Mutex::default(),
            limiter: Mutex::new(auth::Limiter::new(Instant::now())),
            history: Mutex::default(),
            cache: Mutex::default(),
        })
    }

    /// Adds one chart sample (the timer's tick): constant work under the datapath lock.
    pub fn sample(&self) {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let s = match self.ctx.shared.lock() {
            Ok(p) => p.nat().map(|n| view::sample(n, unix)),
            Err(_) => None,
        };
        if let (Some(s), Ok(mut h)) = (s, self.history.lock()) {
            h.push(s);
        }
    }

    /// The page's data, built at most once per [`CACHE_FOR`]; `None` when the pipeline
    /// is gone or keeps no NAT (a BR).
    fn data(&self) -> Option<Arc<PageData>> {
        let mut cache = self.cache.lock().ok()?;
        if let Some((at, d)) = cache.as_ref() {
            if at.elapsed() < CACHE_FOR {
                return Some(d.clone());
            }
        }
        let status = control::status(&self.ctx).ok()?;
        let snap = {
            let p = self.ctx.shared.lock().ok()?;
            p.nat()?.snapshot(now_since(self.ctx.start))
        };
        let history = self.history.lock().ok()?.samples();
        let d = Arc::new(PageData::new(&status, &snap, history));
        *cache = Some((Instant::now(), d.clone()));
        Some(d)
    }

    fn logged_in(&self, headers: &HeaderMap) -> bool {
        let token = headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(auth::token_in);
        match (token, self.sessions.lock()) {
            (Some(t), Ok(s)) => s.valid(t, Instant::now()),
            _ => false,
        }
    }
}

/// The routes: `/` (the page), `/login` (form and POST), `POST /logout`, `/api/status`
/// (the page's JSON), `/assets/*` (built into the binary).
pub fn router(web: Shared) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/api/status", get(api_status))
        .route("/assets/status.css", get(css))
        .route("/assets/status.js", get(js))
        .with_state(web)
}

const NO_STORE: (axum::http::HeaderName, &str) = (CACHE_CONTROL, "no-store");

fn see_other(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, to)]).into_response()
}

async fn index(State(web): State<Shared>, headers: HeaderMap) -> Response {
    if !web.logged_in(&headers) {
        return see_other("/login");
    }
    let w = web.clone();
    match tokio::task::spawn_blocking(move || w.data()).await {
        Ok(Some(d)) => ([NO_STORE], Html(page::status(&d).into_string())).into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon's pipeline is unavailable",
        )
            .into_response(),
    }
}

async fn api_status(State(web): State<Shared>, headers: HeaderMap) -> Response {
    if !web.logged_in(&headers) {
        return (StatusCode::UNAUTHORIZED, [NO_STORE], "log in first").into_response();
    }
    let w = web.clone();
    match tokio::task::spawn_blocking(move || w.data()).await {
        Ok(Some(d)) => ([NO_STORE], Json(d.as_ref().clone())).into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon's pipeline is unavailable",
        )
            .into_response(),
    }
}

async fn login_form(State(web): State<Shared>, headers: HeaderMap) -> Response {
    if web.logged_in(&headers) {
        return see_other("/");
    }
    Html(page::login(None).into_string()).into_response()
}

/// The login form's fields.
#[derive(Deserialize)]
struct LoginForm {
    password: String,
}

async fn login(
    State(web): State<Shared>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    Form(form): Form<LoginForm>,
) -> Response {
    let allowed = web
        .limiter
        .lock()
        .map(|mut l| l.allow(peer.ip(), Instant::now()))
        .unwrap_or(false);
    if !allowed {
        tracing::warn!(peer = %peer.ip(), "status page: login attempt over the rate limit");
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(axum::http::header::RETRY_AFTER, "5")],
            Html(page::login(Some("Too many attempts; wait a few seconds.")).into_string()),
        )
            .into_response();
    }
    let hash = web.password_hash.clone();
    let ok = tokio::task::spawn_blocking(move || auth::verify(&hash, &form.password))
        .await
        .unwrap_or(false);
    if !ok {
        tracing::warn!(peer = %peer.ip(), "status page: wrong password");
        return (
            StatusCode::UNAUTHORIZED,
            Html(page::login(Some("Wrong password.")).into_string()),
        )
            .into_response();
    }
    let Ok(token) = web.sessions.lock().map(|mut s| s.open(Instant::now())) else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    tracing::info!(peer = %peer.ip(), "status page: logged in");
    (
        StatusCode::SEE_OTHER,
        [
            (LOCATION, "/".to_string()),
            (SET_COOKIE, auth::set_cookie(&token)),
        ],
    )
        .into_response()
}

async fn logout(State(web): State<Shared>, headers: HeaderMap) -> Response {
    let tokens: Vec<String> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(auth::token_in)
        .map(str::to_string)
        .collect();
    if let Ok(mut s) = web.sessions.lock() {
        for t in &tokens {
            s.close(t);
        }
    }
    (
        StatusCode::SEE_OTHER,
        [
            (LOCATION, "/login".to_string()),
            (SET_COOKIE, auth::clear_cookie()),
        ],
    )
        .into_response()
}

const CSS: &str = include_str!("assets/status.css");
const JS: &str = include_str!("assets/status.js");

async fn css() -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/css; charset=utf-8")], CSS)
}

async fn js() -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/javascript; charset=utf-8")], JS)
}

/// A TCP listener that serves only peers inside the LAN prefixes: a connection from
/// anywhere else is closed as soon as it is accepted, before a byte is read (the address
/// is a LAN one, but the kernel would take a packet for it on any interface).
pub struct LanOnly {
    inner: conn::Bounded,
    lan: Vec<Ipv4Net>,
}

impl LanOnly {
    /// Binds `settings.listen`.
    pub async fn bind(settings: &WebSettings) -> Result<Self, WebError> {
        let inner = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|source| WebError::Bind {
                addr: settings.listen,
                source,
            })?;
        Ok(Self {
            inner: conn::Bounded::new(inner, conn::MAX_CONNECTIONS),
            lan: settings.lan.clone(),
        })
    }
}

/// Whether `peer` is inside the LAN prefixes (an IPv4-mapped IPv6 peer by its IPv4 address).
fn serves(lan: &[Ipv4Net], peer: &SocketAddr) -> bool {
    match peer.ip() {
        IpAddr::V4(a) => lan.iter().any(|n| n.contains(a)),
        IpAddr::V6(a) => a
            .to_ipv4_mapped()
            .is_some_and(|a| lan.iter().any(|n| n.contains(a))),
    }
}

impl axum::serve::Listener for LanOnly {
    type Io = conn::Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let lan = &self.lan;
        self.inner
            .accept_where(|peer| {
                let keep = serves(lan, peer);
                if !keep {
                    tracing::debug!(peer = %peer, "status page: not a LAN peer; closed");
                }
                keep
            })
            .await
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// The peer of a connection [`LanOnly`] accepted (axum's connect info).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, LanOnly>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, LanOnly>) -> Self {
        Peer(*stream.remote_addr())
    }
}

/// Serves the page on `listener` and samples the chart, until the task is dropped.
pub async fn serve(listener: LanOnly, web: Shared) {
    let sampler = {
        let web = web.clone();
        async move {
            let mut tick = tokio::time::interval(view::SAMPLE_EVERY);
            loop {
                tick.tick().await;
                let w = web.clone();
                let _ = tokio::task::spawn_blocking(move || w.sample()).await;
            }
        }
    };
    let app = router(web).into_make_service_with_connect_info::<Peer>();
    let server = async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "status page stopped");
        }
    };
    tokio::join!(sampler, server);
}

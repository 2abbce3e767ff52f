//! The HB46PP client of the daemon: [`prepare`] runs the first round before the daemon
//! starts (its answer, or the stored one, gives the rule the daemon starts with); then
//! [`Hb46ppRun::drive`] runs on the control-plane runtime — DNS and HTTP on its blocking
//! threads, never on the datapath's — and sends a [`Report`] for every round: at the
//! answer's `ttl`, after the spec's back-offs (`mape_provision::machine`), and at once when
//! the WAN's global address changes (HB46PP §3.6 k). Every answer is stored (§3.5).

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mape_provision::machine::{Action, Outcome, Time};
use mape_provision::request::ClientInfo;
use mape_provision::shell::{run_once, Shell, ShellError};
use mape_provision::{Client, Config, Failure, FailureClass, LastGood};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::mpsc;

use super::settings::{plan, Plan};
use super::{store, store_path, wan};
use crate::config::{ConfigError, Settings};

/// How often the WAN's address is looked at.
pub const ADDRESS_POLL: Duration = Duration::from_secs(2);

/// The client's clock: the time since the UNIX epoch, so that a stored answer's age
/// survives a restart.
pub fn now() -> Time {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Why the first round could not be run.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The configuration.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The DNS resolver or a CA file.
    #[error("[provisioning] hb46pp: {0}")]
    Shell(#[from] ShellError),
    /// The DHCPv6 client's interface, socket or DUID file.
    #[error("[provisioning] dhcpv6: {0}")]
    Dhcpv6(#[from] mape_provision::dhcpv6::shell::ShellError),
}

/// What a round gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoundResult {
    /// A MAP-E answer (new, changed or the same): the daemon re-resolves and applies it
    /// if the rule differs from the one in force.
    Answer(LastGood),
    /// The round failed.
    Failed(Failure),
}

/// One round's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// When it ended (seconds since the UNIX epoch).
    pub at: u64,
    /// When the next starts.
    pub next: u64,
    /// What it gave.
    pub result: RoundResult,
}

/// The HB46PP client between its rounds.
pub struct Hb46ppRun {
    client: Client<StdRng>,
    shell: Arc<Shell>,
    store: PathBuf,
    wan: Option<String>,
    /// The first round's report.
    pub first: Report,
    /// The stored answer read at start.
    pub stored: Option<LastGood>,
}

impl std::fmt::Debug for Hb46ppRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hb46ppRun")
            .field("store", &self.store)
            .field("first", &self.first)
            .finish()
    }
}

fn report(client: &Client<StdRng>, outcome: Outcome) -> Option<Report> {
    let at = now().as_secs();
    let next = client.waiting_until().map_or(at, |t| t.as_secs());
    let result = match outcome {
        Outcome::Configure(_) | Outcome::Unchanged => {
            RoundResult::Answer(client.last_good()?.clone())
        }
        Outcome::Failed(f) => RoundResult::Failed(f),
    };
    Some(Report { at, next, result })
}

fn save(path: &Path, r: &Report) {
    if let RoundResult::Answer(lg) = &r.result {
        if let Err(e) = store::save(path, lg) {
            tracing::error!(error = %e, "HB46PP answer not stored");
        }
    }
}

/// Runs the first round of the client the configuration at `config` runs (HB46PP, or
/// mape's DHCPv6 client), `None` when it runs none. Blocking; call it before the
/// daemon's runtime starts. A good answer or lease is stored at once, so that
/// [`Settings::load`] reads it.
pub fn prepare(config: &Path) -> Result<Option<super::Run>, PrepareError> {
    let text = std::fs::read_to_string(config).map_err(|source| ConfigError::Read {
        path: config.display().to_string(),
        source,
    })?;
    let file = Settings::file(&text, config)?;
    if file.mode == Some(crate::config::Mode::Br) {
        return Ok(None);
    }
    match plan(file.provisioning.method, &file.map)? {
        Plan::Map => Ok(None),
        Plan::Hb46pp { .. } => Ok(Some(super::Run::Hb46pp(Box::new(prepare_hb46pp(&file)?)))),
        Plan::Dhcpv6 => Ok(Some(super::Run::Dhcpv6(Box::new(super::dhcpv6::prepare(
            &file,
        )?)))),
    }
}

/// The first HB46PP round.
fn prepare_hb46pp(file: &crate::config::ConfigFile) -> Result<Hb46ppRun, PrepareError> {
    let hb = file.provisioning.hb46pp.settings()?;
    let shell = Shell::new(&hb.shell)?;
    let path = store_path(file);
    let stored = match store::load(&path) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "stored HB46PP answer not used");
            None
        }
    };
    let cfg = Config {
        info: ClientInfo::mape(),
        credentials: hb.credentials.clone(),
    };
    let mut client = Client::new(cfg, StdRng::from_os_rng(), stored.clone(), false);
    let (_, outcome) = run_once(&mut client, &shell, now);
    let first = report(&client, outcome).unwrap_or(Report {
        at: now().as_secs(),
        next: now().as_secs(),
        result: RoundResult::Failed(Failure {
            class: FailureClass::BadAnswer,
            detail: "no answer kept".into(),
            disable: false,
        }),
    });
    match &first.result {
        RoundResult::Answer(lg) => {
            tracing::info!(url = %lg.url, next_refresh = first.next, "HB46PP answer fetched")
        }
        RoundResult::Failed(f) => tracing::warn!(
            step = f.class.as_str(),
            error = %f.detail,
            stored = stored.is_some(),
            "HB46PP round failed at start{}",
            if stored.is_some() { "; the stored answer is used" } else { "" }
        ),
    }
    save(&path, &first);
    Ok(Hb46ppRun {
        client,
        shell: Arc::new(shell),
        store: path,
        wan: file.wan.as_ref().map(|w| w.interface.clone()),
        first,
        stored,
    })
}

impl Hb46ppRun {
    fn address(&self) -> Option<Ipv6Addr> {
        wan::global_address(self.wan.as_deref())
    }

    /// Runs one round from `action` to its wait; `None` when `action` is already a wait
    /// (a timer that fired early).
    async fn round(&mut self, mut action: Action) -> Option<Outcome> {
        let mut ran = false;
        loop {
            action = match action {
                Action::ResolveTxt => {
                    let shell = self.shell.clone();
                    let r = tokio::task::spawn_blocking(move || shell.resolve_txt())
                        .await
                        .unwrap_or_else(|e| {
                            mape_provision::machine::TxtResult::Failed(e.to_string())
                        });
                    ran = true;
                    self.client.on_txt(now(), r)
                }
                Action::Get(req) => {
                    let shell = self.shell.clone();
                    let r = tokio::task::spawn_blocking(move || shell.get(&req))
                        .await
                        .unwrap_or_else(|e| {
                            mape_provision::machine::HttpResult::NoAnswer(e.to_string())
                        });
                    ran = true;
                    self.client.on_http(now(), r)
                }
                Action::Wait { outcome, .. } => return ran.then_some(outcome),
            };
        }
    }

    /// Drives the client until the receiver is gone: a [`Report`] per round.
    pub async fn drive(mut self, tx: mpsc::Sender<super::Update>) {
        let mut addr = self.address();
        let mut watch = tokio::time::interval(ADDRESS_POLL);
        loop {
            let wait = self
                .client
                .waiting_until()
                .map_or(Duration::ZERO, |u| u.saturating_sub(now()));
            let action = tokio::select! {
                _ = tokio::time::sleep(wait) => self.client.on_timeout(now()),
                _ = watch.tick() => {
                    let a = self.address();
                    if a == addr {
                        continue;
                    }
                    tracing::info!(
                        old = ?addr, new = ?a,
                        "WAN address changed: HB46PP re-fetch (§3.6 k)"
                    );
                    addr = a;
                    self.client.on_address_change(now())
                }
            };
            let Some(outcome) = self.round(action).await else {
                continue;
            };
            let Some(r) = report(&self.client, outcome) else {
                continue;
            };
            save(&self.store, &r);
            if tx.send(super::Update::Hb46pp(r)).await.is_err() {
                return;
            }
        }
    }
}

//! The client's access sequence (HB46PP §3.6) as a sans-IO state machine: it is told what
//! happened (a TXT answer, an HTTP answer, a timer, an address change) and the time, and
//! answers with the next [`Action`]. Randomness comes from an RNG the caller seeds.
//!
//! ```text
//! a) start ─► b) TXT 4over6.info ─┬─ c.2 NODATA/NXDOMAIN: disable, wait 1–3 h ─► a)
//!                                 ├─ c.3 other failure:   wait 1–10 min ─────► a)
//!                                 └─ d) GET ─┬─ f.2 no answer:       wait 10–30 min ─► a)
//!                                            ├─ 307: GET Location (at most 5 times)
//!                                            ├─ h.2 error / invalid: wait 10–30 min ─► a)
//!                                            └─ i/j) configure (or keep), k) wait ttl
//!                                               (20–24 h without one) or an address change
//! ```

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::answer::{self, AnswerError, MapEOffer, Offer};
use crate::request::{self, ClientInfo, Credentials};
use crate::txt::{self, Verify};

/// A point in time: the time since a fixed origin the caller chooses (the daemon uses the
/// Unix epoch so that a stored answer's age survives a restart).
pub type Time = Duration;

/// Redirects followed for one request before the answer counts as bad.
pub const MAX_REDIRECTS: u8 = 5;
/// A `ttl` below this is waited as this, so that no server can make the CE loop.
pub const MIN_WAIT: Duration = Duration::from_secs(60);

const MIN: u64 = 60;
const HOUR: u64 = 3600;
/// §3.6 c.2: NODATA or NXDOMAIN.
const NO_RECORD_WAIT: (u64, u64) = (HOUR, 3 * HOUR);
/// §3.6 c.3: any other DNS failure.
const DNS_WAIT: (u64, u64) = (MIN, 10 * MIN);
/// §3.6 f.2 and h.2: no answer, an invalid answer or an error.
const SERVER_WAIT: (u64, u64) = (10 * MIN, 30 * MIN);
/// §3.6 k.2: no `ttl`.
const NO_TTL_WAIT: (u64, u64) = (20 * HOUR, 24 * HOUR);

/// What the client needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// vendorid, product, version, capability.
    pub info: ClientInfo,
    /// `user`/`pass`, if configured.
    pub credentials: Option<Credentials>,
}

/// What the IO shell must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Look up the TXT record of [`txt::DISCOVERY_NAME`] and call [`Client::on_txt`].
    ResolveTxt,
    /// Send this GET over IPv6 and call [`Client::on_http`].
    Get(Request),
    /// The round ended with `outcome`; call [`Client::on_timeout`] at `until` (or
    /// [`Client::on_address_change`] earlier).
    Wait {
        /// When to start again.
        until: Time,
        /// What the round gave.
        outcome: Outcome,
    },
}

/// One GET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The full URL, parameters included.
    pub url: Url,
    /// The server URL without the parameters (the TXT record's, or a redirect's).
    pub base: Url,
    /// Whether to verify the certificate (https only).
    pub verify: Verify,
}

/// What a round gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new or changed MAP-E offer (§3.6 j): configure it.
    Configure(Box<Offer>),
    /// The same MAP-E offer as the running one (§3.6 i.1): keep it.
    Unchanged,
    /// The round failed.
    Failed(Failure),
}

/// A failed round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Which step failed.
    pub class: FailureClass,
    /// In words, for one line of log or stderr.
    pub detail: String,
    /// Whether a running MAP-E must be switched off (§3.6 c.2; and nothing offered).
    pub disable: bool,
}

/// Why a round failed; each has its own exit code in `mape provision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// NODATA or NXDOMAIN for `4over6.info` (§3.6 c.2): the line has no HB46PP.
    NoRecord,
    /// The resolvers did not answer, or failed (§3.6 c.3).
    Dns,
    /// The provisioning server did not answer (§3.6 f.2): connect, TLS or time-out.
    Unreachable,
    /// 403 or 404: the server does not know this CE's address (§3.3).
    Refused,
    /// `order: []`, or only technologies mape does not run (§3.3, §3.4).
    NothingOffered,
    /// An unusable TXT record, answer, status or redirect (§3.6 h.2).
    BadAnswer,
}

impl FailureClass {
    /// The name used in logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::NoRecord => "no_record",
            FailureClass::Dns => "dns",
            FailureClass::Unreachable => "unreachable",
            FailureClass::Refused => "refused",
            FailureClass::NothingOffered => "nothing_offered",
            FailureClass::BadAnswer => "bad_answer",
        }
    }
}

/// The TXT lookup's result, as the shell saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxtResult {
    /// The records (each the concatenation of its character-strings).
    Records(Vec<Vec<u8>>),
    /// NODATA or NXDOMAIN.
    NoRecord,
    /// Anything else (time-out, SERVFAIL, REFUSED, no resolver), in words.
    Failed(String),
}

/// The GET's result, as the shell saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpResult {
    /// An HTTP answer.
    Response {
        /// Status code.
        status: u16,
        /// The `Location` header.
        location: Option<String>,
        /// The body (the shell bounds its size).
        body: Vec<u8>,
    },
    /// No answer: connect refused, unreachable, TLS failure, time-out; in words.
    NoAnswer(String),
}

/// The last good answer (§3.5), as the daemon stores it: the body as received, so that it
/// is validated by the same parser when loaded again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastGood {
    /// The server URL that answered (without parameters).
    pub url: String,
    /// When, in seconds since the caller's origin.
    pub fetched_at: u64,
    /// The JSON body.
    pub body: String,
}

impl LastGood {
    /// The offer it holds (re-validated).
    pub fn offer(&self) -> Result<Offer, AnswerError> {
        answer::parse(self.body.as_bytes())
    }

    /// Whether it is still within its `ttl` at `now` (no `ttl`: 24 h, §3.6 k.2's longest).
    pub fn is_fresh(&self, now: Time) -> bool {
        let ttl = self
            .offer()
            .ok()
            .map(|o| o.ttl.map_or(NO_TTL_WAIT.1, u64::from));
        ttl.is_some_and(|t| now.as_secs() < self.fetched_at.saturating_add(t))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Idle,
    Txt,
    Http {
        base: Url,
        verify: Verify,
        redirects: u8,
    },
    Waiting {
        until: Time,
    },
}

/// The HB46PP client.
#[derive(Debug)]
pub struct Client<R> {
    config: Config,
    rng: R,
    state: State,
    /// The MAP-E offer in force (configured by the caller), if any.
    running: Option<MapEOffer>,
    /// The last good answer and the token it carried.
    last_good: Option<LastGood>,
    token: Option<String>,
}

impl<R: Rng> Client<R> {
    /// A client; `last_good` (from storage) gives the token to send and the offer that is
    /// running if the caller configured it (`running`).
    pub fn new(config: Config, rng: R, last_good: Option<LastGood>, running: bool) -> Self {
        let offer = last_good.as_ref().and_then(|l| l.offer().ok());
        Self {
            config,
            rng,
            state: State::Idle,
            running: offer
                .as_ref()
                .filter(|_| running)
                .and_then(|o| o.map_e.clone()),
            token: offer.and_then(|o| o.token),
            last_good,
        }
    }

    /// §3.6 a): start a round.
    pub fn start(&mut self) -> Action {
        self.state = State::Txt;
        Action::ResolveTxt
    }

    /// The last good answer, for storage (§3.5).
    pub fn last_good(&self) -> Option<&LastGood> {
        self.last_good.as_ref()
    }

    /// Forgets the stored answer and its token (§3.5: a way to erase it).
    pub fn erase(&mut self) {
        self.last_good = None;
        self.token = None;
    }

    /// When the client waits, until when.
    pub fn waiting_until(&self) -> Option<Time> {
        match self.state {
            State::Waiting { until } => Some(until),
            _ => None,
        }
    }

    /// §3.6 b)–c): the TXT lookup finished.
    pub fn on_txt(&mut self, now: Time, result: TxtResult) -> Action {
        if self.state != State::Txt {
            return self.stray(now);
        }
        match result {
            TxtResult::NoRecord => {
                // c.2: disable the technology if it runs.
                self.running = None;
                self.fail(
                    now,
                    FailureClass::NoRecord,
                    "no TXT record for 4over6.info (NXDOMAIN or NODATA)".into(),
                    NO_RECORD_WAIT,
                )
            }
            TxtResult::Failed(e) => self.fail(
                now,
                FailureClass::Dns,
                format!("TXT lookup of 4over6.info failed: {e}"),
                DNS_WAIT,
            ),
            TxtResult::Records(r) => match txt::parse_records(&r) {
                // An unusable record is a failure other than NODATA/NXDOMAIN (c.3).
                Err(e) => self.fail(now, FailureClass::BadAnswer, e.to_string(), DNS_WAIT),
                Ok(d) => self.get(d.url, d.verify, 0),
            },
        }
    }

    fn get(&mut self, base: Url, verify: Verify, redirects: u8) -> Action {
        let url = request::url(
            &base,
            verify,
            &self.config.info,
            self.token.as_deref(),
            self.config.credentials.as_ref(),
        );
        self.state = State::Http {
            base: base.clone(),
            verify,
            redirects,
        };
        Action::Get(Request { url, base, verify })
    }

    /// §3.6 d)–k): the GET finished.
    pub fn on_http(&mut self, now: Time, result: HttpResult) -> Action {
        let State::Http {
            base,
            verify,
            redirects,
        } = self.state.clone()
        else {
            return self.stray(now);
        };
        let (status, location, body) = match result {
            HttpResult::NoAnswer(e) => {
                return self.fail(
                    now,
                    FailureClass::Unreachable,
                    format!("{base}: no answer: {e}"),
                    SERVER_WAIT,
                )
            }
            HttpResult::Response {
                status,
                location,
                body,
            } => (status, location, body),
        };
        match status {
            200 => self.answer(now, base, &body),
            307 => {
                let target = location.as_deref().map(|l| base.join(l));
                match target {
                    _ if redirects >= MAX_REDIRECTS => self.fail(
                        now,
                        FailureClass::BadAnswer,
                        format!("{base}: more than {MAX_REDIRECTS} redirects"),
                        SERVER_WAIT,
                    ),
                    Some(Ok(next))
                        if next.scheme() == "https"
                            || (next.scheme() == "http" && verify == Verify::No) =>
                    {
                        self.get(next, verify, redirects + 1)
                    }
                    Some(Ok(next)) => self.fail(
                        now,
                        FailureClass::BadAnswer,
                        format!(
                            "{base}: redirect to {next} (t={} needs https)",
                            verify.letter()
                        ),
                        SERVER_WAIT,
                    ),
                    _ => self.fail(
                        now,
                        FailureClass::BadAnswer,
                        format!("{base}: 307 without a usable Location"),
                        SERVER_WAIT,
                    ),
                }
            }
            403 | 404 => self.fail(
                now,
                FailureClass::Refused,
                format!("{base}: {status}: the server does not know this CE's address"),
                SERVER_WAIT,
            ),
            s => self.fail(
                now,
                FailureClass::BadAnswer,
                format!("{base}: unexpected HTTP status {s}"),
                SERVER_WAIT,
            ),
        }
    }

    fn answer(&mut self, now: Time, base: Url, body: &[u8]) -> Action {
        let offer = match answer::parse(body) {
            Ok(o) => o,
            Err(e) => {
                return self.fail(
                    now,
                    FailureClass::BadAnswer,
                    format!("{base}: {e}"),
                    SERVER_WAIT,
                )
            }
        };
        if offer.token.is_some() {
            self.token.clone_from(&offer.token);
        }
        let Some(map_e) = offer.map_e.clone() else {
            let detail = match offer.unsupported().as_slice() {
                [] => format!("{base}: order is empty: nothing is offered to this CE"),
                u => {
                    let names: Vec<&str> = u.iter().map(|t| t.as_str()).collect();
                    format!("{base}: offers only {} (mape runs map_e)", names.join(", "))
                }
            };
            // The server says there is no technology for this CE: stop the running one.
            self.running = None;
            return self.fail(now, FailureClass::NothingOffered, detail, SERVER_WAIT);
        };
        self.last_good = Some(LastGood {
            url: base.to_string(),
            fetched_at: now.as_secs(),
            body: String::from_utf8_lossy(body).into_owned(),
        });
        // k): ttl, or 20-24 h.
        let wait = match offer.ttl {
            Some(t) => Duration::from_secs(u64::from(t)).max(MIN_WAIT),
            None => self.random(NO_TTL_WAIT),
        };
        let outcome = if self.running.as_ref() == Some(&map_e) {
            Outcome::Unchanged
        } else {
            self.running = Some(map_e);
            Outcome::Configure(Box::new(offer))
        };
        self.wait(now + wait, outcome)
    }

    /// The wait ended: start again (an early call keeps waiting).
    pub fn on_timeout(&mut self, now: Time) -> Action {
        match self.state.clone() {
            State::Waiting { until } if now < until => Action::Wait {
                until,
                outcome: Outcome::Unchanged,
            },
            _ => self.start(),
        }
    }

    /// The CE's own IPv6 address changed: re-fetch now (§3.6 k, SHOULD). A round in
    /// progress is restarted.
    pub fn on_address_change(&mut self, _now: Time) -> Action {
        self.start()
    }

    /// A result that arrived in the wrong state (a late answer): ignored.
    fn stray(&mut self, now: Time) -> Action {
        match self.state {
            State::Waiting { until } => Action::Wait {
                until,
                outcome: Outcome::Unchanged,
            },
            State::Idle => self.start(),
            _ => self.on_timeout(now),
        }
    }

    fn random(&mut self, (lo, hi): (u64, u64)) -> Duration {
        Duration::from_secs(self.rng.random_range(lo..=hi))
    }

    fn fail(&mut self, now: Time, class: FailureClass, detail: String, wait: (u64, u64)) -> Action {
        let wait = self.random(wait);
        let disable = matches!(class, FailureClass::NoRecord | FailureClass::NothingOffered);
        self.wait(
            now + wait,
            Outcome::Failed(Failure {
                class,
                detail,
                disable,
            }),
        )
    }

    fn wait(&mut self, until: Time, outcome: Outcome) -> Action {
        self.state = State::Waiting { until };
        Action::Wait { until, outcome }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    const TXT_HTTP: &[u8] = b"v=v6mig-1 url=http://[2001:db8::80]/config t=a";
    const TXT_HTTPS: &[u8] = b"v=v6mig-1 url=https://prov.example/config t=b";
    const RFC1: &str = r#"{"ttl": 3600, "order": ["map_e"], "map_e": {"version": 1,
        "br": "2001:db8:ffff::1", "rules": [{"ipv6": "2001:db8::/40",
        "ipv4": "192.0.2.0/24", "ea_length": 16, "psid_offset": 6}]}}"#;

    fn client(seed: u64) -> Client<StdRng> {
        let config = Config {
            info: ClientInfo::mape(),
            credentials: None,
        };
        Client::new(config, StdRng::seed_from_u64(seed), None, false)
    }

    fn t(s: u64) -> Time {
        Duration::from_secs(s)
    }

    fn ok(body: &str) -> HttpResult {
        HttpResult::Response {
            status: 200,
            location: None,
            body: body.as_bytes().to_vec(),
        }
    }

    fn status(status: u16, location: Option<&str>) -> HttpResult {
        HttpResult::Response {
            status,
            location: location.map(str::to_owned),
            body: Vec::new(),
        }
    }

    /// Runs TXT then the first GET; returns the action after `http`.
    fn round(c: &mut Client<StdRng>, now: Time, record: &[u8], http: HttpResult) -> Action {
        assert_eq!(c.start(), Action::ResolveTxt);
        let a = c.on_txt(now, TxtResult::Records(vec![record.to_vec()]));
        let Action::Get(req) = a else { panic!("{a:?}") };
        assert!(req
            .url
            .as_str()
            .contains("vendorid=acde48-mape&product=mape&version="));
        assert!(req
            .url
            .as_str()
            .contains("&capability=map_e%2Chubspoke%2Cmesh"));
        c.on_http(now, http)
    }

    fn failed(a: &Action) -> (Time, &Failure) {
        match a {
            Action::Wait {
                until,
                outcome: Outcome::Failed(f),
            } => (*until, f),
            other => panic!("not a failure: {other:?}"),
        }
    }

    #[test]
    fn success_configures_then_keeps_then_waits_ttl() {
        let mut c = client(1);
        let a = round(&mut c, t(1000), TXT_HTTP, ok(RFC1));
        let Action::Wait {
            until,
            outcome: Outcome::Configure(o),
        } = a
        else {
            panic!("{a:?}")
        };
        assert_eq!(until, t(1000 + 3600));
        assert_eq!(o.map_e.as_ref().unwrap().domain.rules().len(), 1);
        let lg = c.last_good().unwrap().clone();
        assert_eq!(lg.url, "http://[2001:db8::80]/config");
        assert_eq!(lg.fetched_at, 1000);
        assert!(lg.is_fresh(t(4599)) && !lg.is_fresh(t(4600)));
        // Early timer: still waiting; at ttl: a new round, same answer: unchanged.
        assert!(matches!(c.on_timeout(t(2000)), Action::Wait { until, .. } if until == t(4600)));
        assert_eq!(c.on_timeout(t(4600)), Action::ResolveTxt);
        let a = c.on_txt(t(4600), TxtResult::Records(vec![TXT_HTTP.to_vec()]));
        assert!(matches!(a, Action::Get(_)));
        assert_eq!(
            c.on_http(t(4600), ok(RFC1)),
            Action::Wait {
                until: t(8200),
                outcome: Outcome::Unchanged
            }
        );
        // A changed rule is configured again.
        let changed = RFC1.replace("192.0.2.0/24", "198.51.100.0/24");
        let a = round(&mut c, t(9000), TXT_HTTP, ok(&changed));
        assert!(matches!(
            a,
            Action::Wait {
                outcome: Outcome::Configure(_),
                ..
            }
        ));
        // A client restarted with the stored answer running sees it unchanged.
        let config = Config {
            info: ClientInfo::mape(),
            credentials: None,
        };
        let mut c2 = Client::new(config, StdRng::seed_from_u64(2), Some(lg), true);
        assert!(matches!(
            round(&mut c2, t(5000), TXT_HTTP, ok(RFC1)),
            Action::Wait {
                outcome: Outcome::Unchanged,
                ..
            }
        ));
    }

    #[test]
    fn no_ttl_waits_20_to_24_hours_and_tiny_ttl_one_minute() {
        let no_ttl = RFC1.replace(r#""ttl": 3600,"#, "");
        let mut seen = std::collections::HashSet::new();
        for seed in 0..50 {
            let mut c = client(seed);
            let Action::Wait { until, .. } = round(&mut c, t(0), TXT_HTTP, ok(&no_ttl)) else {
                panic!()
            };
            assert!((t(20 * 3600)..=t(24 * 3600)).contains(&until), "{until:?}");
            seen.insert(until);
        }
        assert!(
            seen.len() > 40,
            "the wait is random: {} distinct",
            seen.len()
        );
        let mut c = client(0);
        let tiny = RFC1.replace("3600", "0");
        let Action::Wait { until, .. } = round(&mut c, t(0), TXT_HTTP, ok(&tiny)) else {
            panic!()
        };
        assert_eq!(until, t(60));
    }

    #[test]
    fn dns_branches_and_their_back_offs() {
        for seed in 0..20 {
            let mut c = client(seed);
            c.start();
            let a = c.on_txt(t(100), TxtResult::NoRecord);
            let (until, f) = failed(&a);
            assert_eq!(f.class, FailureClass::NoRecord);
            assert!(f.disable);
            assert!((t(100 + 3600)..=t(100 + 3 * 3600)).contains(&until));
            assert_eq!(c.on_timeout(until), Action::ResolveTxt);
            let a = c.on_txt(t(100), TxtResult::Failed("timed out".into()));
            let (until, f) = failed(&a);
            assert_eq!((f.class, f.disable), (FailureClass::Dns, false));
            assert!((t(160)..=t(700)).contains(&until));
            c.on_timeout(until);
            let a = c.on_txt(t(100), TxtResult::Records(vec![b"v=spf1 -all".to_vec()]));
            let (until, f) = failed(&a);
            assert_eq!(f.class, FailureClass::BadAnswer);
            assert!((t(160)..=t(700)).contains(&until));
        }
        // The same seed gives the same waits.
        let run = |seed| {
            let mut c = client(seed);
            c.start();
            failed(&c.on_txt(t(0), TxtResult::NoRecord)).0
        };
        assert_eq!(run(7), run(7));
    }

    #[test]
    fn server_branches() {
        let server_wait = t(1000 + 600)..=t(1000 + 1800);
        let cases: Vec<(HttpResult, FailureClass, bool)> = vec![
            (
                HttpResult::NoAnswer("connection refused".into()),
                FailureClass::Unreachable,
                false,
            ),
            (status(403, None), FailureClass::Refused, false),
            (status(404, None), FailureClass::Refused, false),
            (status(500, None), FailureClass::BadAnswer, false),
            (status(307, None), FailureClass::BadAnswer, false),
            (ok("not json"), FailureClass::BadAnswer, false),
            (
                ok(&RFC1.replace("3600", "604801")),
                FailureClass::BadAnswer,
                false,
            ),
            (ok(r#"{"order": []}"#), FailureClass::NothingOffered, true),
            (
                ok(r#"{"order": ["dslite", "lw4o6"], "dslite": {}}"#),
                FailureClass::NothingOffered,
                true,
            ),
        ];
        for (http, class, disable) in cases {
            let mut c = client(3);
            let a = round(&mut c, t(1000), TXT_HTTP, http.clone());
            let (until, f) = failed(&a);
            assert_eq!(
                (f.class, f.disable),
                (class, disable),
                "{http:?}: {}",
                f.detail
            );
            assert!(server_wait.contains(&until), "{until:?}");
            assert!(c.last_good().is_none());
        }
        let mut c = client(3);
        let a = round(
            &mut c,
            t(0),
            TXT_HTTP,
            ok(r#"{"order": ["dslite", "map_t"]}"#),
        );
        assert!(
            failed(&a).1.detail.contains("offers only dslite, map_t"),
            "{a:?}"
        );
    }

    #[test]
    fn redirects() {
        let mut c = client(4);
        let a = round(
            &mut c,
            t(0),
            TXT_HTTP,
            status(307, Some("http://[2001:db8::81]/other?a=b")),
        );
        let Action::Get(req) = a else { panic!("{a:?}") };
        assert_eq!(req.base.as_str(), "http://[2001:db8::81]/other?a=b");
        assert!(req
            .url
            .as_str()
            .starts_with("http://[2001:db8::81]/other?a=b&vendorid="));
        // A relative Location resolves against the current URL.
        let Action::Get(req) = c.on_http(t(0), status(307, Some("/third"))) else {
            panic!()
        };
        assert_eq!(req.base.as_str(), "http://[2001:db8::81]/third");
        let a = c.on_http(t(0), ok(RFC1));
        assert!(matches!(
            a,
            Action::Wait {
                outcome: Outcome::Configure(_),
                ..
            }
        ));
        assert_eq!(c.last_good().unwrap().url, "http://[2001:db8::81]/third");
        // A loop ends after MAX_REDIRECTS.
        let mut c = client(4);
        let mut a = round(&mut c, t(0), TXT_HTTP, status(307, Some("/loop")));
        for _ in 1..MAX_REDIRECTS {
            assert!(matches!(a, Action::Get(_)), "{a:?}");
            a = c.on_http(t(0), status(307, Some("/loop")));
        }
        assert!(matches!(a, Action::Get(_)));
        let a = c.on_http(t(0), status(307, Some("/loop")));
        assert!(failed(&a).1.detail.contains("more than 5 redirects"));
        // t=b never follows a redirect to http.
        let mut c = client(4);
        let a = round(
            &mut c,
            t(0),
            TXT_HTTPS,
            status(307, Some("http://prov.example/x")),
        );
        assert_eq!(failed(&a).1.class, FailureClass::BadAnswer);
    }

    #[test]
    fn token_is_sent_back_and_address_change_refetches() {
        let token = "0123456789abcdef".repeat(4);
        let body = RFC1.replace(
            r#""ttl": 3600,"#,
            &format!(r#""ttl": 3600, "token": "{token}","#),
        );
        let mut c = client(5);
        round(&mut c, t(0), TXT_HTTP, ok(&body));
        assert_eq!(c.waiting_until(), Some(t(3600)));
        assert_eq!(c.on_address_change(t(10)), Action::ResolveTxt);
        let Action::Get(req) = c.on_txt(t(10), TxtResult::Records(vec![TXT_HTTP.to_vec()])) else {
            panic!()
        };
        assert!(req.url.as_str().ends_with(&format!("&token={token}")));
        // Erased: no token any more.
        c.erase();
        assert!(c.last_good().is_none());
        c.start();
        let Action::Get(req) = c.on_txt(t(10), TxtResult::Records(vec![TXT_HTTP.to_vec()])) else {
            panic!()
        };
        assert!(!req.url.as_str().contains("token="));
        // A late TXT answer while waiting is ignored.
        c.on_http(t(10), HttpResult::NoAnswer("x".into()));
        let until = c.waiting_until().unwrap();
        assert!(
            matches!(c.on_txt(t(11), TxtResult::NoRecord), Action::Wait { until: u, .. } if u == until)
        );
    }

    #[test]
    fn no_record_stops_a_running_rule() {
        let mut c = client(6);
        round(&mut c, t(0), TXT_HTTP, ok(RFC1));
        c.start();
        assert!(failed(&c.on_txt(t(1), TxtResult::NoRecord)).1.disable);
        // Back again: configured anew, not "unchanged".
        let a = round(&mut c, t(2), TXT_HTTP, ok(RFC1));
        assert!(matches!(
            a,
            Action::Wait {
                outcome: Outcome::Configure(_),
                ..
            }
        ));
    }
}

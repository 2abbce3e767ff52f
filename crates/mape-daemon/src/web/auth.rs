//! Who may see the status page: the password as an argon2 hash (PHC string, `mape
//! passwd`), login sessions (random tokens with a server-side expiry, in a session
//! cookie) and the login rate limit (per source address and overall).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use mape_nat::{Timestamp, TokenBucket};
use rand::Rng;

/// The session cookie's name.
pub const COOKIE: &str = "mape_session";

/// How long a login lasts, whatever is done with it (server-side; the cookie itself is a
/// session cookie that the browser forgets when it closes).
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Logins kept at once; one more ends the oldest. A router has a handful of people.
pub const MAX_SESSIONS: usize = 32;

/// Login attempts a source may make at once, then one a second
/// ([`mape_nat::TokenBucket`]): enough for a person who mistypes, far too few for a guesser
/// against an argon2 hash.
pub const ATTEMPTS_BURST: u32 = 5;

/// Login attempts from every source together, a second: each is an argon2 verification
/// of some tens of milliseconds, so this bounds the CPU a flood of attempts can take from
/// the router.
pub const ATTEMPTS_PER_S_ALL: u32 = 2;

/// Login attempts from every source together at once.
pub const ATTEMPTS_BURST_ALL: u32 = 10;

/// Sources whose attempts are counted at once; a new source beyond them is refused until
/// the idle ones are forgotten (a LAN has far fewer hosts).
pub const MAX_SOURCES: usize = 1024;

/// How long a source's attempts are remembered after its last one.
const SOURCE_MEMORY: Duration = Duration::from_secs(600);

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// argon2 refused (it does not for the default parameters and a random salt).
    #[error("argon2: {0}")]
    Argon2(String),
}

/// The PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`) of `password`, with a
/// random 16-byte salt and argon2's default (OWASP-recommended) parameters.
pub fn hash_password(password: &str) -> Result<String, HashError> {
    let salt_bytes: [u8; 16] = rand::rng().random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| HashError::Argon2(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Argon2(e.to_string()))
}

/// Whether `phc` is an argon2 PHC string this build can verify against (for the
/// configuration check); the reason when not.
pub fn check_hash(phc: &str) -> Result<(), String> {
    let h = PasswordHash::new(phc).map_err(|e| e.to_string())?;
    match h.algorithm.as_str() {
        "argon2id" | "argon2i" | "argon2d" => Ok(()),
        other => Err(format!("algorithm {other}, not argon2")),
    }
}

/// Whether `password` matches the PHC string `phc` (a malformed hash matches nothing).
pub fn verify(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// The logins, by token.
#[derive(Debug, Default)]
pub struct Sessions {
    live: HashMap<String, Instant>,
}

impl Sessions {
    /// Starts a login at `now`: a new random token (256 bits from the thread's
    /// cryptographically secure generator, hex).
    pub fn open(&mut self, now: Instant) -> String {
        self.live.retain(|_, &mut until| until > now);
        if self.live.len() >= MAX_SESSIONS {
            if let Some(oldest) = self
                .live
                .iter()
                .min_by_key(|(_, &until)| until)
                .map(|(t, _)| t.clone())
            {
                self.live.remove(&oldest);
            }
        }
        let bytes: [u8; 32] = rand::rng().random();
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        self.live.insert(token.clone(), now + SESSION_LIFETIME);
        token
    }

    /// Whether `token` is a login that has not expired at `now`.
    pub fn valid(&self, token: &str, now: Instant) -> bool {
        self.live.get(token).is_some_and(|&until| until > now)
    }

    /// Ends a login.
    pub fn close(&mut self, token: &str) {
        self.live.remove(token);
    }
}

/// The session token in a `Cookie` header's value, if there is one.
pub fn token_in(cookie_header: &str) -> Option<&str> {
    cookie_header
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

/// The `Set-Cookie` value that hands out `token`: not readable by scripts (`HttpOnly`),
/// never sent on a request another site starts (`SameSite=Strict`), for the whole page.
/// Without `Max-Age` it is a session cookie; the server ends it after
/// [`SESSION_LIFETIME`] in any case. No `Secure`: the page is plain HTTP on the LAN.
pub fn set_cookie(token: &str) -> String {
    format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/")
}

/// The `Set-Cookie` value that makes the browser forget the login.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

/// The login rate limit.
#[derive(Debug)]
pub struct Limiter {
    origin: Instant,
    all: TokenBucket,
    sources: HashMap<IpAddr, (TokenBucket, Instant)>,
}

impl Limiter {
    /// A limiter whose clock starts at `origin`.
    pub fn new(origin: Instant) -> Self {
        Self {
            origin,
            all: TokenBucket::new(ATTEMPTS_PER_S_ALL, ATTEMPTS_BURST_ALL),
            sources: HashMap::new(),
        }
    }

    /// Whether `source` may try a password at `now` (counts the attempt).
    pub fn allow(&mut self, source: IpAddr, now: Instant) -> bool {
        let t = Timestamp::from_millis(
            u64::try_from(now.saturating_duration_since(self.origin).as_millis())
                .unwrap_or(u64::MAX),
        );
        if !self.sources.contains_key(&source) {
            if self.sources.len() >= MAX_SOURCES {
                self.sources
                    .retain(|_, (_, last)| now.saturating_duration_since(*last) < SOURCE_MEMORY);
            }
            if self.sources.len() >= MAX_SOURCES {
                return false;
            }
        }
        let (bucket, last) = self
            .sources
            .entry(source)
            .or_insert_with(|| (TokenBucket::new(1, ATTEMPTS_BURST), now));
        *last = now;
        // The source's own bucket first: a guesser uses up its own attempts, not those of
        // the person at the next desk.
        bucket.try_take(t) && self.all.try_take(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        check_hash(&h).unwrap();
        assert!(verify(&h, "correct horse"));
        assert!(!verify(&h, "correct horsf"));
        assert!(!verify("not a hash", "correct horse"));
        // Two hashes of one password differ (random salt).
        assert_ne!(h, hash_password("correct horse").unwrap());
    }

    #[test]
    fn a_hash_from_the_argon2_reference_verifies() {
        // RFC 9106 does not give PHC strings; this one is what the reference `argon2`
        // command-line tool (Debian's `argon2` package) prints for
        // `echo -n password | argon2 somesalt -id -t 2 -m 16 -p 1 -e`.
        let phc = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";
        assert!(verify(phc, "password"));
        assert!(!verify(phc, "Password"));
    }

    #[test]
    fn other_schemes_are_not_argon2() {
        assert!(check_hash("$2b$12$abcdefghijklmnopqrstuv").is_err());
        assert!(check_hash("hunter2").is_err());
    }

    #[test]
    fn sessions_expire_on_the_server() {
        let t0 = Instant::now();
        let mut s = Sessions::default();
        let tok = s.open(t0);
        assert_eq!(tok.len(), 64);
        assert!(s.valid(&tok, t0 + Duration::from_secs(60)));
        assert!(!s.valid(&tok, t0 + SESSION_LIFETIME));
        assert!(!s.valid("0000", t0));
        s.close(&tok);
        assert!(!s.valid(&tok, t0));
    }

    #[test]
    fn sessions_are_bounded_and_the_oldest_goes() {
        let t0 = Instant::now();
        let mut s = Sessions::default();
        let first = s.open(t0);
        let toks: Vec<String> = (1..=MAX_SESSIONS as u64)
            .map(|i| s.open(t0 + Duration::from_secs(i)))
            .collect();
        assert!(!s.valid(&first, t0));
        assert!(toks.iter().all(|t| s.valid(t, t0)));
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        assert_eq!(token_in("a=1; mape_session=abc; b=2"), Some("abc"));
        assert_eq!(token_in("mape_sessionx=abc"), None);
        assert_eq!(token_in(""), None);
    }

    #[test]
    fn attempts_are_limited_per_source_then_refill() {
        let t0 = Instant::now();
        let mut l = Limiter::new(t0);
        let a: IpAddr = "192.168.10.10".parse().unwrap();
        let b: IpAddr = "192.168.10.23".parse().unwrap();
        let allowed = (0..10).filter(|_| l.allow(a, t0)).count();
        assert_eq!(allowed, ATTEMPTS_BURST as usize);
        // Another source still gets in (within the overall burst).
        assert!(l.allow(b, t0));
        // One token a second per source, and the overall bucket refilled too.
        assert!(l.allow(a, t0 + Duration::from_millis(1000)));
        assert!(!l.allow(a, t0 + Duration::from_millis(1000)));
    }

    #[test]
    fn the_overall_bucket_bounds_many_sources() {
        let t0 = Instant::now();
        let mut l = Limiter::new(t0);
        let allowed = (0..50u8)
            .filter(|i| l.allow(IpAddr::from([192, 168, 10, *i]), t0))
            .count();
        assert_eq!(allowed, ATTEMPTS_BURST_ALL as usize);
    }
}

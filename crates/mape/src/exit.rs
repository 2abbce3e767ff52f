//! The exit statuses of every `mape` command, in one table: the source of the man page's
//! EXIT STATUS section and of README's table (a test checks that README agrees), and the
//! one-line error reporter of `main`.

use mape_control::ClientError;

/// Usage error or bad input (arguments, configuration file, rule); `mape run`: a set-up
/// failure. clap's own usage errors exit 2 too.
pub(crate) const USAGE: u8 = 2;

/// The daemon is not running: no control socket, nothing listening on it, or no answer
/// (`mape show`, `mape top`). sysexits(3)' EX_UNAVAILABLE, next to `mape run`'s 70
/// (EX_SOFTWARE).
pub(crate) const DAEMON_UNAVAILABLE: u8 = 69;

/// Every status and what it means, in order.
pub(crate) const TABLE: &[(&str, &str)] = &[
    ("0", "success"),
    ("1", "mape doctor: a problem was found"),
    (
        "2",
        "usage error or bad input (arguments, configuration file, rule); mape run: set-up failure",
    ),
    (
        "3",
        "mape run: another daemon owns this TUN, state or socket (nothing touched); mape provision: no TXT record",
    ),
    (
        "4-8",
        "mape provision: 4 DNS failure, 5 server unreachable, 6 refused, 7 nothing offered, 8 bad answer",
    ),
    (
        "69",
        "the daemon is not running: no control socket, nothing listening, or no answer (mape show, mape top)",
    ),
    (
        "70",
        "mape run: datapath failure (a panic or a stopped worker)",
    ),
];

/// The status for an error that reached `main`.
pub(crate) fn code_of(e: &anyhow::Error) -> u8 {
    let unavailable = e.chain().any(|c| {
        matches!(
            c.downcast_ref::<ClientError>(),
            Some(ClientError::Connect { .. } | ClientError::NoAnswer(_))
        )
    });
    if unavailable {
        DAEMON_UNAVAILABLE
    } else {
        USAGE
    }
}

/// The error and its causes on one line, each once: a cause whose text the line already
/// holds (an error that prints its source itself) is not repeated.
pub(crate) fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

/// The EXIT STATUS section of `mape(8)`.
pub(crate) fn man_section() -> String {
    let mut page = roff::Roff::new();
    page.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in TABLE {
        page.control("TP", [] as [&str; 0])
            .text([roff::bold(*code)])
            .text([roff::roman(*meaning)]);
    }
    page.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that prints its source and names it as its cause (as thiserror's
    /// `#[error("{path}: {source}")]` does).
    #[derive(Debug)]
    struct Read {
        path: &'static str,
        source: std::io::Error,
    }

    impl std::fmt::Display for Read {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{}: {}", self.path, self.source)
        }
    }

    impl std::error::Error for Read {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn each_cause_is_printed_once() {
        let io = || std::io::Error::from_raw_os_error(2);
        // An error that prints its source: the source is not repeated.
        let e = anyhow::Error::new(Read {
            path: "/etc/mape/x.toml",
            source: io(),
        });
        assert_eq!(
            one_line(&e),
            "/etc/mape/x.toml: No such file or directory (os error 2)"
        );
        // Context that does not: the cause follows it, once.
        let e = anyhow::Error::new(io()).context("reading the rule");
        assert_eq!(
            one_line(&e),
            "reading the rule: No such file or directory (os error 2)"
        );
        let e = anyhow::anyhow!("two\nlines");
        assert_eq!(one_line(&e), "two lines");
    }

    #[test]
    fn a_daemon_out_of_reach_has_its_own_status() {
        let connect = ClientError::Connect {
            path: "/run/mape/mape.sock".into(),
            source: std::io::Error::from_raw_os_error(2),
        };
        assert_eq!(code_of(&anyhow::Error::new(connect)), 69);
        let wrapped = anyhow::Error::new(ClientError::NoAnswer(std::io::Error::from(
            std::io::ErrorKind::TimedOut,
        )))
        .context("show status");
        assert_eq!(code_of(&wrapped), 69);
        // The daemon answered and refused: that is bad input.
        assert_eq!(
            code_of(&anyhow::Error::new(ClientError::Refused("no".into()))),
            2
        );
        assert_eq!(code_of(&anyhow::anyhow!("--prefix: bad")), 2);
    }

    #[test]
    fn readme_lists_every_status() {
        let readme = include_str!("../../../README.md");
        for (code, meaning) in TABLE {
            let row = format!("| {code} | {meaning} |");
            assert!(readme.contains(&row), "README.md lacks the row {row:?}");
        }
    }
}

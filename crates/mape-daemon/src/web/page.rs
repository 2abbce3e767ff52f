//! The HTML of the status page, the login page and the refusal pages (maud: the templates
//! are Rust, checked when the daemon compiles, every value HTML-escaped). The status page
//! is complete as served; `status.js` refreshes it from `/api/status`.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::view::PageData;

fn frame(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                link rel="stylesheet" href="/assets/status.css";
            }
            body { (body) }
        }
    }
}

/// The login form; `error` says why the last attempt failed.
pub(super) fn login(error: Option<&str>) -> Markup {
    frame(
        "mape: log in",
        html! {
            main.login {
                h1 { "mape" }
                p.muted { "Status of this router's shared IPv4 port budget." }
                @if let Some(e) = error {
                    p.error #login-error { (e) }
                }
                form method="post" action="/login" {
                    label for="password" { "Password" }
                    input #password type="password" name="password" autocomplete="current-password" autofocus required;
                    button #login type="submit" { "Log in" }
                }
            }
        },
    )
}

fn pct(used: u32, total: u32) -> u32 {
    (u64::from(used) * 100)
        .checked_div(u64::from(total))
        .map_or(0, |p| u32::try_from(p).unwrap_or(100))
}

/// The status page with its first data.
pub(super) fn status(d: &PageData) -> Markup {
    let b = &d.budget;
    let p = pct(b.used, b.total);
    let level = if p >= 95 {
        "crit"
    } else if p >= 80 {
        "warn"
    } else {
        "ok"
    };
    frame(
        "mape status",
        html! {
            header {
                h1 { "mape" }
                span.muted #uptime { "up " (d.uptime_s) " s" }
                form method="post" action="/logout" { button.link type="submit" { "Log out" } }
            }
            section #culprit-banner .banner .(if d.culprit.host.is_some() { "alert" } else { "calm" }) {
                @for (i, line) in d.culprit.lines.iter().enumerate() {
                    @if i == 0 { strong { (line) } } @else { p { (line) } }
                }
            }
            section.card {
                h2 { "Port budget" }
                div.gauge #gauge data-level=(level) {
                    div.bar { div.fill #gauge-fill style=(format!("width:{p}%")) {} }
                    p.big { span #gauge-used { (b.used) } " of " span #gauge-total { (b.total) } " ports in use" }
                    p.muted #gauge-peak { "peak " (b.peak) " (" (b.peak_ago) "), " (b.sessions) " sessions, " (b.refusals) " refused" }
                }
                table #protocols {
                    thead { tr { th { "proto" } th { "in use" } th { "of" } th { "peak" } } }
                    tbody {
                        @for l in &b.protocols {
                            tr { td { (l.proto) } td.num { (l.used) } td.num { (l.total) } td.num { (l.peak) } }
                        }
                    }
                }
            }
            section.card {
                h2 { "Ports in use, last hour" }
                svg #chart viewBox="0 0 600 160" preserveAspectRatio="none" role="img" aria-label="ports in use over the last hour" {}
            }
            section.card {
                h2 { "Hosts by ports held" }
                table #hosts {
                    thead { tr { th { "host" } th { "ports" } th { "flows" } th { "refused" } th { "score" } } }
                    tbody {
                        @for h in &d.hosts {
                            tr { td { (h.addr) } td.num { (h.ports) } td.num { (h.flows) } td.num { (h.refused) } td.num { (format!("{:.2}", h.score)) } }
                        }
                    }
                }
            }
            section.card {
                h2 { "Destinations" }
                table #destinations {
                    thead { tr { th { "proto" } th { "destination" } th { "flows" } th { "total" } th { "hosts" } th { "filtered" } } }
                    tbody {
                        @for x in &d.destinations {
                            tr { td { (x.proto) } td { (x.dst) } td.num { (x.flows) } td.num { (x.total) } td.num { (x.hosts) } td.num { (x.filtered) } }
                        }
                    }
                }
            }
            section.card {
                h2 { "Drops by reason" }
                table #drops {
                    tbody {
                        @if d.drops.is_empty() { tr { td { "none" } } }
                        @for (k, n) in &d.drops { tr { td { (k) } td.num { (n) } } }
                    }
                }
            }
            section.card {
                h2 { "MAP rule" }
                table #rule {
                    tbody {
                        @if let Some(p) = &d.policy { tr { th { "policy" } td { (p) } } }
                        @for (k, v) in &d.rule.fields { tr { th { (k) } td { (v) } } }
                    }
                }
            }
            footer.muted { "Read-only. Refreshes every few seconds." }
            // The first data for the chart, as the JSON endpoint serves it.
            script #initial type="application/json" { (PreEscaped(json_for_script(d))) }
            script src="/assets/status.js" {}
        },
    )
}

/// `d` as JSON safe inside a `<script>` element: `<` is escaped, so no `</script>` can
/// close it early.
fn json_for_script(d: &PageData) -> String {
    serde_json::to_string(d)
        .unwrap_or_else(|_| "null".into())
        .replace('<', "\\u003c")
}

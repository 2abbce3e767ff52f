//! `mape top`: a live view of the port budget over the control socket — the gauge and a
//! sparkline of ports in use, the hosts, the top destinations, drops and recent refusals.
//! Keys: q quit, p pause, s change sort, f filter by the next host, F clear the filter.
//! Fits 80×24 and works over SSH.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use mape_control::reply::{HostStats, Snapshot, Status};
use mape_control::{request_typed, Request};
use mape_daemon::config::DEFAULT_SOCKET;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind};
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Gauge, Paragraph, Row, Sparkline, Table};
use ratatui::Frame;

#[derive(Args, Debug)]
pub(crate) struct TopArgs {
    /// Control socket of the daemon.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Refresh interval in milliseconds.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sort {
    Ports,
    Flows,
    Refused,
    Score,
}

impl Sort {
    fn next(self) -> Self {
        match self {
            Sort::Ports => Sort::Flows,
            Sort::Flows => Sort::Refused,
            Sort::Refused => Sort::Score,
            Sort::Score => Sort::Ports,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Sort::Ports => "ports",
            Sort::Flows => "flows",
            Sort::Refused => "refused",
            Sort::Score => "score",
        }
    }
}

struct State {
    snap: Option<Snapshot>,
    status: Option<Status>,
    history: VecDeque<u64>,
    paused: bool,
    sort: Sort,
    filter: Option<String>,
    error: Option<String>,
}

pub(crate) fn run(args: &TopArgs) -> Result<ExitCode> {
    // Fail before taking over the terminal when the daemon is not there.
    mape_control::request(&args.socket, &Request::Status)?;
    let mut terminal = ratatui::init();
    let result = main_loop(&mut terminal, args);
    ratatui::restore();
    result.map(|_| ExitCode::SUCCESS)
}

fn refresh(st: &mut State, socket: &std::path::Path) {
    match (
        request_typed::<Snapshot>(socket, &Request::Snapshot),
        request_typed::<Status>(socket, &Request::Status),
    ) {
        (Ok(snap), Ok(status)) => {
            st.history.push_back(u64::from(snap.in_use));
            while st.history.len() > 240 {
                st.history.pop_front();
            }
            st.snap = Some(snap);
            st.status = Some(status);
            st.error = None;
        }
        (Err(e), _) | (_, Err(e)) => st.error = Some(e.to_string()),
    }
}

fn main_loop(terminal: &mut ratatui::DefaultTerminal, args: &TopArgs) -> Result<()> {
    let mut st = State {
        snap: None,
        status: None,
        history: VecDeque::new(),
        paused: false,
        sort: Sort::Ports,
        filter: None,
        error: None,
    };
    let interval = Duration::from_millis(args.interval_ms.clamp(100, 60_000));
    let mut last = Instant::now() - interval;
    loop {
        if !st.paused && last.elapsed() >= interval {
            refresh(&mut st, &args.socket);
            last = Instant::now();
        }
        terminal.draw(|f| draw(f, &st))?;
        if event::poll(Duration::from_millis(200))? {
            if let Event::Key(k) = event::read()? {
                if k.kind != KeyEventKind::Press {
                    continue;
                }
                match k.code {
                    KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                    KeyCode::Char('p') => st.paused = !st.paused,
                    KeyCode::Char('s') => st.sort = st.sort.next(),
                    KeyCode::Char('f') => {
                        let hosts: Vec<String> = st
                            .snap
                            .iter()
                            .flat_map(|s| &s.hosts)
                            .map(|h| h.addr.to_string())
                            .collect();
                        st.filter = match &st.filter {
                            None => hosts.first().cloned(),
                            Some(cur) => hosts
                                .iter()
                                .position(|h| h == cur)
                                .and_then(|i| hosts.get(i + 1))
                                .cloned(),
                        };
                    }
                    KeyCode::Char('F') => st.filter = None,
                    _ => {}
                }
            }
        }
    }
}

fn draw(f: &mut Frame, st: &State) {
    let area = f.area();
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(3),
            Constraint::Length(4),
            Constraint::Min(6),
            Constraint::Length(6),
            Constraint::Length(1),
        ])
        .split(area);
    draw_gauge(f, rows[0], st);
    let spark: Vec<u64> = st.history.iter().copied().collect();
    let budget = st.snap.as_ref().map_or(0, |s| u64::from(s.budget)).max(1);
    f.render_widget(
        Sparkline::default()
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(" ports in use over time "),
            )
            .data(&spark)
            .max(budget)
            .style(Style::default().fg(Color::Cyan)),
        rows[1],
    );
    let mid = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Percentage(58), Constraint::Percentage(42)])
        .split(rows[2]);
    draw_hosts(f, mid[0], st);
    draw_destinations(f, mid[1], st);
    draw_events(f, rows[3], st);
    let help = format!(
        " q quit  p {}  s sort:{}  f filter:{}  F clear{}",
        if st.paused { "resume" } else { "pause" },
        st.sort.name(),
        st.filter.as_deref().unwrap_or("all"),
        st.error
            .as_deref()
            .map(|e| format!("  ! {e}"))
            .unwrap_or_default()
    );
    f.render_widget(
        Paragraph::new(help).style(Style::default().add_modifier(Modifier::DIM)),
        rows[4],
    );
}

fn draw_gauge(f: &mut Frame, area: Rect, st: &State) {
    let snap = st.snap.as_ref();
    let used = snap.map_or(0, |s| s.in_use);
    let total = snap.map_or(0, |s| s.budget).max(1);
    let ratio = (f64::from(used) / f64::from(total)).clamp(0.0, 1.0);
    let colour = if ratio >= 0.95 {
        Color::Red
    } else if ratio >= 0.80 {
        Color::Yellow
    } else {
        Color::Green
    };
    let culprit = snap
        .and_then(|s| s.culprit.as_ref())
        .map(|c| format!("  culprit {}", c.host))
        .unwrap_or_default();
    let culprit = match snap.and_then(|s| crate::show::forecast_lines(s).into_iter().next()) {
        Some(f) => format!("{culprit}  {f}"),
        None => culprit,
    };
    let title = format!(
        " {} {}  peak {}  refused {}{culprit} ",
        st.status.as_ref().map_or("-", |s| s.role.as_str()),
        st.status.as_ref().and_then(|s| s.map.ipv4()).unwrap_or(""),
        snap.map_or(0, |s| s.peak),
        snap.map_or(0, |s| s.refusals),
    );
    f.render_widget(
        Gauge::default()
            .block(Block::default().borders(Borders::ALL).title(title))
            .gauge_style(Style::default().fg(colour))
            .ratio(ratio)
            .label(format!("ports {used}/{total}")),
        area,
    );
}

fn draw_hosts(f: &mut Frame, area: Rect, st: &State) {
    let mut hosts: Vec<&HostStats> = st.snap.iter().flat_map(|s| &s.hosts).collect();
    if let Some(filter) = &st.filter {
        hosts.retain(|h| &h.addr.to_string() == filter);
    }
    let key = |h: &&HostStats| -> f64 {
        match st.sort {
            Sort::Ports => f64::from(h.ports_held),
            Sort::Flows => f64::from(h.flows),
            Sort::Refused => h.refusals as f64,
            Sort::Score => h.culprit_score,
        }
    };
    hosts.sort_by(|a, b| key(b).total_cmp(&key(a)));
    let rows: Vec<Row> = hosts
        .iter()
        .map(|h| {
            Row::new(vec![
                h.addr.to_string(),
                h.ports_held.to_string(),
                h.flows.to_string(),
                h.unanswered.to_string(),
                h.refusals.to_string(),
                format!("{:.1}", h.culprit_score),
            ])
        })
        .collect();
    f.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(15),
                Constraint::Length(5),
                Constraint::Length(6),
                Constraint::Length(6),
                Constraint::Length(7),
                Constraint::Length(5),
            ],
        )
        .header(
            Row::new(vec!["host", "ports", "flows", "unans", "refused", "score"])
                .style(Style::default().add_modifier(Modifier::BOLD)),
        )
        .block(Block::default().borders(Borders::ALL).title(" hosts ")),
        area,
    );
}

fn draw_destinations(f: &mut Frame, area: Rect, st: &State) {
    let rows: Vec<Row> = st
        .snap
        .iter()
        .flat_map(|s| &s.destinations)
        .map(|x| {
            Row::new(vec![
                format!("{} {}", x.proto, x.dst),
                x.flows.to_string(),
                x.filtered.to_string(),
            ])
        })
        .collect();
    f.render_widget(
        Table::new(
            rows,
            [
                Constraint::Min(18),
                Constraint::Length(5),
                Constraint::Length(6),
            ],
        )
        .header(
            Row::new(vec!["destination", "flows", "filt"])
                .style(Style::default().add_modifier(Modifier::BOLD)),
        )
        .block(
            Block::default()
                .borders(Borders::ALL)
                .title(" destinations "),
        ),
        area,
    );
}

fn draw_events(f: &mut Frame, area: Rect, st: &State) {
    let mut lines: Vec<Line> = Vec::new();
    if let Some(status) = &st.status {
        let drops: Vec<String> = status
            .drops
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        if !drops.is_empty() {
            lines.push(Line::from(format!("drops: {}", drops.join(", "))));
        }
    }
    for x in st
        .snap
        .iter()
        .flat_map(|s| s.recent_refusals.iter().rev().take(3))
    {
        lines.push(Line::from(format!(
            "refused {} {} -> {} ({})",
            x.proto, x.host, x.dst, x.reason
        )));
    }
    if lines.is_empty() {
        lines.push(Line::from("no drops, no refusals"));
    }
    f.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" drops and events "),
        ),
        area,
    );
}

//! The ports-in-use chart: one line per policy over capture time (minutes), the budget as a
//! dashed horizontal line, each exhaustion marked and labelled, each line named at its end
//! and in a legend. SVG only: plotters' bitmap text needs system fonts, which a router or a
//! CI machine may lack (convert with `rsvg-convert -o out.png out.svg`).

use std::path::Path;

use plotters::prelude::*;

use crate::report::{fmt_duration, Report};

/// Why the chart could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Not an `.svg` path.
    #[error("plot {0}: only SVG is supported (PNG text needs system fonts); write .svg and convert it, e.g. rsvg-convert -o out.png out.svg")]
    Format(String),
    /// plotters failed.
    #[error("plot: drawing failed: {0}")]
    Draw(String),
    /// Writing the file failed.
    #[error("plot {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

const COLORS: [RGBColor; 3] = [
    RGBColor(0, 140, 70),
    RGBColor(30, 100, 200),
    RGBColor(210, 50, 40),
];

fn draw_err<E: std::fmt::Debug>(e: E) -> PlotError {
    PlotError::Draw(format!("{e:?}"))
}

/// Renders the chart as an SVG document.
pub fn render_svg(r: &Report) -> Result<String, PlotError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let pts = &r.series.points;
        let x_max = (r.duration_s / 60.0).max(pts.last().map_or(0.0, |p| p.t_ms as f64 / 60_000.0));
        let x_max = if x_max <= 0.0 { 1.0 } else { x_max };
        let peak = r.policies.iter().map(|p| p.peak_ports).max().unwrap_or(0);
        // Headroom above the budget holds the legend and the exhaustion labels.
        let y_max = f64::from(r.budget.max(peak).max(1)) * 1.4;
        let title = format!("Ports in use of {}: {}", r.budget, r.source);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .margin_right(120)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("time (minutes)")
            .y_desc("ports in use")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .axis_desc_style(("sans-serif", 16))
            .label_style(("sans-serif", 13))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(draw_err)?;
        // The budget.
        let budget = f64::from(r.budget);
        chart
            .draw_series(DashedLineSeries::new(
                [(0.0, budget), (x_max, budget)],
                10,
                6,
                ShapeStyle::from(&BLACK).stroke_width(2),
            ))
            .map_err(draw_err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!("budget: {} ports", r.budget),
                (x_max * 0.01, budget + y_max * 0.055),
                ("sans-serif", 15).into_font().color(&BLACK),
            )))
            .map_err(draw_err)?;
        let mut end_labels: Vec<(f64, usize)> = Vec::new();
        let mut exhausted_n = 0u32;
        for (i, p) in r.policies.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let line: Vec<(f64, f64)> = pts
                .iter()
                .map(|s| {
                    (
                        s.t_ms as f64 / 60_000.0,
                        f64::from(s.used.get(i).copied().unwrap_or(0)),
                    )
                })
                .collect();
            let last_y = line.last().map_or(0.0, |l| l.1);
            chart
                .draw_series(LineSeries::new(line, color.stroke_width(2)))
                .map_err(draw_err)?
                .label(format!("{} (peak {})", p.name, p.peak_ports))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 22, y)], color.stroke_width(3))
                });
            end_labels.push((last_y, i));
            // The forecast's warning (dotted line, triangle), then the exhaustion (dashed
            // line, circle), each with its label stacked above the budget line.
            let marks = [
                (p.forecast_warned_at_s, "warned", (1, 5), true),
                (p.exhausted_at_s, "exhausted", (4, 4), false),
            ];
            for (t, what, (dash, gap), triangle) in marks {
                let Some(t) = t else { continue };
                let x = t / 60.0;
                chart
                    .draw_series(DashedLineSeries::new(
                        [(x, 0.0), (x, budget)],
                        dash,
                        gap,
                        color.stroke_width(1),
                    ))
                    .map_err(draw_err)?;
                if triangle {
                    chart
                        .draw_series(std::iter::once(TriangleMarker::new(
                            (x, budget),
                            7,
                            color.filled(),
                        )))
                        .map_err(draw_err)?;
                } else {
                    chart
                        .draw_series(std::iter::once(Circle::new((x, budget), 6, color.filled())))
                        .map_err(draw_err)?;
                }
                chart
                    .draw_series(std::iter::once(Text::new(
                        format!("{} {what} after {}", p.name, fmt_duration(t)),
                        (
                            x + x_max * 0.01,
                            budget + y_max * (0.11 + 0.05 * f64::from(exhausted_n)),
                        ),
                        ("sans-serif", 14).into_font().color(&color),
                    )))
                    .map_err(draw_err)?;
                exhausted_n += 1;
            }
        }
        // Keep the legend clear of late exhaustion labels.
        let late = r
            .policies
            .iter()
            .filter_map(|p| p.exhausted_at_s)
            .any(|t| t / 60.0 > x_max * 0.5);
        let legend_at = if late {
            SeriesLabelPosition::UpperLeft
        } else {
            SeriesLabelPosition::UpperRight
        };
        // Names at the line ends, nudged apart so they never overlap.
        end_labels.sort_by(|a, b| a.0.total_cmp(&b.0));
        let min_gap = y_max * 0.05;
        let mut last: Option<f64> = None;
        for (y, i) in end_labels {
            let y = match last {
                Some(l) if y < l + min_gap => l + min_gap,
                _ => y,
            };
            last = Some(y);
            let color = COLORS[i % COLORS.len()];
            let name = r.policies.get(i).map_or("", |p| p.name.as_str());
            chart
                .draw_series(std::iter::once(Text::new(
                    name.to_owned(),
                    (x_max * 1.01, y + y_max * 0.015),
                    ("sans-serif", 14).into_font().color(&color),
                )))
                .map_err(draw_err)?;
        }
        chart
            .configure_series_labels()
            .position(legend_at)
            .margin(12)
            .label_font(("sans-serif", 14))
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(180, 180, 180))
            .draw()
            .map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// Writes the chart to `path` (must end in `.svg`).
pub fn write_plot(r: &Report, path: &Path) -> Result<(), PlotError> {
    let shown = path.display().to_string();
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if ext.as_deref() != Some("svg") {
        return Err(PlotError::Format(shown));
    }
    let svg = render_svg(r)?;
    std::fs::write(path, svg).map_err(|source| PlotError::Io {
        path: shown,
        source,
    })
}

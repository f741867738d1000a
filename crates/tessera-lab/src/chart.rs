//! The charts (`--plot FILE`, and inline in `--report`): each experiment
//! draws a [`Figure`] of stacked panels, lines over time or horizontal
//! bars, as SVG; PNG is the same SVG rasterised (see [`png`]).
//!
//! Written by hand rather than with `plotters`: the charts are two fixed
//! kinds, every element is labelled with its series
//! (`<polyline class="series" data-architecture="...">`,
//! `<rect class="bar" data-series="...">`) so that tests and scripts can
//! read them back, and one SVG serves the file, the HTML report and the PNG.
//! Each architecture and mechanism has one colour in every chart
//! ([`colour`]).

use std::fmt::Write;

const WIDTH: f64 = 960.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 210.0;
const LINE_PANEL: f64 = 260.0;
const PANEL_TOP: f64 = 34.0;
const PANEL_BOTTOM: f64 = 46.0;
const BAR: f64 = 13.0;
const TITLE: f64 = 36.0;

/// One experiment's chart.
#[derive(Debug, Clone)]
pub struct Figure {
    /// Its heading.
    pub title: String,
    /// Panels, top to bottom.
    pub panels: Vec<Panel>,
}

/// A line over time, one per architecture or mechanism.
#[derive(Debug, Clone)]
pub struct Series {
    /// The architecture or mechanism (its colour and legend entry).
    pub name: String,
    /// (x, y) points.
    pub points: Vec<(f64, f64)>,
}

/// Something that happened at a time: a dashed vertical line.
#[derive(Debug, Clone)]
pub struct Event {
    /// What (`SIGKILL node 1`).
    pub label: String,
    /// When, in x units.
    pub at: f64,
}

/// One category's bars (e.g. a mechanism's median, p99 and max).
#[derive(Debug, Clone)]
pub struct BarGroup {
    /// The architecture or mechanism (its colour).
    pub name: String,
    /// (label, value) per bar.
    pub bars: Vec<(String, f64)>,
}

/// A panel of a figure.
#[derive(Debug, Clone)]
pub enum Panel {
    /// Lines over an x axis starting at 0.
    Lines {
        /// Panel heading.
        title: String,
        /// x axis label, with its unit.
        x_label: String,
        /// y axis label, with its unit.
        y_label: String,
        /// The end of the x axis.
        x_max: f64,
        /// The lines.
        series: Vec<Series>,
        /// Marked events.
        events: Vec<Event>,
    },
    /// Horizontal bars, one group per category.
    Bars {
        /// Panel heading.
        title: String,
        /// Value axis label, with its unit.
        x_label: String,
        /// How a value is printed next to its bar.
        unit: String,
        /// The groups, top to bottom.
        groups: Vec<BarGroup>,
        /// Reference values drawn as dashed lines (e.g. `/health`).
        references: Vec<Event>,
    },
}

/// The colour of an architecture or mechanism, the same in every chart.
pub fn colour(name: &str) -> &'static str {
    let name = name.split(' ').next().unwrap_or(name);
    match name {
        "stateful" | "session-memory" => "#d62728",
        "stateless-redis" | "session-redis" => "#1f77b4",
        "session-redis-near-cache" => "#17becf",
        "session-sqlite" => "#8c564b",
        "sealed-cookie" => "#9467bd",
        "stateless-jwt" | "jwt-revocation-list" | "jwt-hs256" => "#2ca02c",
        "jwt-eddsa" => "#3a9e4a",
        "jwt-es256" => "#7fbf3f",
        "jwt-rs256" => "#bcbd22",
        "jwt-jwks-only" => "#ff7f0e",
        "health" => "#7f7f7f",
        _ => "#444444",
    }
}

impl Figure {
    /// The figure as a standalone SVG document.
    pub fn svg(&self) -> String {
        stack(std::slice::from_ref(self))
    }

    fn height(&self) -> f64 {
        TITLE + self.panels.iter().map(Panel::height).sum::<f64>()
    }

    fn draw(&self, out: &mut String, top: f64) {
        let _ = writeln!(
            out,
            r#"<text x="{LEFT}" y="{:.1}" font-size="17" font-weight="bold">{}</text>"#,
            top + 24.0,
            escape(&self.title)
        );
        let mut y = top + TITLE;
        for panel in &self.panels {
            panel.draw(out, y);
            y += panel.height();
        }
    }
}

/// Several figures, one under the other, as one SVG document (`--plot`
/// with several experiments).
pub fn stack(figures: &[Figure]) -> String {
    let height: f64 = figures.iter().map(Figure::height).sum::<f64>().max(40.0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="DejaVu Sans, sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        out,
        r#"<rect width="{WIDTH}" height="{height:.0}" fill="white"/>"#
    );
    let mut top = 0.0;
    for figure in figures {
        figure.draw(&mut out, top);
        top += figure.height();
    }
    out.push_str("</svg>\n");
    out
}

impl Panel {
    fn height(&self) -> f64 {
        match self {
            Self::Lines { .. } => LINE_PANEL,
            Self::Bars { groups, .. } => {
                let rows: usize = groups.iter().map(|g| g.bars.len().max(1)).sum();
                PANEL_TOP + PANEL_BOTTOM + rows as f64 * (BAR + 3.0) + groups.len() as f64 * 10.0
            }
        }
    }

    fn draw(&self, out: &mut String, top: f64) {
        match self {
            Self::Lines {
                title,
                x_label,
                y_label,
                x_max,
                series,
                events,
            } => draw_lines(out, top, title, x_label, y_label, *x_max, series, events),
            Self::Bars {
                title,
                x_label,
                unit,
                groups,
                references,
            } => draw_bars(out, top, title, x_label, unit, groups, references),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn draw_lines(
    out: &mut String,
    top: f64,
    title: &str,
    x_label: &str,
    y_label: &str,
    x_max: f64,
    series: &[Series],
    events: &[Event],
) {
    let x_max = if x_max > 0.0 { x_max } else { 1.0 };
    let peak = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let y_step = nice_step(peak.max(1.0), 5);
    let y_max = (peak / y_step).ceil().max(1.0) * y_step;
    let plot_top = top + PANEL_TOP;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = LINE_PANEL - PANEL_TOP - PANEL_BOTTOM;
    let x = |v: f64| LEFT + v.clamp(0.0, x_max) / x_max * plot_w;
    let y = |v: f64| plot_top + plot_h - v / y_max * plot_h;

    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="{:.1}" font-size="14">{}</text>"#,
        top + 20.0,
        escape(title)
    );
    let mut tick = 0.0;
    while tick <= y_max + y_step / 2.0 {
        let ty = y(tick);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}" stroke="#e5e5e5"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            ty + 4.0,
            label(tick, y_step)
        );
        tick += y_step;
    }
    let x_step = nice_step(x_max, 10);
    let mut tick = 0.0;
    while tick <= x_max + x_step / 100.0 {
        let tx = x(tick);
        let _ = writeln!(
            out,
            r##"<line x1="{tx:.1}" y1="{:.1}" x2="{tx:.1}" y2="{:.1}" stroke="#999"/><text x="{tx:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            plot_top + plot_h,
            plot_top + plot_h + 5.0,
            plot_top + plot_h + 18.0,
            label(tick, x_step)
        );
        tick += x_step;
    }
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{plot_top:.1}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>"##
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        LEFT + plot_w / 2.0,
        plot_top + plot_h + 34.0,
        escape(x_label)
    );
    let _ = writeln!(
        out,
        r#"<text transform="translate(20 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        plot_top + plot_h / 2.0,
        escape(y_label)
    );
    for (index, event) in events.iter().enumerate() {
        let mx = x(event.at);
        let _ = writeln!(
            out,
            r##"<line class="marker" data-event="{}" x1="{mx:.1}" y1="{plot_top:.1}" x2="{mx:.1}" y2="{:.1}" stroke="#555" stroke-dasharray="5 4"/><text x="{:.1}" y="{:.1}" fill="#333">{}</text>"##,
            escape(&event.label),
            plot_top + plot_h,
            mx + 4.0,
            plot_top + 14.0 + (index % 2) as f64 * 14.0,
            escape(&event.label)
        );
    }
    for (index, s) in series.iter().enumerate() {
        let colour = colour(&s.name);
        let points: Vec<String> = s
            .points
            .iter()
            .map(|(px, py)| format!("{:.1},{:.1}", x(*px), y(*py)))
            .collect();
        // Earlier series drawn wider: lines that coincide (stateless rows
        // that lose nobody) stay visible as nested stripes.
        let width = 2.0 + (series.len() - 1 - index) as f64 * 2.0;
        let _ = writeln!(
            out,
            r#"<polyline class="series" data-architecture="{name}" fill="none" stroke="{colour}" stroke-width="{width}" stroke-linejoin="round" points="{}"><title>{name}</title></polyline>"#,
            points.join(" "),
            name = escape(&s.name),
        );
        let ly = plot_top + 10.0 + index as f64 * 20.0;
        let lx = LEFT + plot_w + 15.0;
        let _ = writeln!(
            out,
            r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 24.0,
            lx + 30.0,
            ly + 4.0,
            escape(&s.name)
        );
    }
}

fn draw_bars(
    out: &mut String,
    top: f64,
    title: &str,
    x_label: &str,
    unit: &str,
    groups: &[BarGroup],
    references: &[Event],
) {
    let peak = groups
        .iter()
        .flat_map(|g| g.bars.iter().map(|b| b.1))
        .chain(references.iter().map(|r| r.at))
        .fold(0.0, f64::max);
    let step = nice_step(peak.max(1e-9), 5);
    let x_max = (peak / step).ceil().max(1.0) * step;
    // Room for the longest category name (bold 12px: about 7.5px a character).
    let longest = groups
        .iter()
        .map(|g| g.name.chars().count())
        .max()
        .unwrap_or(0);
    let plot_left = (20.0 + longest as f64 * 7.5).max(LEFT + 60.0);
    let plot_w = WIDTH - plot_left - 120.0;
    let plot_top = top + PANEL_TOP;
    let rows: usize = groups.iter().map(|g| g.bars.len().max(1)).sum();
    let plot_h = rows as f64 * (BAR + 3.0) + groups.len() as f64 * 10.0;
    let x = |v: f64| plot_left + (v / x_max).clamp(0.0, 1.0) * plot_w;
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="{:.1}" font-size="14">{}</text>"#,
        top + 20.0,
        escape(title)
    );
    let mut tick = 0.0;
    while tick <= x_max + step / 100.0 {
        let tx = x(tick);
        let _ = writeln!(
            out,
            r##"<line x1="{tx:.1}" y1="{plot_top:.1}" x2="{tx:.1}" y2="{:.1}" stroke="#e5e5e5"/><text x="{tx:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            plot_top + plot_h,
            plot_top + plot_h + 16.0,
            label(tick, step)
        );
        tick += step;
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        plot_left + plot_w / 2.0,
        plot_top + plot_h + 34.0,
        escape(x_label)
    );
    let mut y = plot_top + 5.0;
    for group in groups {
        let colour = colour(&group.name);
        let group_h = group.bars.len().max(1) as f64 * (BAR + 3.0);
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" font-weight="bold">{}</text>"#,
            plot_left - 8.0,
            y + group_h / 2.0 + 2.0,
            escape(&group.name)
        );
        for (index, (bar_label, value)) in group.bars.iter().enumerate() {
            let opacity = 1.0 - index as f64 * 0.25;
            let width = (x(*value) - plot_left).max(1.5);
            let _ = writeln!(
                out,
                r#"<rect class="bar" data-series="{name}" data-value="{value}" x="{plot_left:.1}" y="{y:.1}" width="{width:.1}" height="{BAR}" fill="{colour}" fill-opacity="{opacity:.2}"><title>{name} {label}: {value:.3} {unit}</title></rect><text x="{:.1}" y="{:.1}" font-size="11">{label} {}</text>"#,
                plot_left + width + 4.0,
                y + BAR - 2.5,
                figure(*value, unit),
                name = escape(&group.name),
                label = escape(bar_label),
            );
            y += BAR + 3.0;
        }
        y += 10.0;
    }
    for reference in references {
        let rx = x(reference.at);
        let _ = writeln!(
            out,
            r##"<line class="marker" data-event="{label}" x1="{rx:.1}" y1="{plot_top:.1}" x2="{rx:.1}" y2="{:.1}" stroke="#555" stroke-dasharray="5 4"/><text x="{:.1}" y="{:.1}" fill="#333" font-size="11">{label}</text>"##,
            plot_top + plot_h,
            rx + 3.0,
            plot_top - 3.0,
            label = escape(&reference.label),
        );
    }
    let _ = writeln!(
        out,
        r##"<line x1="{plot_left:.1}" y1="{plot_top:.1}" x2="{plot_left:.1}" y2="{:.1}" stroke="#333"/>"##,
        plot_top + plot_h
    );
}

/// A bar's value as printed next to it.
fn figure(value: f64, unit: &str) -> String {
    let number = if value == 0.0 {
        "0".to_owned()
    } else if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    };
    format!("{number} {unit}")
}

/// Text for SVG and HTML.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A tick's text, with as many decimals as the step needs.
fn label(value: f64, step: f64) -> String {
    if step >= 1.0 {
        format!("{value:.0}")
    } else if step >= 0.1 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// A step of 1, 2 or 5 times a power of ten giving about `ticks` ticks
/// over `range`.
fn nice_step(range: f64, ticks: u32) -> f64 {
    let raw = range / f64::from(ticks);
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * magnitude)
}

/// The SVG rasterised to PNG with `resvg`, text in the system's fonts
/// (DejaVu Sans on Debian).
///
/// # Errors
///
/// The SVG does not parse or the image cannot be encoded.
pub fn png(svg: &str) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context;
    use resvg::{tiny_skia, usvg};
    let mut options = usvg::Options::default();
    options.fontdb_mut().load_system_fonts();
    options.font_family = "DejaVu Sans".to_owned();
    let tree = usvg::Tree::from_str(svg, &options).context("the chart is not valid SVG")?;
    let size = tree.size().to_int_size();
    let mut pixmap =
        tiny_skia::Pixmap::new(size.width(), size.height()).context("the chart has no size")?;
    resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
    pixmap.encode_png().context("cannot encode the PNG")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round_numbers() {
        assert_eq!(nice_step(20.0, 10), 2.0);
        assert_eq!(nice_step(6.0, 10), 1.0);
        assert_eq!(nice_step(2350.0, 5), 500.0);
        assert_eq!(nice_step(1.0, 5), 0.2);
    }

    fn sample() -> Figure {
        Figure {
            title: "t <1>".to_owned(),
            panels: vec![
                Panel::Lines {
                    title: "users".to_owned(),
                    x_label: "time (s)".to_owned(),
                    y_label: "users".to_owned(),
                    x_max: 10.0,
                    series: vec![Series {
                        name: "stateful".to_owned(),
                        points: vec![(0.0, 3.0), (10.0, 2.0)],
                    }],
                    events: vec![Event {
                        label: "SIGKILL".to_owned(),
                        at: 4.0,
                    }],
                },
                Panel::Bars {
                    title: "exposure".to_owned(),
                    x_label: "ms".to_owned(),
                    unit: "ms".to_owned(),
                    groups: vec![BarGroup {
                        name: "jwt-jwks-only".to_owned(),
                        bars: vec![("median".to_owned(), 5.0), ("max".to_owned(), 9.0)],
                    }],
                    references: vec![],
                },
            ],
        }
    }

    #[test]
    fn draws_each_series_bar_and_event_labelled() {
        let svg = sample().svg();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains(r#"data-architecture="stateful""#));
        assert_eq!(svg.matches(r#"class="bar""#).count(), 2);
        assert!(svg.contains(r#"data-event="SIGKILL""#));
        assert!(svg.contains("t &lt;1&gt;"));
    }

    #[test]
    fn rasterises_to_png() {
        let png = png(&sample().svg()).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
}

//! The chart (`--plot FILE`): successful requests per second over time, one
//! line per architecture, with the kill and the restart marked.
//!
//! Written by hand rather than with `plotters`: the chart is one fixed kind
//! (lines over seconds and two markers), this is shorter than the setup
//! plotters would need, it keeps a plotting stack out of the server binary,
//! and every series is one element labelled with its architecture
//! (`<polyline data-architecture="...">`) that tests and scripts can read
//! back. SVG only; convert it (e.g. `rsvg-convert -o chart.png`) for PNG.

use std::fmt::Write;

use super::report::LabReport;

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 440.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 50.0;

/// The chart of `report` as an SVG document.
pub fn svg(report: &LabReport) -> String {
    let plan = &report.plan;
    let x_max = plan.duration.as_secs_f64();
    let peak = report
        .rows
        .iter()
        .flat_map(|row| row.successes_per_second.iter().copied())
        .fold(0.0, f64::max);
    let y_step = nice_step(peak.max(1.0), 5);
    let y_max = (peak / y_step).ceil().max(1.0) * y_step;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |seconds: f64| LEFT + seconds / x_max * plot_w;
    let y = |rate: f64| TOP + plot_h - rate / y_max * plot_h;

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        out,
        r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
    );
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="24" font-size="15">Successful requests per second ({} nodes, {} users; node 1 SIGKILLed)</text>"#,
        plan.nodes, plan.users
    );
    // Grid and axes.
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
            TOP + plot_h,
            TOP + plot_h + 5.0,
            TOP + plot_h + 18.0,
            label(tick, x_step)
        );
        tick += x_step;
    }
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>"##
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">seconds</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 12.0
    );
    let _ = writeln!(
        out,
        r#"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">requests/s</text>"#,
        TOP + plot_h / 2.0
    );
    // The kill and the restart.
    let mut markers = vec![("SIGKILL", plan.kill_at.as_secs_f64(), "#d62728")];
    if let Some(at) = plan.restart_at() {
        markers.push(("restart", at.as_secs_f64(), "#555"));
    }
    for (label, at, colour) in markers {
        let mx = x(at);
        let _ = writeln!(
            out,
            r#"<line class="marker" data-event="{label}" x1="{mx:.1}" y1="{TOP}" x2="{mx:.1}" y2="{:.1}" stroke="{colour}" stroke-dasharray="5 4"/><text x="{:.1}" y="{:.1}" fill="{colour}">{label}</text>"#,
            TOP + plot_h,
            mx + 4.0,
            TOP + 14.0
        );
    }
    // One line per architecture, and its legend entry.
    for (index, row) in report.rows.iter().enumerate() {
        let colour = colour(row.architecture);
        let points: Vec<String> = row
            .successes_per_second
            .iter()
            .enumerate()
            .map(|(i, rate)| {
                let seconds = ((i as f64 + 0.5) * row.slice_s).min(x_max);
                format!("{:.1},{:.1}", x(seconds), y(*rate))
            })
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline class="series" data-architecture="{}" fill="none" stroke="{colour}" stroke-width="2" points="{}"><title>{}</title></polyline>"#,
            row.architecture,
            points.join(" "),
            row.architecture
        );
        let ly = TOP + 10.0 + index as f64 * 22.0;
        let lx = LEFT + plot_w + 15.0;
        let _ = writeln!(
            out,
            r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 24.0,
            lx + 30.0,
            ly + 4.0,
            row.architecture
        );
    }
    out.push_str("</svg>\n");
    out
}

fn colour(architecture: &str) -> &'static str {
    match architecture {
        "stateful" => "#d62728",
        "stateless-redis" => "#1f77b4",
        "stateless-jwt" => "#2ca02c",
        _ => "#7f7f7f",
    }
}

/// A tick's text, with as many decimals as the step needs.
fn label(value: f64, step: f64) -> String {
    if step >= 1.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
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
}

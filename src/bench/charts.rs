//! PNG charts drawn with plotters: latency distributions beside the floor's,
//! one timeline per failover kind (when each server changed role, when
//! writes resumed), and the scale part's agreement times.
//!
//! Text needs a font: plotters' `ab_glyph` feature renders a TrueType file
//! that the bench reads at run time (`--font FILE`, else the first of
//! [`FONT_CANDIDATES`]; Debian's `fonts-dejavu-core` provides the first). No
//! system font library is linked. Without a font, no chart is drawn and the
//! report says why.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;

use super::error::BenchError;
use super::stats::Summary;
use super::timeline::Timeline;
use super::{Report, Settings};

/// Font files tried in order when `--font` is not given.
pub const FONT_CANDIDATES: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

const FONT: &str = "sans-serif";

static REGISTERED: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Registers the chart font once per process; the file used, or why none.
fn register_font(chosen: Option<&Path>) -> Result<PathBuf, String> {
    REGISTERED
        .get_or_init(|| {
            let candidates: Vec<PathBuf> = match chosen {
                Some(path) => vec![path.to_path_buf()],
                None => FONT_CANDIDATES.iter().map(PathBuf::from).collect(),
            };
            let path = candidates.iter().find(|p| p.is_file()).ok_or_else(|| {
                format!(
                    "no font file found (tried {}); install fonts-dejavu-core or pass --font FILE.ttf",
                    candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                )
            })?;
            let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
            // plotters keeps fonts for the life of the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font(FONT, FontStyle::Normal, bytes)
                .map_err(|_| format!("{} is not a font plotters can read", path.display()))?;
            Ok(path.clone())
        })
        .clone()
}

/// `10/50 ms, election 10 ms` → `10-50-ms-election-10-ms`, for file names.
fn slug(label: &str) -> String {
    let words: Vec<String> = label
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    words.join("-")
}

fn chart_error(e: impl std::fmt::Display) -> BenchError {
    BenchError::Chart(e.to_string())
}

/// Draws every chart the report has data for; returns the files written.
pub fn draw_all(report: &Report, settings: &Settings) -> Result<Vec<PathBuf>, BenchError> {
    register_font(settings.font.as_deref()).map_err(BenchError::Chart)?;
    let out = &settings.out;
    let mut files = Vec::new();
    if let Some(series) = latency_series(report, false) {
        let path = out.join("latency-1-client.png");
        latency_chart(&path, "Latency, 1 sequential client (CDF)", &series)?;
        files.push(path);
    }
    if let Some(series) = latency_series(report, true) {
        let path = out.join("latency-many-clients.png");
        latency_chart(&path, "Latency, concurrent clients (CDF)", &series)?;
        files.push(path);
    }
    if let Some(failover) = &report.failover {
        for timing in &failover.timings {
            for (n, timeline) in timing.timelines.iter().enumerate() {
                let kind = if n == 0 { "kill" } else { "stop" };
                let label = slug(&timing.label);
                let path = out.join(format!("failover-timeline-{label}-{kind}.png"));
                timeline_chart(&path, timeline)?;
                files.push(path);
            }
        }
    }
    if let Some(scale) = &report.scale {
        let points: Vec<(f64, Vec<f64>)> =
            scale.sizes.iter().map(|s| (s.servers as f64, s.agreed_ms.clone())).collect();
        if points.iter().any(|(_, v)| !v.is_empty()) {
            let path = out.join("scale-agreement.png");
            scale_chart(&path, &points)?;
            files.push(path);
        }
    }
    Ok(files)
}

/// The distributions to draw: the floor first.
fn latency_series(report: &Report, many: bool) -> Option<Vec<(String, Summary)>> {
    let mut series = Vec::new();
    // The floor measured beside the requests, else the run's first one.
    let floor = report.requests.as_ref().map(|r| &r.memory.floor).or(report.floor.as_ref());
    if let Some(f) = floor {
        let s = if many { &f.many_clients } else { &f.one_client };
        series.push(("floor".to_string(), s.clone()));
    }
    if let Some(r) = &report.requests {
        let pick = |one: &Summary, all: &Summary| if many { all.clone() } else { one.clone() };
        series.push(("read".into(), pick(&r.memory.reads_one, &r.memory.reads_many)));
        series.push(("write".into(), pick(&r.memory.writes_one, &r.memory.writes_many)));
        series.push(("durable write".into(), pick(&r.durable.writes_one, &r.durable.writes_many)));
    }
    (series.len() > 1).then_some(series)
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(0, 0, 0),
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
];

/// A CDF per series, latency on a log axis.
fn latency_chart(path: &Path, title: &str, series: &[(String, Summary)]) -> Result<(), BenchError> {
    let values = series.iter().flat_map(|(_, s)| s.percentiles_us.iter().copied()).filter(|v| *v > 0.0);
    let (lo, hi) = values.fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if hi > 0.0 { (lo * 0.8, hi * 1.25) } else { (1.0, 10.0) };
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(chart_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d((lo..hi).log_scale(), 0.0..100.0)
        .map_err(chart_error)?;
    chart
        .configure_mesh()
        .x_desc("latency, µs (log scale)")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .y_desc("percentile")
        .label_style((FONT, 14))
        .draw()
        .map_err(chart_error)?;
    for (n, (name, summary)) in series.iter().enumerate() {
        let color = PALETTE[n % PALETTE.len()];
        let points = summary.percentiles_us.iter().enumerate().map(|(p, v)| (v.max(lo), p as f64));
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(chart_error)?
            .label(format!("{name} (p50 {})", super::stats::fmt_us(summary.p50_us)))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(chart_error)?;
    root.present().map_err(chart_error)
}

/// The colour of a role on the timeline.
fn role_color(role: &str) -> RGBColor {
    match role {
        "leader" => RGBColor(44, 160, 44),
        "follower" => RGBColor(31, 119, 180),
        "candidate" => RGBColor(255, 127, 14),
        _ => RGBColor(190, 190, 190),
    }
}

/// One row per server, coloured by role over time; markers where a server
/// noticed the failure, and lines for the kill and the first writes.
fn timeline_chart(path: &Path, timeline: &Timeline) -> Result<(), BenchError> {
    let mut servers: Vec<u64> = timeline.events.iter().map(|e| e.server).collect();
    servers.sort_unstable();
    servers.dedup();
    let end = timeline
        .events
        .iter()
        .map(|e| e.at_ms)
        .chain([timeline.first_write_ms, timeline.newcomer_write_ms.unwrap_or(0.0)])
        .fold(0.0f64, f64::max)
        * 1.08
        + 1.0;
    let start = -0.06 * end;
    let rows = servers.len() as f64;
    let root = BitMapBackend::new(path, (1100, 150 + 70 * servers.len() as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(chart_error)?;
    let labels = servers.clone();
    let y_label = move |y: &f64| {
        if (y - y.round()).abs() > 0.05 {
            return String::new();
        }
        labels.get((y.round() as usize).wrapping_sub(1)).map(|id| format!("server {id}")).unwrap_or_default()
    };
    let mut caption = format!("{}: first write after {:.1} ms", timeline.title, timeline.first_write_ms);
    if let Some(at) = timeline.newcomer_write_ms {
        caption.push_str(&format!("; restarted, its first write as leader at {at:.0} ms"));
    }
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, (FONT, 18))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(start..end, 0.4..rows + 0.6)
        .map_err(chart_error)?;
    chart
        .configure_mesh()
        .x_desc(
            "ms after the signal. Green: leader, blue: follower, orange: candidate, grey: down; \
             ▲ heartbeat failed; red line: signal, green: first write, purple: newcomer's first write",
        )
        .y_labels(servers.len() * 4 + 1)
        .y_label_formatter(&y_label)
        .disable_y_mesh()
        .label_style((FONT, 14))
        .draw()
        .map_err(chart_error)?;
    for (row, id) in servers.iter().enumerate() {
        let y = row as f64 + 1.0;
        let mut role = "down".to_string();
        let mut since = start;
        for event in timeline.events.iter().filter(|e| e.server == *id) {
            let at = event.at_ms.max(start);
            match event.what.as_str() {
                "leader" | "follower" | "candidate" | "down" | "started" => {
                    draw_segment(&mut chart, since, at, y, &role)?;
                    role = if event.what == "started" { "candidate".into() } else { event.what.clone() };
                    since = at;
                }
                "detected" => {
                    let marker = TriangleMarker::new((at, y + 0.3), 6, RGBColor(200, 0, 0).filled());
                    chart.draw_series(std::iter::once(marker)).map_err(chart_error)?;
                }
                _ => {} // `left`: the grey that follows shows it
            }
        }
        draw_segment(&mut chart, since, end, y, &role)?;
    }
    let mut lines = vec![(0.0, RGBColor(200, 0, 0)), (timeline.first_write_ms, RGBColor(0, 120, 0))];
    if let Some(at) = timeline.newcomer_write_ms {
        lines.push((at, RGBColor(120, 0, 180)));
    }
    for (at, color) in lines {
        chart
            .draw_series(LineSeries::new([(at, 0.4), (at, rows + 0.6)], color.stroke_width(2)))
            .map_err(chart_error)?;
    }
    root.present().map_err(chart_error)
}

type Chart<'a> = ChartContext<
    'a,
    BitMapBackend<'a>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

fn draw_segment(chart: &mut Chart<'_>, from: f64, to: f64, y: f64, role: &str) -> Result<(), BenchError> {
    if to <= from {
        return Ok(());
    }
    let bar = Rectangle::new([(from, y - 0.25), (to, y + 0.25)], role_color(role).filled());
    chart.draw_series(std::iter::once(bar)).map_err(chart_error)?;
    Ok(())
}

/// Kill → agreement time per group size, every trial a point.
fn scale_chart(path: &Path, points: &[(f64, Vec<f64>)]) -> Result<(), BenchError> {
    let max_x = points.iter().map(|(x, _)| *x).fold(1.0, f64::max) * 1.1;
    let max_y = points.iter().flat_map(|(_, v)| v.iter().copied()).fold(1.0, f64::max) * 1.15;
    let root = BitMapBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(chart_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Leader killed: time until every server names the new one", (FONT, 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_x, 0.0..max_y)
        .map_err(chart_error)?;
    chart
        .configure_mesh()
        .x_desc("servers in the group")
        .y_desc("ms after the kill")
        .label_style((FONT, 14))
        .draw()
        .map_err(chart_error)?;
    let dots = points.iter().flat_map(|(x, ys)| ys.iter().map(move |y| Circle::new((*x, *y), 4, PALETTE[1].filled())));
    chart.draw_series(dots).map_err(chart_error)?;
    root.present().map_err(chart_error)
}

#[cfg(test)]
mod tests {
    use super::slug;

    #[test]
    fn timing_labels_become_file_names() {
        assert_eq!(slug("default"), "default");
        assert_eq!(slug("10/50 ms, election 10 ms"), "10-50-ms-election-10-ms");
    }
}

//! An SVG chart of load reports: throughput (left) and p50/p99 latency (right) against
//! concurrency, one line per mode. Plain SVG, no dependencies: it opens in any browser and
//! renders on a forge's file view.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write;

/// The fields of a report line the chart needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Point {
    /// `healthz`, `valid` or `wrong`.
    pub mode: String,
    /// Connections.
    pub concurrency: usize,
    /// Requests per second.
    pub rps: f64,
    /// Median latency.
    pub p50_ms: f64,
    /// 99th percentile latency.
    pub p99_ms: f64,
}

const W: f64 = 420.0;
const H: f64 = 300.0;
const PAD: f64 = 50.0;

fn colour(mode: &str) -> &'static str {
    match mode {
        "healthz" => "#888888",
        "valid" => "#1f77b4",
        _ => "#d62728",
    }
}

/// A panel at horizontal offset `x0`: `series` maps a line name to (concurrency, value)
/// points; concurrency is on a log scale.
fn panel(
    svg: &mut String,
    x0: f64,
    title: &str,
    unit: &str,
    series: &BTreeMap<String, Vec<(usize, f64)>>,
) {
    let max_y = series
        .values()
        .flatten()
        .map(|p| p.1)
        .fold(0.0_f64, f64::max)
        .max(1e-9)
        * 1.1;
    let concurrencies: Vec<usize> = {
        let mut c: Vec<usize> = series.values().flatten().map(|p| p.0).collect();
        c.sort_unstable();
        c.dedup();
        c
    };
    let log = |c: usize| (c.max(1) as f64).log2();
    let (lo, hi) = (
        concurrencies.first().map_or(0.0, |&c| log(c)),
        concurrencies.last().map_or(1.0, |&c| log(c)),
    );
    let span = (hi - lo).max(1.0);
    let x = |c: usize| x0 + PAD + (log(c) - lo) / span * (W - 2.0 * PAD);
    let y = |v: f64| H - PAD - v / max_y * (H - 2.0 * PAD);
    let _ = write!(
        svg,
        r#"<text x="{}" y="20" font-size="14" text-anchor="middle">{title}</text>"#,
        x0 + W / 2.0
    );
    let _ = write!(
        svg,
        r#"<line x1="{0}" y1="{1}" x2="{2}" y2="{1}" stroke="black"/><line x1="{0}" y1="{3}" x2="{0}" y2="{1}" stroke="black"/>"#,
        x0 + PAD,
        H - PAD,
        x0 + W - PAD,
        PAD
    );
    for &c in &concurrencies {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" font-size="10" text-anchor="middle">{c}</text>"#,
            x(c),
            H - PAD + 14.0
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" font-size="10" text-anchor="middle">concurrency</text>"#,
        x0 + W / 2.0,
        H - 12.0
    );
    for i in 0..=4 {
        let v = max_y * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" font-size="10" text-anchor="end">{v:.0}{unit}</text>"#,
            x0 + PAD - 4.0,
            y(v) + 3.0
        );
    }
    for (k, (name, points)) in series.iter().enumerate() {
        let mut pts = points.clone();
        pts.sort_by_key(|p| p.0);
        let path: Vec<String> = pts
            .iter()
            .map(|&(c, v)| format!("{:.1},{:.1}", x(c), y(v)))
            .collect();
        let mode = name.split(' ').next().unwrap_or(name);
        let dash = if name.ends_with("p99") {
            r#" stroke-dasharray="4 3""#
        } else {
            ""
        };
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{}" stroke-width="2"{dash} points="{}"/>"#,
            colour(mode),
            path.join(" ")
        );
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" font-size="11" fill="{}">{name}</text>"#,
            x0 + PAD + 8.0,
            PAD + 14.0 * (k as f64 + 1.0),
            colour(mode)
        );
    }
}

/// The median of `values` (the mean of the middle two for an even count); `None` if empty.
pub fn median(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// One point per mode and concurrency: the medians of repeated runs.
fn medians(points: &[Point]) -> Vec<Point> {
    let mut groups: BTreeMap<(String, usize), Vec<&Point>> = BTreeMap::new();
    for p in points {
        groups
            .entry((p.mode.clone(), p.concurrency))
            .or_default()
            .push(p);
    }
    groups
        .into_iter()
        .map(|((mode, concurrency), runs)| Point {
            mode,
            concurrency,
            rps: median(runs.iter().map(|p| p.rps)).unwrap_or(0.0),
            p50_ms: median(runs.iter().map(|p| p.p50_ms)).unwrap_or(0.0),
            p99_ms: median(runs.iter().map(|p| p.p99_ms)).unwrap_or(0.0),
        })
        .collect()
}

/// The chart of `points` (repeated runs drawn as their medians): throughput and latency
/// against concurrency.
pub fn svg(points: &[Point]) -> String {
    let points = medians(points);
    let mut throughput: BTreeMap<String, Vec<(usize, f64)>> = BTreeMap::new();
    let mut latency: BTreeMap<String, Vec<(usize, f64)>> = BTreeMap::new();
    for p in &points {
        throughput
            .entry(p.mode.clone())
            .or_default()
            .push((p.concurrency, p.rps));
        if p.mode != "healthz" {
            latency
                .entry(format!("{} p50", p.mode))
                .or_default()
                .push((p.concurrency, p.p50_ms));
            latency
                .entry(format!("{} p99", p.mode))
                .or_default()
                .push((p.concurrency, p.p99_ms));
        }
    }
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{H}" font-family="sans-serif">"#,
        2.0 * W
    );
    panel(&mut svg, 0.0, "requests per second", "", &throughput);
    panel(&mut svg, W, "latency (ms)", "", &latency);
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn draws_every_series() {
        let points: Vec<Point> = ["healthz", "valid", "wrong"]
            .iter()
            .flat_map(|m| {
                [1, 8, 64].map(|c| Point {
                    mode: (*m).into(),
                    concurrency: c,
                    rps: 1000.0 * c as f64,
                    p50_ms: 1.0,
                    p99_ms: 3.0,
                })
            })
            .collect();
        let svg = svg(&points);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 3 + 4);
        assert!(svg.contains("valid p99"));
    }

    #[test]
    fn medians_of_repeated_runs() {
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), Some(2.0));
        assert_eq!(median([4.0, 1.0, 2.0, 3.0].into_iter()), Some(2.5));
        assert_eq!(median(std::iter::empty()), None);
        let run = |rps| Point {
            mode: "valid".into(),
            concurrency: 64,
            rps,
            p50_ms: rps / 1000.0,
            p99_ms: 1.0,
        };
        let one = medians(&[run(10.0), run(30.0), run(20.0)]);
        assert_eq!(one.len(), 1);
        assert_eq!((one[0].rps, one[0].p50_ms), (20.0, 0.02));
    }
}

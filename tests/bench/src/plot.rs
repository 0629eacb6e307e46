//! A hand-written SVG: latency (log scale) against achieved throughput for each open-loop
//! sweep, p50 dashed and p99 solid, the 10 ms target line and the 50%-of-max point marked.

use std::fmt::Write as _;

use crate::report::Report;

const W: f64 = 960.0;
const H: f64 = 560.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 240.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 70.0;
const COLORS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn svg(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let title = format!(
        "create message (1,000 chats): latency vs throughput, open loop — {}, {}",
        report.meta.date.split('T').next().unwrap_or(""),
        report.meta.commit.split(' ').next().unwrap_or("")
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="24" font-size="15" font-weight="bold">{}</text>"#,
        LEFT,
        esc(&title)
    );
    let points: Vec<(f64, f64)> = report
        .sweeps
        .iter()
        .flat_map(|s| s.points.iter())
        .flat_map(|p| [(p.load.rps, p.load.p50_ms), (p.load.rps, p.load.p99_ms)])
        .collect();
    if points.is_empty() {
        let _ = writeln!(
            out,
            r#"<text x="{LEFT}" y="{}">no sweep in this run</text></svg>"#,
            H / 2.0
        );
        return out;
    }
    let x_step = nice_step(points.iter().map(|p| p.0).fold(1.0, f64::max) * 1.05 / 5.0);
    let x_max = (points.iter().map(|p| p.0).fold(1.0, f64::max) * 1.05 / x_step).ceil() * x_step;
    let y_lo = points
        .iter()
        .map(|p| p.1.max(0.01))
        .fold(f64::INFINITY, f64::min)
        .min(10.0);
    let y_hi = points.iter().map(|p| p.1).fold(10.0, f64::max);
    let (lo, hi) = (
        y_lo.log10().floor(),
        y_hi.log10().ceil().max(y_lo.log10().floor() + 1.0),
    );
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let sx = |x: f64| LEFT + x / x_max * pw;
    let sy = |y: f64| TOP + ph - (y.max(0.01).log10() - lo) / (hi - lo) * ph;

    // Axes and grid.
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##
    );
    let mut decade = lo;
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let v = 10f64.powf(decade) * m;
            if v.log10() > hi + 1e-9 {
                break;
            }
            let y = sy(v);
            let _ = writeln!(
                out,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/>"##,
                LEFT + pw
            );
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                LEFT - 6.0,
                y + 4.0,
                trim_num(v)
            );
        }
        decade += 1.0;
    }
    let ticks = (x_max / x_step).round() as usize;
    for i in 0..=ticks {
        let v = x_step * i as f64;
        let x = sx(v);
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#eee"/>"##,
            TOP + ph
        );
        let _ = writeln!(
            out,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{:.0}</text>"#,
            TOP + ph + 18.0,
            v
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">achieved throughput (requests/s)</text>"#,
        LEFT + pw / 2.0,
        H - 22.0
    );
    let _ = writeln!(
        out,
        r#"<text transform="translate(22,{:.1}) rotate(-90)" text-anchor="middle">latency from intended send time (ms, log scale)</text>"#,
        TOP + ph / 2.0
    );
    // Target line.
    let ty = sy(10.0);
    let _ = writeln!(
        out,
        r##"<line x1="{LEFT}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}" stroke="#e377c2" stroke-width="1.5" stroke-dasharray="2,3"/>"##,
        LEFT + pw
    );
    let _ = writeln!(
        out,
        r##"<text x="{:.1}" y="{:.1}" fill="#e377c2" text-anchor="end">target: p99 ≤ 10 ms at 50% of max</text>"##,
        LEFT + pw - 6.0,
        ty + 15.0
    );

    let mut legend_y = TOP + 10.0;
    for (i, sweep) in report.sweeps.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        for (pick, dash, label) in [(0usize, "6,4", "p50"), (1usize, "", "p99")] {
            let pts: Vec<String> = sweep
                .points
                .iter()
                .map(|p| {
                    let y = if pick == 0 {
                        p.load.p50_ms
                    } else {
                        p.load.p99_ms
                    };
                    format!("{:.1},{:.1}", sx(p.load.rps), sy(y))
                })
                .collect();
            let _ = writeln!(
                out,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}"/>"#,
                pts.join(" ")
            );
            for p in &sweep.points {
                let y = if pick == 0 {
                    p.load.p50_ms
                } else {
                    p.load.p99_ms
                };
                let r = if (p.pct - 50.0).abs() < 1e-6 {
                    5.5
                } else {
                    3.0
                };
                let _ = writeln!(
                    out,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="{r}" fill="{color}"><title>{} {:.0}% of max: {:.0}/s, {} {:.2} ms</title></circle>"#,
                    sx(p.load.rps),
                    sy(y),
                    esc(&sweep.system),
                    p.pct,
                    p.load.rps,
                    label,
                    y
                );
                if pick == 1 {
                    let _ = writeln!(
                        out,
                        r#"<text x="{:.1}" y="{:.1}" font-size="10" fill="{color}">{:.0}%</text>"#,
                        sx(p.load.rps) + 5.0,
                        sy(y) - 6.0,
                        p.pct
                    );
                }
            }
            let lx = LEFT + pw + 16.0;
            let _ = writeln!(
                out,
                r#"<line x1="{lx}" y1="{legend_y:.1}" x2="{:.1}" y2="{legend_y:.1}" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}"/>"#,
                lx + 28.0
            );
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}">{} {label}</text>"#,
                lx + 34.0,
                legend_y + 4.0,
                esc(&sweep.system)
            );
            legend_y += 20.0;
        }
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" fill="{color}">max {:.0}/s (closed c={})</text>"#,
            LEFT + pw + 16.0,
            legend_y,
            sweep.max_rps,
            report.meta.concurrency
        );
        legend_y += 26.0;
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" font-size="11">big dot: 50% of max</text>"#,
        LEFT + pw + 16.0,
        legend_y
    );
    out.push_str("</svg>\n");
    out
}

/// 1, 2 or 5 × a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let base = 10f64.powf(raw.max(1e-9).log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * base)
        .find(|v| *v >= raw)
        .unwrap_or(10.0 * base)
}

fn trim_num(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').to_string()
    }
}

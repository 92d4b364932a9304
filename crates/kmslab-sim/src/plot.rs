//! An SVG plot of a simulation: each host's count over the days, with the 5 and 25
//! thresholds drawn as lines, above the machines in each license state (and each MAK's
//! remaining activations, dashed, when the scenario has MAKs). Every line is
//! labelled at its right end, so no legend is needed; a host's outages are shaded bands
//! where its line is broken off. Output is deterministic text.

use std::fmt::Write;

use crate::run::SimOutput;

const W: f64 = 960.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 170.0;
const TOP1: f64 = 50.0;
const H1: f64 = 210.0;
const TOP2: f64 = 320.0;
const H2: f64 = 230.0;
const HEIGHT: f64 = 600.0;

/// A line of the state panel: label, colour, and the value it reads from a day.
type Series = (&'static str, &'static str, fn(&crate::run::DayRow) -> u64);

const HOST_COLOURS: [&str; 6] = ["#1f77b4", "#9467bd", "#8c564b", "#17becf", "#e377c2", "#7f7f7f"];

/// Renders the plot.
pub fn svg(out: &SimOutput, title: &str) -> String {
    let days = out.timeline.len().max(1) as f64;
    let plot_w = W - LEFT - RIGHT;
    let x = |day: f64| LEFT + plot_w * day / days;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{HEIGHT}" viewBox="0 0 {W} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    let _ = writeln!(s, r#"<text x="{LEFT}" y="24" font-size="16" font-weight="bold">{}</text>"#, escape(title));

    // Panel 1: host counts (Windows group) with thresholds.
    let max_count = out.timeline.iter().flat_map(|r| r.hosts.iter().map(|h| h.counts.first().copied().unwrap_or(0))).max().unwrap_or(0);
    let y1_max = nice_ceiling(f64::from(max_count.max(30)) * 1.05);
    let y1 = |v: f64| TOP1 + H1 - H1 * v / y1_max;
    panel(&mut s, "KMS host count (Windows, distinct machines in 30 days)", TOP1, H1, days, &x);
    for (v, label) in [(25.0, "25: client editions activate"), (5.0, "5: servers and Office activate")] {
        let _ = writeln!(
            s,
            r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#d62728" stroke-dasharray="6,4" stroke-width="1"/>"##,
            LEFT,
            y1(v),
            LEFT + plot_w,
            y1(v)
        );
        let _ = writeln!(s, r##"<text x="{:.1}" y="{:.1}" fill="#d62728">{label}</text>"##, LEFT + 4.0, y1(v) - 4.0);
    }
    axis_labels(&mut s, y1_max, TOP1, H1);
    let host_names: Vec<String> = out.timeline.first().map(|r| r.hosts.iter().map(|h| h.name.clone()).collect()).unwrap_or_default();
    let mut label_ys: Vec<f64> = Vec::new();
    for (hi, name) in host_names.iter().enumerate() {
        let colour = HOST_COLOURS[hi % HOST_COLOURS.len()];
        // A host that is down has no count to show: its outages are shaded bands labelled
        // with its name, and its line stops at the band and starts again after it.
        for (first, last) in down_runs(out, hi) {
            let (x0, x1) = (x(f64::from(first) - 1.0), x(f64::from(last)));
            let _ = writeln!(
                s,
                r#"<rect x="{x0:.1}" y="{TOP1}" width="{:.1}" height="{H1}" fill="{colour}" fill-opacity="0.12"><title>{} down, days {first}-{last}</title></rect>"#,
                x1 - x0,
                escape(name)
            );
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" fill="{colour}" font-size="10">{} down</text>"#,
                x0 + 3.0,
                TOP1 + 12.0 + 12.0 * hi as f64,
                escape(name)
            );
        }
        let points: Vec<(f64, f64, bool)> = out
            .timeline
            .iter()
            .map(|r| (f64::from(r.day), f64::from(r.hosts[hi].counts.first().copied().unwrap_or(0)), r.hosts[hi].up))
            .collect();
        for piece in points.split(|p| !p.2).filter(|piece| !piece.is_empty()) {
            let piece: Vec<(f64, f64)> = piece.iter().map(|p| (p.0, p.1)).collect();
            polyline(&mut s, &piece, colour, &x, &y1);
        }
        let last = points.last().map_or(0.0, |p| p.1);
        let ly = spread_label(&mut label_ys, y1(last));
        let _ =
            writeln!(s, r#"<text x="{:.1}" y="{:.1}" fill="{colour}">{} ({})</text>"#, LEFT + plot_w + 6.0, ly + 4.0, escape(name), last);
    }

    // Panel 2: machines by license state.
    let max_left = out.timeline.iter().flat_map(|r| r.maks.iter().map(|m| u64::from(m.remaining))).max().unwrap_or(0);
    let clients = out.summary.clients.max(max_left).max(1) as f64;
    let y2_max = nice_ceiling(clients * 1.05);
    let y2 = |v: f64| TOP2 + H2 - H2 * v / y2_max;
    panel(&mut s, "Client machines by license state", TOP2, H2, days, &x);
    axis_labels(&mut s, y2_max, TOP2, H2);
    let series: [Series; 5] = [
        ("Licensed", "#2ca02c", |r| r.licensed),
        ("Initial grace", "#1f77b4", |r| r.initial_grace),
        ("Additional grace", "#ff7f0e", |r| r.additional_grace),
        ("Notification", "#d62728", |r| r.notification),
        ("Unlicensed", "#7f7f7f", |r| r.unlicensed),
    ];
    let mut label_ys: Vec<f64> = Vec::new();
    for (name, colour, get) in series {
        if out.timeline.iter().all(|r| get(r) == 0) {
            continue;
        }
        let points: Vec<(f64, f64)> = out.timeline.iter().map(|r| (f64::from(r.day), get(r) as f64)).collect();
        polyline(&mut s, &points, colour, &x, &y2);
        let last = points.last().map_or(0.0, |p| p.1);
        let ly = spread_label(&mut label_ys, y2(last));
        let _ = writeln!(s, r#"<text x="{:.1}" y="{:.1}" fill="{colour}">{name} ({last})</text>"#, LEFT + plot_w + 6.0, ly + 4.0);
    }
    // Each MAK's remaining activations: a rollout that runs out shows as this line reaching
    // zero while machines stay in grace, and the Activation Center's additions as steps up.
    let mak_names: Vec<String> = out.timeline.first().map(|r| r.maks.iter().map(|m| m.name.clone()).collect()).unwrap_or_default();
    for (mi, name) in mak_names.iter().enumerate() {
        let colour = HOST_COLOURS[(mi + 3) % HOST_COLOURS.len()];
        let points: Vec<(f64, f64)> = out.timeline.iter().map(|r| (f64::from(r.day), f64::from(r.maks[mi].remaining))).collect();
        let mut p = String::new();
        for (d, v) in &points {
            let _ = write!(p, "{:.1},{:.1} ", x(*d), y2(*v));
        }
        let _ =
            writeln!(s, r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2" stroke-dasharray="5,3"/>"#, p.trim_end());
        let last = points.last().map_or(0.0, |p| p.1);
        let ly = spread_label(&mut label_ys, y2(last));
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" fill="{colour}">MAK {} left ({last})</text>"#,
            LEFT + plot_w + 6.0,
            ly + 4.0,
            escape(name)
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#333">simulated day</text>"##,
        LEFT + plot_w / 2.0,
        HEIGHT - 8.0
    );
    s.push_str("</svg>\n");
    s
}

/// The runs of consecutive days (first, last) on which host `hi` was down.
fn down_runs(out: &SimOutput, hi: usize) -> Vec<(u32, u32)> {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for row in out.timeline.iter().filter(|r| !r.hosts[hi].up) {
        match runs.last_mut() {
            Some(run) if run.1 + 1 == row.day => run.1 = row.day,
            _ => runs.push((row.day, row.day)),
        }
    }
    runs
}

fn panel(s: &mut String, title: &str, top: f64, h: f64, days: f64, x: &dyn Fn(f64) -> f64) {
    let plot_w = W - LEFT - RIGHT;
    let _ = writeln!(s, r##"<text x="{LEFT}" y="{:.1}" font-weight="bold" fill="#333">{}</text>"##, top - 8.0, escape(title));
    let _ = writeln!(s, r##"<rect x="{LEFT}" y="{top}" width="{plot_w:.1}" height="{h}" fill="none" stroke="#999"/>"##);
    let step = if days > 200.0 {
        30.0
    } else if days > 60.0 {
        10.0
    } else {
        5.0
    };
    let mut d = 0.0;
    while d <= days {
        let xx = x(d);
        let _ = writeln!(s, r##"<line x1="{xx:.1}" y1="{:.1}" x2="{xx:.1}" y2="{:.1}" stroke="#999"/>"##, top + h, top + h + 4.0);
        let _ = writeln!(s, r##"<text x="{xx:.1}" y="{:.1}" text-anchor="middle" fill="#555" font-size="10">{d}</text>"##, top + h + 16.0);
        d += step;
    }
}

fn axis_labels(s: &mut String, max: f64, top: f64, h: f64) {
    for i in 0..=4 {
        let v = max * f64::from(i) / 4.0;
        let y = top + h - h * f64::from(i) / 4.0;
        let _ =
            writeln!(s, r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#555" font-size="10">{:.0}</text>"##, LEFT - 6.0, y + 3.0, v);
    }
}

fn polyline(s: &mut String, points: &[(f64, f64)], colour: &str, x: &dyn Fn(f64) -> f64, y: &dyn Fn(f64) -> f64) {
    let mut p = String::new();
    for (d, v) in points {
        let _ = write!(p, "{:.1},{:.1} ", x(*d), y(*v));
    }
    let _ = writeln!(s, r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#, p.trim_end());
}

/// Moves a label down until it is at least 14 px from the labels already placed.
fn spread_label(placed: &mut Vec<f64>, mut y: f64) -> f64 {
    while placed.iter().any(|p| (p - y).abs() < 14.0) {
        y += 14.0;
    }
    placed.push(y);
    y
}

/// The smallest round number (1, 1.2, 1.6, 2, 2.4, 3, 4, 5, 6 or 8 times a power of ten) that
/// is at least `v`; each splits into four round axis intervals.
fn nice_ceiling(v: f64) -> f64 {
    let v = v.max(1.0);
    let step = 10f64.powf(v.log10().floor());
    [1.0, 1.2, 1.6, 2.0, 2.4, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0].iter().map(|m| m * step).find(|c| *c >= v).unwrap_or(10.0 * step)
}

fn escape(t: &str) -> String {
    t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

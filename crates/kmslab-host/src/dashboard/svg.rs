//! SVG pictures drawn on the server: a count bar with the 5 and 25 thresholds, a column
//! chart of requests over time and horizontal bars for counts by category.
//!
//! Plain strings rather than a drawing crate: three small shapes do not need one, and
//! every text that comes from data goes through [`esc`].

use std::fmt::Write as _;

/// Escapes text for SVG/HTML content and attributes.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A horizontal bar for a group's current count, with a line per threshold.
pub fn count_bar(count: u32, thresholds: &[u32], cap: u32) -> String {
    let (w, h, left, right) = (320.0, 56.0, 8.0, 8.0);
    let top_threshold = thresholds.iter().copied().max().unwrap_or(25);
    let scale_max = f64::from((top_threshold * 2).max(cap).max(count + count / 5).max(10));
    let x = |v: f64| left + (w - left - right) * (v / scale_max).min(1.0);
    let colour = if thresholds.iter().all(|t| count >= *t) {
        "#2e7d32"
    } else if thresholds.iter().any(|t| count >= *t) {
        "#f9a825"
    } else {
        "#c62828"
    };
    let mut s = format!(
        "<svg class=\"bar\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"count {count}\">"
    );
    let _ = write!(s, "<rect x=\"{left}\" y=\"14\" width=\"{}\" height=\"22\" fill=\"#eceff1\" rx=\"3\"/>", w - left - right);
    let _ = write!(s, "<rect x=\"{left}\" y=\"14\" width=\"{:.1}\" height=\"22\" fill=\"{colour}\" rx=\"3\"/>", x(f64::from(count)) - left);
    for t in thresholds {
        let tx = x(f64::from(*t));
        let _ = write!(
            s,
            "<line x1=\"{tx:.1}\" y1=\"8\" x2=\"{tx:.1}\" y2=\"42\" stroke=\"#263238\" stroke-width=\"2\" stroke-dasharray=\"4 2\"/><text x=\"{tx:.1}\" y=\"54\" font-size=\"11\" text-anchor=\"middle\" fill=\"#263238\">{t}</text>"
        );
    }
    let _ = write!(s, "<text x=\"{left}\" y=\"10\" font-size=\"11\" fill=\"#263238\">count {count} (scale 0–{scale_max})</text></svg>");
    s
}

/// A column chart: one column per (label, total, failed); failed stacked in red.
pub fn columns(points: &[(String, u64, u64)], label_every: usize) -> String {
    let (w, h, left, bottom, top) = (640.0, 190.0, 40.0, 34.0, 10.0);
    let max = points.iter().map(|p| p.1).max().unwrap_or(0).max(1) as f64;
    let n = points.len().max(1) as f64;
    let step = (w - left - 6.0) / n;
    let y = |v: f64| top + (h - top - bottom) * (1.0 - v / max);
    let mut s = format!(
        "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\">"
    );
    let _ = write!(
        s,
        "<line x1=\"{left}\" y1=\"{b}\" x2=\"{w}\" y2=\"{b}\" stroke=\"#90a4ae\"/><text x=\"{lx}\" y=\"{ty}\" font-size=\"11\" text-anchor=\"end\">{max}</text><text x=\"{lx}\" y=\"{b}\" font-size=\"11\" text-anchor=\"end\">0</text>",
        b = h - bottom,
        lx = left - 4.0,
        ty = top + 8.0,
    );
    for (i, (label, total, failed)) in points.iter().enumerate() {
        let x0 = left + step * i as f64 + 1.0;
        let bw = (step - 2.0).max(1.0);
        if *total > 0 {
            let yt = y(*total as f64);
            let _ = write!(
                s,
                "<rect x=\"{x0:.1}\" y=\"{yt:.1}\" width=\"{bw:.1}\" height=\"{:.1}\" fill=\"#1565c0\"><title>{}: {total} requests, {failed} failed</title></rect>",
                h - bottom - yt,
                esc(label)
            );
            if *failed > 0 {
                let yf = y(*failed as f64);
                let _ =
                    write!(s, "<rect x=\"{x0:.1}\" y=\"{yf:.1}\" width=\"{bw:.1}\" height=\"{:.1}\" fill=\"#c62828\"/>", h - bottom - yf);
            }
        }
        if label_every > 0 && i % label_every == 0 {
            let _ = write!(s, "<text x=\"{x0:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"#455a64\">{}</text>", h - bottom + 14.0, esc(label));
        }
    }
    s.push_str("</svg>");
    s
}

/// Horizontal bars: one row per (label, value).
pub fn hbars(rows: &[(String, u64)]) -> String {
    let (w, row_h, label_w) = (560.0, 22.0, 250.0);
    let h = row_h * rows.len().max(1) as f64 + 4.0;
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1) as f64;
    let mut s = format!(
        "<svg class=\"hbars\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\">"
    );
    for (i, (label, v)) in rows.iter().enumerate() {
        let y0 = 2.0 + row_h * i as f64;
        let bw = (w - label_w - 60.0) * (*v as f64 / max);
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"end\">{}</text><rect x=\"{label_w}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"{:.1}\" fill=\"#00838f\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\">{v}</text>",
            label_w - 6.0,
            y0 + 15.0,
            esc(label),
            y0 + 3.0,
            row_h - 6.0,
            label_w + bw + 4.0,
            y0 + 15.0
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_are_well_formed_and_escape_labels() {
        let bar = count_bar(7, &[5, 25], 50);
        assert!(bar.starts_with("<svg") && bar.ends_with("</svg>"));
        assert_eq!(bar.matches("<line").count(), 2);
        let chart = columns(&[("<a>".into(), 3, 1), ("b".into(), 0, 0)], 1);
        assert!(chart.contains("&lt;a&gt;") && !chart.contains("<a>"));
        assert_eq!(hbars(&[("x".into(), 1)]).matches("<rect").count(), 1);
    }
}

//! Line charts as inline SVG, drawn here (no script, no fonts or images to fetch): values over
//! time, one or two series, points that failed drawn as red squares (a shape, not only a
//! colour), an optional dashed target line. Every point carries its data in attributes
//! (`data-t`, `data-v`, `data-id`) and a `<title>` tooltip; the chart's table beside it holds
//! the same numbers for screen readers and print.

use std::fmt::Write as _;

use time::OffsetDateTime;

use super::fmt::{self, esc};
use super::{PhysicalBackupRow, RecoverableWindow};

const W: f64 = 720.0;
const H: f64 = 220.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 34.0;

/// How values read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    Bytes,
    Millis,
    Seconds,
}

impl Unit {
    fn label(self, v: u64) -> String {
        match self {
            Self::Bytes => fmt::bytes(v),
            Self::Millis => fmt::millis(v),
            Self::Seconds => fmt::secs(v),
        }
    }
}

/// One point.
#[derive(Debug, Clone)]
pub(crate) struct Point {
    pub(crate) t: OffsetDateTime,
    pub(crate) v: u64,
    /// Drawn as a failure (a red square).
    pub(crate) bad: bool,
    /// The backup id, for the tooltip and `data-id`.
    pub(crate) id: String,
}

/// One line.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    /// Its name in the legend and `data-series`.
    pub(crate) name: &'static str,
    /// CSS class: `s1` (dark blue, solid) or `s2` (orange, dashed).
    pub(crate) class: &'static str,
    pub(crate) points: Vec<Point>,
}

/// One chart.
#[derive(Debug, Clone)]
pub(crate) struct Chart {
    /// Unique in the page.
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) unit: Unit,
    pub(crate) series: Vec<Series>,
    /// A target line: the value and its label.
    pub(crate) target: Option<u64>,
}

fn nice_max(v: u64) -> u64 {
    if v == 0 {
        return 1;
    }
    let v = v as f64 * 1.1;
    let mag = 10f64.powf(v.log10().floor());
    let n = v / mag;
    let step = if n <= 1.0 {
        1.0
    } else if n <= 2.0 {
        2.0
    } else if n <= 5.0 {
        5.0
    } else {
        10.0
    };
    (step * mag).ceil() as u64
}

/// A round top for a time axis in `per_s` units per second: four steps of 1, 2, 5, 10, 15 or
/// 30 seconds or minutes, 1, 2, 3, 6 or 12 hours, or whole days.
fn nice_time_max(v: u64, per_s: u64) -> u64 {
    const STEPS_S: [u64; 17] = [
        1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200,
    ];
    let want = (v as f64 * 1.1 / 4.0).ceil() as u64;
    if per_s > 1 && want < per_s {
        return nice_max(v);
    }
    let want_s = want.div_ceil(per_s);
    let step_s = STEPS_S
        .iter()
        .copied()
        .find(|s| *s >= want_s)
        .unwrap_or_else(|| want_s.div_ceil(86_400) * 86_400);
    step_s * per_s * 4
}

/// The chart as an `<svg>` element: `role="img"`, labelled by its title and a description
/// that says what it shows in words.
pub(crate) fn svg(c: &Chart) -> String {
    let points: Vec<&Point> = c.series.iter().flat_map(|s| s.points.iter()).collect();
    let mut out = String::new();
    let id = esc(&c.id);
    let desc = describe(c);
    let _ = write!(
        out,
        "<svg class=\"chart\" id=\"{id}\" viewBox=\"0 0 {W} {H}\" role=\"img\" \
         aria-labelledby=\"{id}-title {id}-desc\" xmlns=\"http://www.w3.org/2000/svg\">\
         <title id=\"{id}-title\">{}</title><desc id=\"{id}-desc\">{}</desc>",
        esc(&c.title),
        esc(&desc)
    );
    let _ = write!(
        out,
        "<text class=\"ctitle\" x=\"{LEFT}\" y=\"16\">{}</text>",
        esc(&c.title)
    );
    if points.is_empty() {
        let _ = write!(
            out,
            "<text class=\"empty\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">no data in the window</text></svg>",
            W / 2.0,
            H / 2.0
        );
        return out;
    }
    let tmin = points
        .iter()
        .map(|p| p.t.unix_timestamp())
        .min()
        .unwrap_or(0);
    let tmax = points
        .iter()
        .map(|p| p.t.unix_timestamp())
        .max()
        .unwrap_or(0);
    let (tmin, tmax) = if tmin == tmax {
        (tmin - 43_200, tmax + 43_200)
    } else {
        (tmin, tmax)
    };
    let vmax = points
        .iter()
        .map(|p| p.v)
        .chain(c.target)
        .max()
        .unwrap_or(0);
    // Round steps in the unit people read: binary multiples for sizes.
    let vmax = match c.unit {
        Unit::Bytes => {
            let mut unit = 1u64;
            while vmax / unit >= 1024 {
                unit *= 1024;
            }
            nice_max(vmax.div_ceil(unit)).saturating_mul(unit)
        }
        Unit::Seconds => nice_time_max(vmax, 1),
        Unit::Millis => nice_time_max(vmax, 1000),
    };
    let x = |t: i64| LEFT + (t - tmin) as f64 / (tmax - tmin) as f64 * (W - LEFT - RIGHT);
    let y = |v: u64| H - BOTTOM - v as f64 / vmax as f64 * (H - TOP - BOTTOM);

    // Axes and grid: four steps on y, the first, middle and last date on x.
    for i in 0..=4u64 {
        let v = vmax * i / 4;
        let yy = y(v);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\"/>\
             <text class=\"tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - RIGHT,
            LEFT - 6.0,
            yy + 4.0,
            esc(&c.unit.label(v))
        );
    }
    for (t, anchor) in [
        (tmin, "start"),
        ((tmin + tmax) / 2, "middle"),
        (tmax, "end"),
    ] {
        let label = OffsetDateTime::from_unix_timestamp(t)
            .map(fmt::date)
            .unwrap_or_default();
        let _ = write!(
            out,
            "<text class=\"tick\" x=\"{:.1}\" y=\"{}\" text-anchor=\"{anchor}\">{label}</text>",
            x(t),
            H - 10.0
        );
    }
    let _ = write!(
        out,
        "<line class=\"axis\" x1=\"{LEFT}\" x2=\"{LEFT}\" y1=\"{TOP}\" y2=\"{}\"/>\
         <line class=\"axis\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{}\" y2=\"{}\"/>",
        H - BOTTOM,
        W - RIGHT,
        H - BOTTOM,
        H - BOTTOM
    );
    if let Some(t) = c.target {
        let yy = y(t);
        let _ = write!(
            out,
            "<g class=\"target\" data-v=\"{t}\"><line x1=\"{LEFT}\" x2=\"{}\" y1=\"{yy:.1}\" \
             y2=\"{yy:.1}\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">target {}</text></g>",
            W - RIGHT,
            W - RIGHT - 2.0,
            yy - 4.0,
            esc(&c.unit.label(t))
        );
    }
    // Legend, top right.
    let mut lx = W - RIGHT;
    for s in c.series.iter().rev() {
        lx -= 8.0 * s.name.len() as f64 + 34.0;
        let _ = write!(
            out,
            "<g class=\"legend {}\"><line x1=\"{lx:.1}\" x2=\"{:.1}\" y1=\"12\" y2=\"12\"/>\
             <text x=\"{:.1}\" y=\"16\">{}</text></g>",
            s.class,
            lx + 20.0,
            lx + 24.0,
            s.name
        );
    }
    for s in &c.series {
        let mut sorted: Vec<&Point> = s.points.iter().collect();
        sorted.sort_by_key(|p| p.t);
        if sorted.len() > 1 {
            let path: Vec<String> = sorted
                .iter()
                .map(|p| format!("{:.1},{:.1}", x(p.t.unix_timestamp()), y(p.v)))
                .collect();
            let _ = write!(
                out,
                "<polyline class=\"line {}\" points=\"{}\"/>",
                s.class,
                path.join(" ")
            );
        }
        for p in sorted {
            let (px, py) = (x(p.t.unix_timestamp()), y(p.v));
            let tip = format!(
                "{}: {} at {}{}",
                s.name,
                c.unit.label(p.v),
                fmt::time(p.t),
                if p.bad { " (failed)" } else { "" }
            );
            let attrs = format!(
                "data-series=\"{}\" data-t=\"{}\" data-v=\"{}\" data-id=\"{}\"",
                s.name,
                fmt::rfc3339(p.t),
                p.v,
                esc(&p.id)
            );
            if p.bad {
                let _ = write!(
                    out,
                    "<rect class=\"pt bad\" {attrs} x=\"{:.1}\" y=\"{:.1}\" width=\"9\" \
                     height=\"9\"><title>{}</title></rect>",
                    px - 4.5,
                    py - 4.5,
                    esc(&tip)
                );
            } else {
                let _ = write!(
                    out,
                    "<circle class=\"pt {}\" {attrs} cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"3.5\">\
                     <title>{}</title></circle>",
                    s.class,
                    esc(&tip)
                );
            }
        }
    }
    out.push_str("</svg>");
    out
}

/// The chart in one sentence: its series, ranges and failures.
fn describe(c: &Chart) -> String {
    let mut parts = Vec::new();
    for s in &c.series {
        let n = s.points.len();
        if n == 0 {
            parts.push(format!("{}: no data", s.name));
            continue;
        }
        let min = s.points.iter().map(|p| p.v).min().unwrap_or(0);
        let max = s.points.iter().map(|p| p.v).max().unwrap_or(0);
        let bad = s.points.iter().filter(|p| p.bad).count();
        parts.push(format!(
            "{}: {n} point(s) from {} to {}{}",
            s.name,
            c.unit.label(min),
            c.unit.label(max),
            if bad > 0 {
                format!(", {bad} failed")
            } else {
                String::new()
            }
        ));
    }
    if let Some(t) = c.target {
        parts.push(format!("target {}", c.unit.label(t)));
    }
    format!("{}. The table below holds the same data.", parts.join("; "))
}

/// One cluster's recoverable window as a timeline chart: a time axis, per timeline a bar
/// for each range a restore reaches (from a base backup's end to where its WAL stops; cut
/// short by a gap, a bar is amber and says so), each gap as a red hatched block between the
/// range it cuts and the next one (to the end of the axis when no base backup follows it),
/// and each base backup as a mark at its end. Every bar, gap and mark carries its data
/// (`data-from`, `data-to`, `data-t`, `data-id`, ...) and a `<title>`.
pub(crate) fn window(id: &str, w: &RecoverableWindow, marks: &[&PhysicalBackupRow]) -> String {
    const ROW: f64 = 34.0;
    let rows = w.timelines.len() as f64 + 1.0;
    let h = TOP + 8.0 + rows * ROW + BOTTOM;
    let id = esc(id);
    let title = format!("Recoverable window of cluster {}", w.system_identifier);
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg class=\"chart window\" id=\"{id}\" viewBox=\"0 0 {W} {h}\" role=\"img\" \
         aria-labelledby=\"{id}-title {id}-desc\" xmlns=\"http://www.w3.org/2000/svg\">\
         <title id=\"{id}-title\">{}</title><desc id=\"{id}-desc\">{}</desc>\
         <text class=\"ctitle\" x=\"{LEFT}\" y=\"16\">{}</text>",
        esc(&title),
        esc(&describe_window(w, marks)),
        esc(&title)
    );
    let ranges = || w.timelines.iter().flat_map(|t| t.ranges.iter());
    let gaps = || w.timelines.iter().flat_map(|t| t.gaps.iter());
    let times: Vec<i64> = ranges()
        .flat_map(|r| [r.from, r.to])
        .chain(gaps().filter_map(|g| g.after))
        .chain(gaps().filter_map(|g| g.until))
        .chain(marks.iter().map(|m| m.finished_at))
        .map(OffsetDateTime::unix_timestamp)
        .collect();
    let (Some(&tmin), Some(&tmax)) = (times.iter().min(), times.iter().max()) else {
        let _ = write!(
            out,
            "<text class=\"empty\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">nothing recoverable: \
             no base backup</text></svg>",
            W / 2.0,
            h / 2.0
        );
        return out;
    };
    // A little room at both ends, so marks at the edges stay whole.
    let pad = ((tmax - tmin) / 40).max(600);
    let (tmin, tmax) = (tmin - pad, tmax + pad);
    let x = |t: OffsetDateTime| {
        LEFT + (t.unix_timestamp() - tmin) as f64 / (tmax - tmin) as f64 * (W - LEFT - RIGHT)
    };
    let axis_y = h - BOTTOM;
    // Five ticks, dates (and hours when the span is short).
    let short = tmax - tmin < 3 * 86_400;
    for i in 0..=4i64 {
        let t = tmin + (tmax - tmin) * i / 4;
        let Ok(at) = OffsetDateTime::from_unix_timestamp(t) else {
            continue;
        };
        let label = if short {
            fmt::time(at)
                .trim_end_matches(" UTC")
                .get(5..)
                .unwrap_or_default()
                .to_owned()
        } else {
            fmt::date(at)
        };
        let xx = x(at);
        let anchor = match i {
            0 => "start",
            4 => "end",
            _ => "middle",
        };
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{TOP}\" y2=\"{axis_y}\"/>\
             <text class=\"tick\" x=\"{xx:.1}\" y=\"{}\" text-anchor=\"{anchor}\">{label}</text>",
            h - 10.0
        );
    }
    let _ = write!(
        out,
        "<line class=\"axis\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{axis_y}\" y2=\"{axis_y}\"/>",
        W - RIGHT
    );
    let end = OffsetDateTime::from_unix_timestamp(tmax).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    for (i, t) in w.timelines.iter().enumerate() {
        let yy = TOP + 8.0 + i as f64 * ROW;
        let _ = write!(
            out,
            "<text class=\"tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">timeline {}</text>",
            LEFT - 6.0,
            yy + 13.0,
            t.timeline.trim_start_matches('0')
        );
        for r in &t.ranges {
            let (x0, x1) = (x(r.from), x(r.to));
            let tip = format!(
                "timeline {}: recoverable from {} to {}{} (from backup {})",
                t.timeline,
                fmt::time(r.from),
                fmt::time(r.to),
                match (r.reaches_end, r.to_source.as_str()) {
                    (false, _) => ", then a gap",
                    (true, "commit") => ", the newest commit",
                    (true, "archived") => ", when the newest WAL was archived",
                    _ => ", at least",
                },
                r.from_backup
            );
            let _ = write!(
                out,
                "<rect class=\"range{}\" data-timeline=\"{}\" data-from=\"{}\" data-to=\"{}\" \
                 data-to-source=\"{}\" data-id=\"{}\" x=\"{x0:.1}\" y=\"{yy:.1}\" width=\"{:.1}\" \
                 height=\"18\"><title>{}</title></rect>",
                if r.reaches_end { "" } else { " cut" },
                esc(&t.timeline),
                fmt::rfc3339_exact(r.from),
                fmt::rfc3339_exact(r.to),
                esc(&r.to_source),
                esc(&r.from_backup),
                (x1 - x0).max(3.0),
                esc(&tip)
            );
        }
        for g in &t.gaps {
            let Some(after) = g.after else { continue };
            let (x0, x1) = (x(after), x(g.until.unwrap_or(end)));
            let tip = format!(
                "GAP: {} WAL segment(s) missing, {} to {}{}",
                g.missing,
                g.first_missing,
                g.last_missing,
                match g.until {
                    Some(u) => format!(
                        "; nothing between {} and {}",
                        fmt::time(after),
                        fmt::time(u)
                    ),
                    None => format!(
                        "; nothing after {} (no base backup after it)",
                        fmt::time(after)
                    ),
                }
            );
            let _ = write!(
                out,
                "<rect class=\"gap\" data-timeline=\"{}\" data-after=\"{}\" data-until=\"{}\" \
                 data-first-missing=\"{}\" data-last-missing=\"{}\" data-missing=\"{}\" \
                 x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"26\"><title>{}</title></rect>",
                esc(&t.timeline),
                fmt::rfc3339_exact(after),
                g.until.map(fmt::rfc3339_exact).unwrap_or_default(),
                esc(&g.first_missing),
                esc(&g.last_missing),
                g.missing,
                yy - 4.0,
                (x1 - x0).max(3.0),
                esc(&tip)
            );
        }
    }
    let my = TOP + 8.0 + w.timelines.len() as f64 * ROW + 9.0;
    let _ = write!(
        out,
        "<text class=\"tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">backups</text>",
        LEFT - 6.0,
        my + 4.0
    );
    for m in marks {
        let mx = x(m.finished_at);
        let _ = write!(
            out,
            "<path class=\"mark\" data-id=\"{}\" data-t=\"{}\" d=\"M{mx:.1} {:.1}l6 7l-6 7l-6 -7z\">\
             <title>base backup {} ended {}</title></path>",
            esc(&m.id),
            fmt::rfc3339_exact(m.finished_at),
            my - 7.0,
            esc(&m.id),
            fmt::time(m.finished_at)
        );
    }
    out.push_str("</svg>");
    out
}

/// The window chart in one sentence per timeline.
fn describe_window(w: &RecoverableWindow, marks: &[&PhysicalBackupRow]) -> String {
    let mut parts = Vec::new();
    for t in &w.timelines {
        let ranges: Vec<String> = t
            .ranges
            .iter()
            .map(|r| format!("{} to {}", fmt::time(r.from), fmt::time(r.to)))
            .collect();
        parts.push(format!(
            "timeline {}: {}{}",
            t.timeline,
            if ranges.is_empty() {
                "nothing recoverable".to_owned()
            } else {
                format!("recoverable {}", ranges.join(" and "))
            },
            if t.gaps.is_empty() {
                String::new()
            } else {
                format!(", {} gap(s) in its WAL", t.gaps.len())
            }
        ));
    }
    parts.push(format!("{} base backup(s)", marks.len()));
    format!("{}. The tables below hold the same data.", parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(days: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_780_000_000 + days * 86_400).unwrap()
    }

    #[test]
    fn every_point_carries_its_value_and_failures_are_squares() {
        let c = Chart {
            id: "c1".into(),
            title: "RTO <per drill>".into(),
            unit: Unit::Millis,
            series: vec![Series {
                name: "RTO",
                class: "s1",
                points: vec![
                    Point {
                        t: at(0),
                        v: 41_000,
                        bad: false,
                        id: "a".into(),
                    },
                    Point {
                        t: at(1),
                        v: 90_000,
                        bad: true,
                        id: "b".into(),
                    },
                ],
            }],
            target: Some(60_000),
        };
        let s = svg(&c);
        assert!(s.contains("role=\"img\"") && s.contains("aria-labelledby=\"c1-title c1-desc\""));
        assert!(s.contains("RTO &lt;per drill&gt;"), "{s}");
        assert!(s.contains("data-v=\"41000\"") && s.contains("<rect class=\"pt bad\""));
        assert!(s.contains("class=\"target\" data-v=\"60000\""));
        assert!(s.contains("1 failed"));
        let empty = Chart {
            series: vec![],
            ..c
        };
        assert!(svg(&empty).contains("no data in the window"));
    }

    #[test]
    fn the_window_draws_its_ranges_gaps_and_marks_with_their_data() {
        use crate::report::{WindowGap, WindowRange, WindowTimeline};
        let range = |from: i64, to: i64, end: bool, id: &str| WindowRange {
            from: at(from),
            to: at(to),
            to_source: if end { "commit" } else { "backup" }.into(),
            from_backup: id.into(),
            backups: vec![id.into()],
            from_lsn: "0/10000028".into(),
            to_lsn: "0/18000000".into(),
            reaches_end: end,
        };
        let w = RecoverableWindow {
            system_identifier: "7".into(),
            from: Some(at(0)),
            to: Some(at(9)),
            gaps: 1,
            timelines: vec![WindowTimeline {
                timeline: "00000001".into(),
                ranges: vec![range(0, 3, false, "a"), range(6, 9, true, "b")],
                gaps: vec![WindowGap {
                    first_missing: "000000010000000000000018".into(),
                    last_missing: "00000001000000000000001A".into(),
                    missing: 3,
                    start_lsn: "0/18000000".into(),
                    end_lsn: "0/1B000000".into(),
                    affects: vec!["a".into()],
                    after: Some(at(3)),
                    until: Some(at(6)),
                }],
                unrecoverable: vec![],
            }],
            problem: None,
        };
        let mark = |id: &str, d: i64| PhysicalBackupRow {
            id: id.into(),
            system_identifier: "7".into(),
            started_at: at(d),
            finished_at: at(d),
            stored_size: 1,
        };
        let (a, b) = (mark("a", 0), mark("b", 6));
        let s = window("w7", &w, &[&a, &b]);
        assert!(s.contains("role=\"img\"") && s.contains("aria-labelledby=\"w7-title w7-desc\""));
        assert_eq!(s.matches("<rect class=\"range").count(), 2, "{s}");
        assert!(s.contains("<rect class=\"range cut\""), "{s}");
        let from = fmt::rfc3339_exact(at(6));
        assert!(s.contains(&format!("data-from=\"{from}\"")), "{s}");
        assert!(s.contains(&format!("data-until=\"{from}\"")), "{s}");
        assert!(s.contains("data-first-missing=\"000000010000000000000018\""));
        assert_eq!(s.matches("<path class=\"mark\"").count(), 2);
        assert!(
            s.contains("1 gap(s)") && s.contains("2 base backup(s)"),
            "{s}"
        );
        // Nothing to draw: said in words.
        let none = RecoverableWindow {
            timelines: vec![],
            ..w
        };
        assert!(window("w8", &none, &[]).contains("nothing recoverable"));
    }

    #[test]
    fn the_scale_is_round() {
        assert_eq!(nice_max(0), 1);
        assert_eq!(nice_max(90), 100);
        assert_eq!(nice_max(1500), 2000);
        // Time axes step in minutes, hours, days.
        assert_eq!(nice_time_max(2_700, 1), 3600);
        assert_eq!(nice_time_max(93_600, 1), 4 * 43_200);
        assert_eq!(nice_time_max(2_700_000, 1000), 3_600_000);
        assert_eq!(nice_time_max(500, 1000), 1000);
        assert_eq!(nice_time_max(0, 1), 4);
    }
}

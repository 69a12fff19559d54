//! The report as one self-contained HTML page: inline CSS and SVG, no script, no request for
//! anything else; printable (print styles, no fixed heights) and readable with a screen
//! reader (landmarks, headings, every chart a `<figure>` with its `<figcaption>` and the table
//! of its data, failures said in words, not only in colour).

use std::fmt::Write as _;

use super::fmt::{self, esc};
use super::svg::{self, Chart, Point, Series, Unit};
use super::{Level, PhysicalSection, RecoverableWindow, Report, SetSection};

const STYLE: &str = r#"
:root{color-scheme:light}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;color:#1b1f24;background:#fff}
header,main,footer{max-width:1100px;margin:0 auto;padding:0 20px}
header{border-bottom:3px solid #1f4e79;padding-top:12px}
h1{font-size:1.6em;margin:.3em 0}h2{font-size:1.3em;margin-top:1.6em;border-bottom:1px solid #ccd;padding-bottom:.2em}
h3{font-size:1.05em;margin:1.2em 0 .4em}
.meta{color:#444;margin:.2em 0 .8em}
ul.notices{list-style:none;padding:0}
ul.notices li{padding:.45em .7em;margin:.3em 0;border-left:6px solid;background:#f5f7fa}
li.error{border-color:#b00020;background:#fdecee}li.warning{border-color:#b35c00;background:#fff4e5}li.info{border-color:#1f4e79}
.lvl{font-weight:700;text-transform:uppercase;font-size:.8em;margin-right:.5em}
dl.summary{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:8px}
dl.summary div{background:#f5f7fa;padding:.5em .7em;border-radius:4px}
dl.summary dt{font-size:.8em;color:#444}dl.summary dd{margin:0;font-size:1.25em;font-weight:600}
table{border-collapse:collapse;width:100%;margin:.5em 0 1em;font-size:.9em}
caption{text-align:left;font-weight:600;padding:.3em 0}
th,td{border-bottom:1px solid #dde;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#eef2f7}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td:first-child,td.num,table code{white-space:nowrap}tr.failed td{background:#fdecee}tr.remove td{color:#6b2b00}
.bad{color:#b00020;font-weight:700}.good{color:#1d6b2f;font-weight:600}
figure{margin:1em 0;padding:0}figcaption{font-size:.9em;color:#333;margin:.3em 0}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(340px,1fr));gap:10px}
svg.chart{width:100%;height:auto;background:#fbfcfd;border:1px solid #e3e7ee}
svg .grid{stroke:#e3e7ee}svg .axis{stroke:#555}
svg .tick,svg text{font-size:11px;fill:#333}svg .ctitle{font-size:13px;font-weight:600;fill:#1b1f24}
svg .line{fill:none;stroke-width:2}svg .line.s1{stroke:#1f4e79}svg .line.s2{stroke:#c25e00;stroke-dasharray:6 3}
svg .pt.s1{fill:#1f4e79}svg .pt.s2{fill:#c25e00}svg .pt.bad{fill:#b00020;stroke:#fff}
svg .legend line{stroke-width:3}svg .legend.s1 line{stroke:#1f4e79}svg .legend.s2 line{stroke:#c25e00;stroke-dasharray:6 3}
svg .target line{stroke:#b00020;stroke-dasharray:4 4}svg .target text{fill:#b00020}
svg .empty{fill:#666;font-size:14px}
svg .range{fill:#2e7d32}svg .range.cut{fill:#c98a00}svg .gap{fill:#b00020;fill-opacity:.22;stroke:#b00020;stroke-dasharray:3 2}svg .mark{fill:#1f4e79;stroke:#fff}
code{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:.9em}
footer{color:#555;font-size:.85em;border-top:1px solid #ccd;margin-top:2em;padding-bottom:2em}
@media print{body{font-size:11pt}header{border-color:#000}section.set{break-inside:auto}figure,table{break-inside:avoid}a{color:inherit}}
"#;

/// A whole page around `body`; `refresh`: seconds until the browser reloads it.
pub(crate) fn page(title: &str, refresh: Option<u32>, body: &str) -> String {
    let refresh = refresh
        .map(|s| format!("<meta http-equiv=\"refresh\" content=\"{s}\">"))
        .unwrap_or_default();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">{refresh}\
         <meta name=\"generator\" content=\"pgb {}\"><title>{}</title><style>{STYLE}</style>\
         </head><body>{body}</body></html>\n",
        env!("CARGO_PKG_VERSION"),
        esc(title)
    )
}

/// The title: `pgb report: job shop` or `pgb report: <repository>`.
pub(crate) fn title(r: &Report) -> String {
    match &r.job {
        Some(j) => format!("pgb report: job {j}"),
        None => format!("pgb report: {}", r.repository),
    }
}

fn window(r: &Report) -> String {
    match (&r.since, &r.since_label) {
        (Some(s), Some(l)) => format!("since {} ({l})", fmt::time(*s)),
        (Some(s), None) => format!("since {}", fmt::time(*s)),
        _ => "everything recorded".to_owned(),
    }
}

/// The report as a standalone HTML page.
pub fn html(r: &Report) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<header><h1>{}</h1><p class=\"meta\">Repository <code>{}</code> · {} · generated {} by \
         pgb {}</p></header><main>",
        esc(&title(r)),
        esc(&r.repository),
        esc(&window(r)),
        fmt::time(r.generated_at),
        esc(&r.pgb_version)
    );
    body(&mut b, r, 2, "");
    b.push_str(
        "</main><footer><p>Built from the repository alone (manifests, drill and \
                verification records). The JSON of <code>pgb report --format json</code> holds \
                the same data.</p></footer>",
    );
    page(&title(r), None, &b)
}

/// The report's sections, headings starting at `h` (2 on its own page), element ids starting
/// with `p` (several reports on one page).
pub(crate) fn body(b: &mut String, r: &Report, h: u8, p: &str) {
    let h2 = h;
    let _ = write!(
        b,
        "<section id=\"{p}notices\" aria-labelledby=\"{p}notices-h\"><h{h2} id=\"{p}notices-h\">What needs attention</h{h2}>"
    );
    if r.notices.is_empty() {
        b.push_str("<p class=\"good\">Nothing: every set has recent backups and its last drill passed.</p>");
    } else {
        b.push_str("<ul class=\"notices\">");
        for n in &r.notices {
            let lvl = match n.level {
                Level::Error => "error",
                Level::Warning => "warning",
                Level::Info => "info",
            };
            let _ = write!(
                b,
                "<li class=\"{lvl}\"><span class=\"lvl\">{lvl}</span>{}</li>",
                esc(&n.message)
            );
        }
        b.push_str("</ul>");
    }
    b.push_str("</section>");
    summary(b, r, h2, p);
    last_failure(b, r, h2, p);
    for (i, s) in r.sets.iter().enumerate() {
        set(b, s, &format!("{p}{i}"), h2);
    }
    retention(b, r, h2, p);
    unusable(b, r, h2, p);
    physical(b, r, h2, p);
}

fn summary(b: &mut String, r: &Report, h: u8, p: &str) {
    let s = &r.summary;
    let _ = write!(
        b,
        "<section id=\"{p}summary\" aria-labelledby=\"{p}summary-h\"><h{h} id=\"{p}summary-h\">Summary</h{h}><dl class=\"summary\">"
    );
    let base = &r.physical.backups;
    let base_backups = (!base.is_empty()).then(|| {
        (
            "Base backups",
            format!(
                "{} ({}), newest {}",
                base.len(),
                fmt::bytes(base.iter().map(|b| b.stored_size).sum()),
                base.iter()
                    .map(|b| b.started_at)
                    .max()
                    .map_or("none".to_owned(), fmt::time)
            ),
        )
    });
    let items = [
        ("Backup sets", s.sets.to_string()),
        (
            "Backups in the window",
            format!("{} of {}", s.backups, s.backups_total),
        ),
        ("Stored in all", fmt::bytes(s.stored_bytes_total)),
        (
            "Newest backup",
            s.newest_backup_at.map_or("none".to_owned(), fmt::time),
        ),
        (
            "Drills",
            format!("{} ({} failed)", s.drills, s.drills_failed),
        ),
        ("Verifications", s.verifications.to_string()),
        ("Unusable", s.unusable.to_string()),
        ("Running now", r.in_progress.len().to_string()),
    ];
    for (k, v) in items.into_iter().chain(base_backups) {
        let _ = write!(b, "<div><dt>{k}</dt><dd>{}</dd></div>", esc(&v));
    }
    b.push_str("</dl></section>");
}

fn last_failure(b: &mut String, r: &Report, h: u8, p: &str) {
    let _ = write!(
        b,
        "<section id=\"{p}last-failure\" aria-labelledby=\"{p}lf-h\"><h{h} id=\"{p}lf-h\">Last failure</h{h}>"
    );
    match &r.last_failure {
        None => b.push_str("<p class=\"good\">No drill failed in the window.</p>"),
        Some(d) => {
            let _ = write!(
                b,
                "<p><strong class=\"bad\">FAILED</strong> drill of backup <code>{}</code> ({}) on \
                 {}: {}. Cause: <strong>{}</strong></p>",
                esc(&d.backup_id),
                esc(&d.set),
                fmt::time(d.started_at),
                esc(fmt::outcome_words(&d.outcome)),
                esc(d.cause.as_deref().unwrap_or("not recorded"))
            );
        }
    }
    b.push_str("</section>");
}

fn set(b: &mut String, s: &SetSection, i: &str, h: u8) {
    let h3 = h + 1;
    let _ = write!(
        b,
        "<section class=\"set\" id=\"set-{i}\" data-set=\"{}\" aria-labelledby=\"set-{i}-h\">\
         <h{h} id=\"set-{i}-h\">Set <code>{}</code></h{h}><p>Database <code>{}</code> on \
         <code>{}</code>: {} backup(s) in the window, {} in all.</p>",
        esc(&s.set),
        esc(&s.set),
        esc(&s.database),
        esc(&s.server),
        s.backups.len(),
        s.backups_total
    );
    backups_figure(b, s, i, h3);
    drills_figure(b, s, i, h3);
    verifications(b, s, h3);
    b.push_str("</section>");
}

fn backups_figure(b: &mut String, s: &SetSection, i: &str, h: u8) {
    let point = |v: u64, r: &super::BackupRow| Point {
        t: r.started_at,
        v,
        bad: false,
        id: r.id.clone(),
    };
    let sizes = Chart {
        id: format!("sizes-{i}"),
        title: "Size per backup".into(),
        unit: Unit::Bytes,
        series: vec![
            Series {
                name: "stored",
                class: "s1",
                points: s.backups.iter().map(|r| point(r.stored_size, r)).collect(),
            },
            Series {
                name: "dump",
                class: "s2",
                points: s.backups.iter().map(|r| point(r.plain_size, r)).collect(),
            },
        ],
        target: None,
    };
    let durations = Chart {
        id: format!("durations-{i}"),
        title: "Duration per backup".into(),
        unit: Unit::Seconds,
        series: vec![Series {
            name: "duration",
            class: "s1",
            points: s.backups.iter().map(|r| point(r.duration_s, r)).collect(),
        }],
        target: None,
    };
    let _ = write!(
        b,
        "<h{h}>Backups</h{h}><figure id=\"backups-{i}\" aria-labelledby=\"backups-{i}-cap\">\
         <div class=\"charts\">{}{}</div><figcaption id=\"backups-{i}-cap\">Stored and dump size \
         and duration of each backup of the set over time; the table holds the same data, with \
         each backup's verification, last drill and what the next prune does with it.\
         </figcaption>",
        svg::svg(&sizes),
        svg::svg(&durations)
    );
    if s.backups.is_empty() {
        b.push_str("<p>No backup in the window.</p></figure>");
        return;
    }
    // The migration column only where a backup of the set recorded a head.
    let heads = s.backups.iter().any(|r| !r.migrations.is_empty());
    let _ = write!(
        b,
        "<table class=\"backups\"><caption>Backups, oldest first</caption><thead><tr>\
         <th scope=\"col\">Started</th><th scope=\"col\">Id</th><th scope=\"col\" class=\"num\">Stored</th>\
         <th scope=\"col\" class=\"num\">Dump</th><th scope=\"col\" class=\"num\">Duration</th>\
         {}<th scope=\"col\">Verified</th><th scope=\"col\">Last drill</th><th scope=\"col\">Next prune</th>\
         </tr></thead><tbody>",
        if heads {
            "<th scope=\"col\">Migration</th>"
        } else {
            ""
        }
    );
    for r in &s.backups {
        let prune = match &r.retention {
            None => "not planned".to_owned(),
            Some(x) if x.keep => format!("keep: {}", x.kept_by.join(", ")),
            Some(_) => "REMOVE (no rule keeps it)".to_owned(),
        };
        let removed = r.retention.as_ref().is_some_and(|x| !x.keep);
        let drill = match r.last_drill.as_deref() {
            None => "none".to_owned(),
            Some("passed") => "passed".to_owned(),
            Some(o) => format!("FAILED ({})", fmt::outcome_words(o)),
        };
        let _ = write!(
            b,
            "<tr class=\"backup{}\" data-id=\"{}\" data-stored=\"{}\" data-plain=\"{}\" \
             data-duration=\"{}\"><td>{}</td><td><code>{}</code>{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td>{}<td>{}</td><td{}>{}</td><td>{}</td></tr>",
            if removed { " remove" } else { "" },
            esc(&r.id),
            r.stored_size,
            r.plain_size,
            r.duration_s,
            fmt::time(r.started_at),
            esc(&r.id),
            if r.encrypted { " (encrypted)" } else { "" },
            fmt::bytes(r.stored_size),
            fmt::bytes(r.plain_size),
            fmt::secs(r.duration_s),
            if heads {
                let label = fmt::heads(&r.migrations, &s.database);
                format!(
                    "<td class=\"migration\" data-migration=\"{}\">{}</td>",
                    esc(&label),
                    if label.is_empty() {
                        "none".to_owned()
                    } else {
                        format!("<code>{}</code>", esc(&label))
                    }
                )
            } else {
                String::new()
            },
            r.verified_at.map_or("no".to_owned(), fmt::time),
            if drill.starts_with("FAILED") {
                " class=\"bad\""
            } else {
                ""
            },
            esc(&drill),
            esc(&prune)
        );
    }
    b.push_str("</tbody></table></figure>");
}

fn drills_figure(b: &mut String, s: &SetSection, i: &str, h: u8) {
    let rto_target = s.drills.iter().rev().find_map(|d| d.max_rto_ms);
    let rpo_target = s.drills.iter().rev().find_map(|d| d.max_rpo_s);
    let series = |name: &'static str, f: fn(&super::DrillRow) -> u64| Series {
        name,
        class: "s1",
        points: s
            .drills
            .iter()
            .map(|d| Point {
                t: d.started_at,
                v: f(d),
                bad: !d.passed,
                id: d.backup_id.clone(),
            })
            .collect(),
    };
    let rto = Chart {
        id: format!("rto-{i}"),
        title: "Recovery time (RTO) per drill".into(),
        unit: Unit::Millis,
        series: vec![series("RTO", |d| d.rto_ms)],
        target: rto_target,
    };
    let rpo = Chart {
        id: format!("rpo-{i}"),
        title: "Recovery point (RPO) per drill".into(),
        unit: Unit::Seconds,
        series: vec![series("RPO", |d| d.rpo_s)],
        target: rpo_target,
    };
    let _ = write!(
        b,
        "<h{h}>Restore drills</h{h}><figure id=\"drills-{i}\" aria-labelledby=\"drills-{i}-cap\">\
         <div class=\"charts\">{}{}</div><figcaption id=\"drills-{i}-cap\">Recovery time and \
         recovery point of each drill against the targets (dashed red line); a failed drill is \
         a red square. The table holds the same data.</figcaption>",
        svg::svg(&rto),
        svg::svg(&rpo)
    );
    if s.drills.is_empty() {
        b.push_str(
            "<p>No drill in the window: these backups are not proven to restore.</p></figure>",
        );
        return;
    }
    b.push_str(
        "<table class=\"drills\"><caption>Drills, oldest first</caption><thead><tr>\
         <th scope=\"col\">Started</th><th scope=\"col\">Backup</th><th scope=\"col\">Outcome</th>\
         <th scope=\"col\" class=\"num\">RTO</th><th scope=\"col\" class=\"num\">RTO target</th>\
         <th scope=\"col\" class=\"num\">RPO</th><th scope=\"col\" class=\"num\">RPO target</th>\
         <th scope=\"col\">Cause, migrations</th></tr></thead><tbody>",
    );
    for d in &s.drills {
        let _ = write!(
            b,
            "<tr class=\"drill{}\" data-id=\"{}\" data-outcome=\"{}\" data-rto-ms=\"{}\" \
             data-rpo-s=\"{}\"><td>{}</td><td><code>{}</code></td><td class=\"{}\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td>{}</td></tr>",
            if d.passed { "" } else { " failed" },
            esc(&d.backup_id),
            esc(&d.outcome),
            d.rto_ms,
            d.rpo_s,
            fmt::time(d.started_at),
            esc(&d.backup_id),
            if d.passed { "good" } else { "bad" },
            if d.passed {
                "passed".to_owned()
            } else {
                format!("FAILED: {}", fmt::outcome_words(&d.outcome))
            },
            fmt::millis(d.rto_ms),
            d.max_rto_ms.map_or("none".to_owned(), fmt::millis),
            fmt::secs(d.rpo_s),
            d.max_rpo_s.map_or("none".to_owned(), fmt::secs),
            {
                let cause = esc(d.cause.as_deref().unwrap_or(""));
                match d.migrations.as_ref().map(fmt::drill_migrations) {
                    Some(m) if !m.is_empty() => format!(
                        "{cause}{}<span class=\"migrations\">{}</span>",
                        if cause.is_empty() { "" } else { "<br>" },
                        esc(&m)
                    ),
                    _ => cause,
                }
            }
        );
    }
    b.push_str("</tbody></table></figure>");
}

fn verifications(b: &mut String, s: &SetSection, h: u8) {
    let _ = write!(b, "<h{h}>Verifications</h{h}>");
    if s.verifications.is_empty() {
        b.push_str("<p>No verification recorded in the window.</p>");
        return;
    }
    b.push_str(
        "<table class=\"verifications\"><caption>Passed verifications, oldest first</caption>\
         <thead><tr><th scope=\"col\">When</th><th scope=\"col\">Backup</th><th scope=\"col\">By</th>\
         <th scope=\"col\" class=\"num\">Read</th><th scope=\"col\" class=\"num\">TOC entries</th>\
         </tr></thead><tbody>",
    );
    for v in &s.verifications {
        let _ = write!(
            b,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td></tr>",
            fmt::time(v.verified_at),
            esc(&v.backup_id),
            esc(&v.by),
            fmt::bytes(v.stored_size),
            v.toc_entries.map_or("n/a".to_owned(), |n| n.to_string())
        );
    }
    b.push_str("</tbody></table>");
}

fn retention(b: &mut String, r: &Report, h: u8, p: &str) {
    let _ = write!(
        b,
        "<section id=\"{p}retention\" aria-labelledby=\"{p}ret-h\"><h{h} id=\"{p}ret-h\">Retention</h{h}>"
    );
    match (&r.retention.policy, &r.retention.error) {
        (_, Some(e)) => {
            let _ = write!(
                b,
                "<p class=\"bad\">Retention could not be planned: {}</p>",
                esc(e)
            );
        }
        (None, None) => b.push_str(
            "<p>No retention policy given (<code>--job</code> or <code>--keep-*</code>): what \
             the next prune does is not shown.</p>",
        ),
        (Some(p), None) => {
            let _ = write!(
                b,
                "<p>Policy <code>{}</code>, evaluated {}: the next prune removes {} backup(s). \
                 The newest backup of a set and its newest verified backup are always kept.</p>",
                esc(p),
                fmt::time(r.retention.evaluated_at),
                r.retention.removals
            );
            b.push_str("<table class=\"retention\"><caption>The next prune, per set</caption><thead><tr><th scope=\"col\">Set</th><th scope=\"col\" class=\"num\">Kept</th><th scope=\"col\">Removed</th></tr></thead><tbody>");
            for s in &r.sets {
                let Some(n) = &s.next_prune else { continue };
                let _ = write!(
                    b,
                    "<tr><td><code>{}</code></td><td class=\"num\">{}</td><td>{}</td></tr>",
                    esc(&s.set),
                    n.keep,
                    if n.remove.is_empty() {
                        "nothing".to_owned()
                    } else {
                        n.remove
                            .iter()
                            .map(|i| format!("<code>{}</code>", esc(i)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                );
            }
            b.push_str("</tbody></table>");
        }
    }
    b.push_str("</section>");
}

fn unusable(b: &mut String, r: &Report, h: u8, p: &str) {
    let _ = write!(
        b,
        "<section id=\"{p}unusable\" aria-labelledby=\"{p}un-h\"><h{h} id=\"{p}un-h\">Unusable</h{h}>"
    );
    if r.unusable.is_empty() {
        b.push_str("<p class=\"good\">Every backup and record in the repository can be used.</p></section>");
        return;
    }
    b.push_str("<table class=\"unusable\"><caption>Backups and records that are not trusted</caption><thead><tr><th scope=\"col\">Kind</th><th scope=\"col\">Name</th><th scope=\"col\">Problem</th></tr></thead><tbody>");
    for u in &r.unusable {
        let _ = write!(
            b,
            "<tr class=\"failed\"><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            esc(&u.kind),
            esc(&u.name),
            esc(&u.problem)
        );
    }
    b.push_str("</tbody></table></section>");
}

fn physical(b: &mut String, r: &Report, h: u8, p: &str) {
    let ph = &r.physical;
    let _ = write!(
        b,
        "<section id=\"{p}physical\" aria-labelledby=\"{p}ph-h\"><h{h} id=\"{p}ph-h\">Physical backups and \
         recoverable window</h{h}>"
    );
    if ph.backups.is_empty() {
        b.push_str("<p>No physical backups in this repository.</p>");
    } else {
        b.push_str("<table class=\"physical\"><caption>Physical base backups, oldest first</caption><thead><tr><th scope=\"col\">Started</th><th scope=\"col\">Id</th><th scope=\"col\">Cluster</th><th scope=\"col\">Ended</th><th scope=\"col\" class=\"num\">Stored</th></tr></thead><tbody>");
        for p in &ph.backups {
            let _ = write!(
                b,
                "<tr data-id=\"{}\"><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td>\
                 <td class=\"num\">{}</td></tr>",
                esc(&p.id),
                fmt::time(p.started_at),
                esc(&p.id),
                esc(&p.system_identifier),
                fmt::time(p.finished_at),
                fmt::bytes(p.stored_size)
            );
        }
        b.push_str("</tbody></table>");
    }
    for w in &ph.windows {
        let span = match (w.from, w.to) {
            (Some(f), Some(t)) => format!("from {} to {}", fmt::time(f), fmt::time(t)),
            _ => {
                "nothing: WAL is archived but there is no base backup to replay it onto".to_owned()
            }
        };
        let _ = write!(
            b,
            "<p class=\"window{}\" data-cluster=\"{}\">Cluster <code>{}</code> recovers {}{}.</p>",
            if w.gaps > 0 || w.from.is_none() {
                " bad"
            } else {
                ""
            },
            esc(&w.system_identifier),
            esc(&w.system_identifier),
            esc(&span),
            if w.gaps > 0 {
                format!(
                    "; {} gap(s) in its WAL archive: a target after a gap needs a base backup \
                     taken after it",
                    w.gaps
                )
            } else {
                String::new()
            }
        );
        window_figure(b, w, ph, &format!("{p}window-{}", w.system_identifier));
    }
    if let Some(e) = &ph.error {
        let _ = write!(b, "<p class=\"bad\">{}</p>", esc(e));
    }
    if ph.wal.is_empty() {
        b.push_str("<p>No archived WAL.</p></section>");
        return;
    }
    b.push_str("<table class=\"wal\"><caption>Archived WAL per cluster and timeline</caption><thead><tr><th scope=\"col\">System id</th><th scope=\"col\">Timeline</th><th scope=\"col\" class=\"num\">Segments</th><th scope=\"col\">From</th><th scope=\"col\">To</th><th scope=\"col\">Newest</th><th scope=\"col\">Gaps</th></tr></thead><tbody>");
    for w in &ph.wal {
        let gaps = if w.gaps.is_empty() {
            "none".to_owned()
        } else {
            w.gaps
                .iter()
                .map(|(a, z)| {
                    format!(
                        "after <code>{}</code> until <code>{}</code>",
                        esc(a),
                        esc(z)
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        let _ = write!(
            b,
            "<tr{}><td>{}</td><td>{}</td><td class=\"num\">{}</td><td><code>{}</code></td>\
             <td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            if w.gaps.is_empty() {
                ""
            } else {
                " class=\"failed\""
            },
            esc(&w.system_identifier),
            esc(&w.timeline),
            w.segments,
            esc(w.first.as_deref().unwrap_or("")),
            esc(w.last.as_deref().unwrap_or("")),
            w.newest_at.map_or("unknown".to_owned(), fmt::time),
            gaps
        );
    }
    b.push_str("</tbody></table></section>");
}

/// One cluster's recoverable window: the timeline chart and the table of the same ranges and
/// gaps.
fn window_figure(b: &mut String, w: &RecoverableWindow, ph: &PhysicalSection, id: &str) {
    let marks: Vec<&super::PhysicalBackupRow> = ph
        .backups
        .iter()
        .filter(|m| m.system_identifier == w.system_identifier)
        .collect();
    let _ = write!(
        b,
        "<figure id=\"{id}-fig\" data-cluster=\"{}\" aria-labelledby=\"{id}-cap\">{}\
         <figcaption id=\"{id}-cap\">What a point-in-time restore of cluster <code>{}</code> \
         can reach, per timeline: a bar from the end of a base backup to where its archived WAL \
         stops (amber when a gap cuts it), the gaps in red, and each base backup as a mark at \
         its end. The table holds the same data.</figcaption>",
        esc(&w.system_identifier),
        svg::window(id, w, &marks),
        esc(&w.system_identifier)
    );
    if let Some(problem) = &w.problem {
        let _ = write!(
            b,
            "<p class=\"note\">Times read from the archive are incomplete: {}</p>",
            esc(problem)
        );
    }
    let rows: usize = w
        .timelines
        .iter()
        .map(|t| t.ranges.len() + t.gaps.len())
        .sum();
    if rows == 0 {
        b.push_str(
            "<p>No base backup restores into this cluster\u{2019}s archived WAL.</p></figure>",
        );
        return;
    }
    b.push_str(
        "<table class=\"window\"><caption>Recoverable ranges and gaps, oldest first</caption>\
         <thead><tr><th scope=\"col\">Timeline</th><th scope=\"col\">From</th>\
         <th scope=\"col\">To</th><th scope=\"col\">Base backups</th></tr></thead><tbody>",
    );
    for t in &w.timelines {
        for r in &t.ranges {
            let to = match (r.reaches_end, r.to_source.as_str()) {
                (false, _) => "then a GAP".to_owned(),
                (true, "commit") => "newest commit".to_owned(),
                (true, "archived") => "newest WAL archived".to_owned(),
                (true, _) => "at least".to_owned(),
            };
            let _ = write!(
                b,
                "<tr class=\"range\"><td>{}</td><td>{}</td><td>{} ({})</td><td>{}</td></tr>",
                esc(&t.timeline),
                fmt::time(r.from),
                fmt::time(r.to),
                esc(&to),
                r.backups
                    .iter()
                    .map(|i| format!("<code>{}</code>", esc(i)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        for g in &t.gaps {
            let _ = write!(
                b,
                "<tr class=\"failed gap\"><td>{}</td><td colspan=\"2\">GAP: {} segment(s) \
                 missing, <code>{}</code> to <code>{}</code> (WAL {} to {}){}</td><td>{}</td></tr>",
                esc(&t.timeline),
                g.missing,
                esc(&g.first_missing),
                esc(&g.last_missing),
                esc(&g.start_lsn),
                esc(&g.end_lsn),
                match (g.after, g.until) {
                    (Some(a), Some(u)) =>
                        format!(": nothing between {} and {}", fmt::time(a), fmt::time(u)),
                    (Some(a), None) =>
                        format!(": nothing after {} (no base backup after it)", fmt::time(a)),
                    _ => String::new(),
                },
                if g.affects.is_empty() {
                    String::new()
                } else {
                    format!(
                        "restores from {} stop before it",
                        g.affects
                            .iter()
                            .map(|i| format!("<code>{}</code>", esc(i)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            );
        }
        for u in &t.unrecoverable {
            let _ = write!(
                b,
                "<tr class=\"failed\"><td>{}</td><td colspan=\"2\">UNUSABLE: its own WAL is \
                 not archived</td><td><code>{}</code></td></tr>",
                esc(&t.timeline),
                esc(u)
            );
        }
    }
    b.push_str("</tbody></table></figure>");
}

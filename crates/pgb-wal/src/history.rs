//! Timeline history files (`00000003.history`): where each ancestor of a timeline forked.
//!
//! One line per ancestor, oldest first: `parentTLI<TAB>switchpoint<TAB>reason`, e.g.
//! `1⇥0/3000158⇥no recovery target specified` (⇥ a tab). The parent timeline holds the WAL
//! before the switch point; the next line's timeline (or, for the last line, the file's own)
//! holds it from there. Blank lines and lines starting with `#` are ignored, as PostgreSQL's
//! `readTimeLineHistory` does. Timeline 1 has no history file: [`TimelineHistory::root`].

use crate::names::{InvalidLsn, Lsn, TimelineId};

/// One ancestor: `parent` held the WAL up to (not including) `switch_point`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HistoryEntry {
    /// The ancestor timeline.
    pub parent: TimelineId,
    /// The first position no longer on `parent`.
    pub switch_point: Lsn,
    /// Why the timeline forked, as PostgreSQL wrote it (e.g. `before 2024-05-01 12:00:00+00`).
    pub reason: String,
}

/// A timeline and its ancestry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TimelineHistory {
    /// The timeline this history leads to (the file's name).
    pub timeline: TimelineId,
    /// Its ancestors, oldest first.
    pub entries: Vec<HistoryEntry>,
}

/// A history file PostgreSQL would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidHistory {
    /// A line without a numeric timeline first.
    #[error("line {line}: expected a numeric timeline ID")]
    BadTimeline {
        /// 1-based line number.
        line: usize,
    },
    /// A line without a switch point after the timeline.
    #[error("line {line}: expected a write-ahead log switchpoint location: {source}")]
    BadSwitchPoint {
        /// 1-based line number.
        line: usize,
        /// What was wrong with it.
        source: InvalidLsn,
    },
    /// Timelines not increasing, or not below the file's own.
    #[error(
        "line {line}: timeline {found} must be greater than the line before's and less than \
         the history's own timeline {timeline}"
    )]
    OutOfSequence {
        /// 1-based line number.
        line: usize,
        /// The line's timeline.
        found: TimelineId,
        /// The file's timeline.
        timeline: TimelineId,
    },
    /// A switch point before the previous one (a child forks after its parent began).
    #[error("line {line}: switch point {found} is before the previous line's {previous}")]
    SwitchPointBackwards {
        /// 1-based line number.
        line: usize,
        /// The line's switch point.
        found: Lsn,
        /// The previous line's.
        previous: Lsn,
    },
}

impl TimelineHistory {
    /// The history of a timeline with no ancestors (timeline 1, which has no file).
    pub fn root(timeline: TimelineId) -> Self {
        Self {
            timeline,
            entries: Vec::new(),
        }
    }

    /// Parses the history file of `timeline`.
    pub fn parse(timeline: TimelineId, text: &str) -> Result<Self, InvalidHistory> {
        let mut entries: Vec<HistoryEntry> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let l = raw.trim_start();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let digits = l.bytes().take_while(u8::is_ascii_digit).count();
            let parent: TimelineId = l[..digits]
                .parse()
                .map_err(|_| InvalidHistory::BadTimeline { line })?;
            let rest = l[digits..].trim_start();
            let (lsn, reason) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            let switch_point: Lsn = lsn
                .parse()
                .map_err(|source| InvalidHistory::BadSwitchPoint { line, source })?;
            if entries.last().is_some_and(|e| parent <= e.parent) || parent >= timeline {
                return Err(InvalidHistory::OutOfSequence {
                    line,
                    found: parent,
                    timeline,
                });
            }
            if let Some(prev) = entries.last()
                && switch_point < prev.switch_point
            {
                return Err(InvalidHistory::SwitchPointBackwards {
                    line,
                    found: switch_point,
                    previous: prev.switch_point,
                });
            }
            entries.push(HistoryEntry {
                parent,
                switch_point,
                reason: reason.trim().to_owned(),
            });
        }
        Ok(Self { timeline, entries })
    }

    /// The history file's text, as PostgreSQL writes it.
    pub fn to_text(&self) -> String {
        self.entries
            .iter()
            .map(|e| format!("{}\t{}\t{}\n", e.parent, e.switch_point, e.reason))
            .collect()
    }

    /// Which timeline holds position `lsn` on the way to this history's timeline (PostgreSQL's
    /// `tliOfPointInHistory`): the first ancestor whose switch point is after `lsn`, else the
    /// history's own timeline.
    pub fn timeline_at(&self, lsn: Lsn) -> TimelineId {
        self.entries
            .iter()
            .find(|e| lsn < e.switch_point)
            .map_or(self.timeline, |e| e.parent)
    }

    /// Whether the WAL of `timeline` at `lsn` is part of this history: recovery following it
    /// to [`timeline`](Self::timeline) replays that position from that timeline.
    pub fn leads_to(&self, timeline: TimelineId, lsn: Lsn) -> bool {
        self.timeline_at(lsn) == timeline
    }

    /// The range of positions `timeline` holds on this history: from (inclusive) and, except
    /// for the history's own timeline, to (exclusive). `None` for a timeline not on it.
    pub fn range_of(&self, timeline: TimelineId) -> Option<(Lsn, Option<Lsn>)> {
        let mut begin = Lsn(0);
        for e in &self.entries {
            if e.parent == timeline {
                return Some((begin, Some(e.switch_point)));
            }
            begin = e.switch_point;
        }
        (timeline == self.timeline).then_some((begin, None))
    }

    /// Where `timeline` ends on this history (its switch point); `None` for the history's own
    /// timeline or one not on it.
    pub fn switch_point(&self, timeline: TimelineId) -> Option<Lsn> {
        self.range_of(timeline).and_then(|(_, end)| end)
    }

    /// Every timeline on this history, oldest first, ending with its own.
    pub fn timelines(&self) -> Vec<TimelineId> {
        let mut t: Vec<_> = self.entries.iter().map(|e| e.parent).collect();
        t.push(self.timeline);
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lsn(s: &str) -> Lsn {
        s.parse().unwrap()
    }

    const THREE: &str = "1\t0/3000158\tno recovery target specified\n\n\
                         # a comment\n\
                         2\t0/5000000\tbefore 2024-05-01 12:00:00+00\n";

    #[test]
    fn parses_what_postgres_writes() {
        let h = TimelineHistory::parse(3, THREE).unwrap();
        assert_eq!(h.timeline, 3);
        assert_eq!(h.entries.len(), 2);
        assert_eq!(h.entries[0].parent, 1);
        assert_eq!(h.entries[0].switch_point, lsn("0/3000158"));
        assert_eq!(h.entries[0].reason, "no recovery target specified");
        assert_eq!(h.entries[1].reason, "before 2024-05-01 12:00:00+00");
        assert_eq!(h.timelines(), [1, 2, 3]);
        assert_eq!(
            TimelineHistory::parse(3, &h.to_text()).unwrap(),
            h,
            "written back, it reads the same"
        );
    }

    #[test]
    fn which_timeline_holds_a_position() {
        let h = TimelineHistory::parse(3, THREE).unwrap();
        assert_eq!(h.timeline_at(lsn("0/0")), 1);
        assert_eq!(h.timeline_at(lsn("0/3000157")), 1);
        assert_eq!(h.timeline_at(lsn("0/3000158")), 2);
        assert_eq!(h.timeline_at(lsn("0/4FFFFFF")), 2);
        assert_eq!(h.timeline_at(lsn("0/5000000")), 3);
        assert_eq!(h.timeline_at(lsn("9/0")), 3);
        assert!(h.leads_to(1, lsn("0/1000000")));
        assert!(!h.leads_to(1, lsn("0/4000000")), "timeline 1 past its fork");
        assert!(h.leads_to(2, lsn("0/4000000")));
        assert!(!h.leads_to(4, lsn("0/6000000")));
        assert_eq!(h.range_of(1), Some((lsn("0/0"), Some(lsn("0/3000158")))));
        assert_eq!(
            h.range_of(2),
            Some((lsn("0/3000158"), Some(lsn("0/5000000"))))
        );
        assert_eq!(h.range_of(3), Some((lsn("0/5000000"), None)));
        assert_eq!(h.range_of(4), None);
        assert_eq!(h.switch_point(2), Some(lsn("0/5000000")));
        assert_eq!(h.switch_point(3), None);
        let root = TimelineHistory::root(1);
        assert_eq!(root.timeline_at(lsn("5/0")), 1);
        assert_eq!(root.range_of(1), Some((Lsn(0), None)));
    }

    #[test]
    fn refuses_what_postgres_refuses() {
        let e = TimelineHistory::parse(3, "x\t0/1\tr\n").unwrap_err();
        assert_eq!(e, InvalidHistory::BadTimeline { line: 1 });
        let e = TimelineHistory::parse(3, "1\n").unwrap_err();
        assert!(
            matches!(e, InvalidHistory::BadSwitchPoint { line: 1, .. }),
            "{e}"
        );
        let e = TimelineHistory::parse(3, "2\t0/1\tr\n1\t0/2\tr\n").unwrap_err();
        assert!(
            matches!(e, InvalidHistory::OutOfSequence { line: 2, .. }),
            "{e}"
        );
        let e = TimelineHistory::parse(2, "2\t0/1\tr\n").unwrap_err();
        assert!(
            matches!(e, InvalidHistory::OutOfSequence { line: 1, .. }),
            "{e}"
        );
        let e = TimelineHistory::parse(3, "1\t0/5\tr\n2\t0/4\tr\n").unwrap_err();
        assert!(
            matches!(e, InvalidHistory::SwitchPointBackwards { line: 2, .. }),
            "{e}"
        );
        // No reason is allowed (PostgreSQL reads only the first two fields).
        let h = TimelineHistory::parse(2, "  1\t0/5\n").unwrap();
        assert_eq!(h.entries[0].reason, "");
    }
}

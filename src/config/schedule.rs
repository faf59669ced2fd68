//! When an algorithm is on duty: a list of weekly windows in the node's local time, such as
//! `"Mon-Fri 07:00-22:00"`, `"Sat,Sun 09:00-18:00"` or `"Daily 22:00-06:00"` (a window whose end
//! is before its start runs past midnight into the next day). No windows: always on.

use std::time::SystemTime;

use chrono::{DateTime, Datelike, Local, Timelike};

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MINUTES_A_DAY: u32 = 24 * 60;

/// One weekly window: the days it starts on and its minutes of the day.
#[derive(Debug, Clone, PartialEq)]
struct Window {
    /// Indexed Monday = 0.
    days: [bool; 7],
    start: u32,
    end: u32,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Schedule {
    windows: Vec<Window>,
}

impl Schedule {
    /// Parses the windows; the error names the window and what is wrong with it.
    pub fn parse(windows: &[String]) -> Result<Schedule, String> {
        let windows = windows.iter().map(|w| parse_window(w)).collect::<Result<_, _>>()?;
        Ok(Schedule { windows })
    }

    /// Whether `at`, in the node's local time, falls in a window.
    pub fn is_open(&self, at: SystemTime) -> bool {
        let local: DateTime<Local> = at.into();
        let weekday = local.weekday().num_days_from_monday() as usize;
        self.is_open_at(weekday, local.hour() * 60 + local.minute())
    }

    /// Whether minute `minute` of weekday `weekday` (Monday = 0) falls in a window.
    fn is_open_at(&self, weekday: usize, minute: u32) -> bool {
        let yesterday = (weekday + 6) % 7;
        self.windows.is_empty()
            || self.windows.iter().any(|w| {
                if w.start < w.end {
                    w.days[weekday] && (w.start..w.end).contains(&minute)
                } else {
                    // Overnight: the evening part on its own days, the morning part the day after.
                    (w.days[weekday] && minute >= w.start) || (w.days[yesterday] && minute < w.end)
                }
            })
    }
}

fn parse_window(text: &str) -> Result<Window, String> {
    let bad = |why: &str| format!("`{text}`: {why}; expected e.g. \"Mon-Fri 07:00-22:00\"");
    let (days, hours) = text.trim().split_once(' ').ok_or_else(|| bad("no time range"))?;
    let (start, end) = hours.trim().split_once('-').ok_or_else(|| bad("no time range"))?;
    let start = parse_minute(start).ok_or_else(|| bad("bad start time"))?;
    let end = parse_minute(end).ok_or_else(|| bad("bad end time"))?;
    if start == end {
        return Err(bad("the window is empty"));
    }
    Ok(Window { days: parse_days(days).ok_or_else(|| bad("bad days"))?, start, end })
}

/// `Mon-Fri`, `Sat,Sun`, `Wed`, `Daily`.
fn parse_days(text: &str) -> Option<[bool; 7]> {
    let mut days = [false; 7];
    if text.eq_ignore_ascii_case("daily") {
        return Some([true; 7]);
    }
    for part in text.split(',') {
        let index = |d: &str| DAYS.iter().position(|n| n.eq_ignore_ascii_case(d.trim()));
        match part.split_once('-') {
            Some((from, to)) => {
                let (from, to) = (index(from)?, index(to)?);
                // Ranges may wrap the week: Fri-Mon.
                let mut day = from;
                loop {
                    days[day] = true;
                    if day == to {
                        break;
                    }
                    day = (day + 1) % 7;
                }
            }
            None => days[index(part)?] = true,
        }
    }
    Some(days)
}

/// `HH:MM` as minutes of the day; `24:00` is the end of the day.
fn parse_minute(text: &str) -> Option<u32> {
    let (h, m) = text.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    let minute = h * 60 + m;
    (m < 60 && minute <= MINUTES_A_DAY).then_some(minute)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(windows: &[&str]) -> Schedule {
        Schedule::parse(&windows.iter().map(|w| w.to_string()).collect::<Vec<_>>()).unwrap()
    }

    const MON: usize = 0;
    const FRI: usize = 4;
    const SAT: usize = 5;
    const SUN: usize = 6;

    #[test]
    fn weekday_window_opens_and_closes_on_the_minute() {
        let s = schedule(&["Mon-Fri 07:00-22:00"]);
        assert!(!s.is_open_at(MON, 6 * 60 + 59));
        assert!(s.is_open_at(MON, 7 * 60));
        assert!(s.is_open_at(FRI, 21 * 60 + 59));
        assert!(!s.is_open_at(FRI, 22 * 60));
        assert!(!s.is_open_at(SAT, 12 * 60));
    }

    #[test]
    fn overnight_window_runs_into_the_next_day() {
        let s = schedule(&["Fri 22:00-06:00"]);
        assert!(s.is_open_at(FRI, 23 * 60));
        assert!(s.is_open_at(SAT, 5 * 60 + 59));
        assert!(!s.is_open_at(SAT, 6 * 60));
        assert!(!s.is_open_at(FRI, 5 * 60), "the morning part belongs to the day before");
    }

    #[test]
    fn lists_wrapping_ranges_daily_and_no_windows() {
        assert!(schedule(&["Sat,Sun 09:00-18:00"]).is_open_at(SUN, 10 * 60));
        assert!(schedule(&["Fri-Mon 00:00-24:00"]).is_open_at(SUN, 0));
        assert!(!schedule(&["Fri-Mon 00:00-24:00"]).is_open_at(2, 0));
        assert!(schedule(&["Daily 12:00-13:00"]).is_open_at(3, 12 * 60 + 30));
        assert!(schedule(&[]).is_open_at(MON, 0), "no windows: always on");
        assert!(schedule(&["Mon 01:00-02:00", "Tue 01:00-02:00"]).is_open_at(1, 90));
    }

    #[test]
    fn mistakes_name_the_window() {
        for bad in
            ["Mon-Fri", "Mon-Fri 7-22", "Moon 07:00-08:00", "Mon 07:00-07:00", "Mon 25:00-26:00"]
        {
            let e = Schedule::parse(&[bad.to_string()]).unwrap_err();
            assert!(e.starts_with(&format!("`{bad}`")), "{e}");
        }
    }
}

//! CronJob schedules as Kubernetes reads them (robfig/cron's standard parser): five fields —
//! minute, hour, day of month, month (or `jan`…), day of week (0-7 or `sun`…, 7 is Sunday) —
//! with `*`, `?`, lists, ranges and steps; or a descriptor (`@hourly`, `@daily`/`@midnight`,
//! `@weekly`, `@monthly`, `@yearly`/`@annually`, `@every <duration>`). When both day fields are
//! restricted a day matches either, as in cron.
//!
//! Times are matched in the CronJob's `timeZone` (the host's zone database), UTC by default.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Five fields: the allowed values of each (bit sets).
    Fields {
        minutes: u64,
        hours: u32,
        days: u32,
        months: u16,
        weekdays: u8,
        /// Day of month was `*` (or `?`).
        any_day: bool,
        /// Day of week was `*` (or `?`).
        any_weekday: bool,
    },
    /// `@every <duration>`: a fixed interval (seconds).
    Every(i64),
}

const MONTHS: &[&str] = &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// One field's allowed values, as a bit set; whether it was `*`.
fn field(f: &str, lo: u32, hi: u32, names: &[&str], base: u32) -> Result<(u64, bool), String> {
    let mut bits = 0u64;
    let mut star = false;
    for part in f.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, st)) => (r, Some(st)),
            None => (part, None),
        };
        let step = match step {
            Some(st) => match st.parse::<u32>() {
                Ok(n) if n > 0 => n,
                _ => return Err(format!("failed to parse int from {st}")),
            },
            None => 1,
        };
        let value = |x: &str| -> Result<u32, String> {
            if let Some(i) = names.iter().position(|n| x.eq_ignore_ascii_case(n)) {
                return Ok(i as u32 + base);
            }
            let n: u32 = x.parse().map_err(|_| format!("failed to parse int from {x}"))?;
            if n < lo {
                return Err(format!("beginning of range ({n}) below minimum ({lo}): {f}"));
            }
            if n > hi {
                return Err(format!("end of range ({n}) above maximum ({hi}): {f}"));
            }
            Ok(n)
        };
        let (a, b) = if range == "*" || range == "?" {
            if step == 1 {
                star = true;
            }
            (lo, hi)
        } else {
            match range.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (value(a)?, value(b)?);
                    if a > b {
                        return Err(format!("beginning of range ({a}) beyond end of range ({b}): {f}"));
                    }
                    (a, b)
                }
                // `N/step` runs from N to the end, as robfig reads it.
                None if step > 1 => (value(range)?, hi),
                None => {
                    let v = value(range)?;
                    (v, v)
                }
            }
        };
        let mut v = a;
        while v <= b {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, star))
}

/// A Go duration of `@every` (`1h30m`, `90s`): seconds.
fn every(d: &str) -> Option<i64> {
    let mut total = 0f64;
    let mut num = String::new();
    let mut any = false;
    let mut chars = d.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if (c == 'm' || c == 'u' || c == 'n') && chars.peek() == Some(&'s') {
            unit.push(chars.next()?);
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        total += n * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        any = true;
    }
    (any && num.is_empty() && total >= 1.0).then_some(total as i64)
}

impl Schedule {
    /// Parse a schedule; the error as the real server words it.
    pub fn parse(s: &str) -> Result<Schedule, String> {
        let s = s.trim();
        if s.starts_with("TZ=") || s.starts_with("CRON_TZ=") {
            return Err("cannot use TZ or CRON_TZ in schedule, use timeZone field instead".into());
        }
        let expanded = match s.strip_prefix('@') {
            Some("yearly" | "annually") => "0 0 1 1 *",
            Some("monthly") => "0 0 1 * *",
            Some("weekly") => "0 0 * * 0",
            Some("daily" | "midnight") => "0 0 * * *",
            Some("hourly") => "0 * * * *",
            Some(m) if m.starts_with("every ") => {
                let d = m["every ".len()..].trim();
                return every(d)
                    .map(Schedule::Every)
                    .ok_or_else(|| format!("failed to parse duration @every {d}"));
            }
            Some(m) => return Err(format!("unrecognized descriptor: @{m}")),
            None => s,
        };
        let f: Vec<&str> = expanded.split_whitespace().collect();
        if f.len() != 5 {
            return Err(format!("expected exactly 5 fields, found {}: {s}", f.len()));
        }
        let (minutes, _) = field(f[0], 0, 59, &[], 0)?;
        let (hours, _) = field(f[1], 0, 23, &[], 0)?;
        let (days, any_day) = field(f[2], 1, 31, &[], 0)?;
        let (months, _) = field(f[3], 1, 12, MONTHS, 1)?;
        let (mut weekdays, any_weekday) = field(f[4], 0, 7, DAYS, 0)?;
        // 7 is Sunday too.
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(Schedule::Fields {
            minutes,
            hours: hours as u32,
            days: days as u32,
            months: months as u16,
            weekdays: (weekdays & 0x7f) as u8,
            any_day,
            any_weekday,
        })
    }

    fn matches(&self, t: DateTime) -> bool {
        let Schedule::Fields {
            minutes,
            hours,
            days,
            months,
            weekdays,
            any_day,
            any_weekday,
        } = self
        else {
            return false;
        };
        let dom = days & (1 << t.day()) != 0;
        let dow = weekdays & (1 << t.weekday().to_sunday_zero_offset()) != 0;
        let day = if *any_day || *any_weekday { dom && dow } else { dom || dow };
        minutes & (1 << t.minute()) != 0 && hours & (1 << t.hour()) != 0 && months & (1 << t.month()) != 0 && day
    }

    /// The scheduled times after `after` up to `until` (in `tz`): the latest, and how many
    /// there were. Scans at most a year of minutes.
    pub fn missed(&self, after: Timestamp, until: Timestamp, tz: &TimeZone) -> (Option<Timestamp>, u64) {
        if let Schedule::Every(secs) = self {
            let span = until.as_second() - after.as_second();
            if span < *secs {
                return (None, 0);
            }
            let n = span / secs;
            return (Timestamp::from_second(after.as_second() + n * secs).ok(), n as u64);
        }
        // From the first whole minute after `after`.
        let mut t = Timestamp::from_second((after.as_second() / 60 + 1) * 60).unwrap_or(after);
        let limit = Timestamp::from_second(until.as_second().min(after.as_second() + 366 * 86400)).unwrap_or(until);
        let (mut last, mut n) = (None, 0);
        while t <= limit {
            if self.matches(t.to_zoned(tz.clone()).datetime()) {
                last = Some(t);
                n += 1;
            }
            t = match Timestamp::from_second(t.as_second() + 60) {
                Ok(x) => x,
                Err(_) => break,
            };
        }
        (last, n)
    }

    /// The next scheduled time after `after` (in `tz`), within a year.
    pub fn next(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        if let Schedule::Every(secs) = self {
            return Timestamp::from_second(after.as_second() + secs).ok();
        }
        let mut t = Timestamp::from_second((after.as_second() / 60 + 1) * 60).ok()?;
        for _ in 0..366 * 24 * 60 {
            if self.matches(t.to_zoned(tz.clone()).datetime()) {
                return Some(t);
            }
            t = Timestamp::from_second(t.as_second() + 60).ok()?;
        }
        None
    }
}

/// A CronJob's time zone: `timeZone` from the host's zone database, UTC when unset.
pub fn zone(name: Option<&str>) -> Result<TimeZone, String> {
    match name {
        None | Some("UTC") | Some("Etc/UTC") => Ok(TimeZone::UTC),
        Some("Local") => Ok(TimeZone::system()),
        Some(n) => TimeZone::get(n).map_err(|e| format!("unknown time zone {n}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn schedules_parse_and_match_as_cron_does() {
        assert_eq!(
            Schedule::parse("0 25 * * *").unwrap_err(),
            "end of range (25) above maximum (23): 25"
        );
        assert!(Schedule::parse("TZ=UTC 0 * * * *").is_err());
        assert!(Schedule::parse("@reboot").is_err());
        let s = Schedule::parse("*/15 9-17 * * mon-fri").unwrap();
        let utc = TimeZone::UTC;
        // Monday 2026-12-07 08:50 UTC: the next is 09:00, then every 15 minutes.
        assert_eq!(s.next(at("2026-12-07T08:50:00Z"), &utc), Some(at("2026-12-07T09:00:00Z")));
        assert_eq!(s.next(at("2026-12-07T09:00:00Z"), &utc), Some(at("2026-12-07T09:15:00Z")));
        // Friday evening: Monday morning.
        assert_eq!(s.next(at("2026-12-11T17:50:00Z"), &utc), Some(at("2026-12-14T09:00:00Z")));
        let (last, n) = s.missed(at("2026-12-07T08:59:00Z"), at("2026-12-07T10:01:00Z"), &utc);
        assert_eq!((last, n), (Some(at("2026-12-07T10:00:00Z")), 5));
        // Both day fields restricted: either matches (the 1st, or any Sunday).
        let s = Schedule::parse("0 0 1 * sun").unwrap();
        assert_eq!(s.next(at("2026-12-01T00:00:00Z"), &utc), Some(at("2026-12-06T00:00:00Z")));
        assert_eq!(Schedule::parse("@every 90s").unwrap(), Schedule::Every(90));
        assert_eq!(Schedule::parse("@daily").unwrap(), Schedule::parse("0 0 * * *").unwrap());
        assert_eq!(Schedule::parse("0 0 * * 7").unwrap(), Schedule::parse("0 0 * * 0").unwrap());
    }

    #[test]
    fn time_zones_shift_the_schedule() {
        let Ok(ny) = zone(Some("America/New_York")) else { return };
        let s = Schedule::parse("0 9 * * *").unwrap();
        // 09:00 in New York in December is 14:00 UTC.
        assert_eq!(s.next(at("2026-12-07T00:00:00Z"), &ny), Some(at("2026-12-07T14:00:00Z")));
        assert!(zone(Some("Mars/Olympus")).is_err());
    }
}

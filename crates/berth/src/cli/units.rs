//! Sizes, durations and times, parsed and printed the way the docker CLI (go-units) does.

use anyhow::{anyhow, bail, Result};
use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// Go's `%.{prec}g` formatting of a float.
pub fn go_g(x: f64, prec: usize) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let prec = prec.max(1);
    let e = format!("{:.*e}", prec - 1, x);
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= prec as i32 {
        let m = trim_zeros(mant);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (prec as i32 - 1 - exp).max(0) as usize;
        trim_zeros(&format!("{x:.decimals$}")).to_string()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// Go's `%v` for a float64 (shortest representation, exponent at 1e21 and below 1e-4).
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if f == 0.0 {
        return "0".into();
    }
    let e = format!("{f:e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..21).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    }
}

const DECIMAL: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
const BINARY: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];

fn custom_size(size: f64, prec: usize, base: f64, units: &[&str]) -> String {
    let mut size = size;
    let mut i = 0;
    while size >= base && i < units.len() - 1 {
        size /= base;
        i += 1;
    }
    format!("{}{}", go_g(size, prec), units[i])
}

/// go-units `HumanSizeWithPrecision`: decimal units ("4.26MB").
pub fn human_size_prec(size: f64, prec: usize) -> String {
    custom_size(size, prec, 1000.0, &DECIMAL)
}

/// go-units `BytesSize`: binary units ("1.5GiB").
pub fn bytes_size(size: f64) -> String {
    custom_size(size, 4, 1024.0, &BINARY)
}

/// go-units `RAMInBytes`: "64m", "1.5g", "512k", "100" (bytes), binary multiples. "-1" gives -1.
/// (The same parser compose files use.)
pub fn parse_size(s: &str) -> Result<i64> {
    compose::units::parse_size(s).map_err(|e| anyhow!(e))
}

/// `--cpus 1.5` → NanoCpus.
pub fn parse_cpus(s: &str) -> Result<i64> {
    let f: f64 = s
        .trim()
        .parse()
        .map_err(|_| anyhow!("invalid argument {s:?} for \"--cpus\" flag"))?;
    if f < 0.0 || !f.is_finite() {
        bail!("invalid argument {s:?} for \"--cpus\" flag: must be non-negative");
    }
    Ok((f * 1e9).round() as i64)
}

/// Go `time.ParseDuration` ("1h30m", "10s", "1.5h", "300ms"), in seconds.
pub fn parse_go_duration(s: &str) -> Result<f64> {
    compose::units::parse_duration(s).map_err(|e| anyhow!(e))
}

/// docker's `GetTimestamp` for `--since`/`--until`: a Go duration relative to now, an RFC 3339 time
/// (or a date), or a unix timestamp, as the "seconds.nanoseconds" string the API takes.
pub fn parse_timestamp(value: &str, now: DateTime<Utc>) -> Result<String> {
    if let Ok(d) = parse_go_duration(value) {
        if !value.chars().all(|c| c.is_ascii_digit() || c == '.') {
            let t = now.timestamp() as f64 + now.timestamp_subsec_nanos() as f64 / 1e9 - d;
            return Ok(fmt_ts(t.floor() as i64, ((t - t.floor()) * 1e9) as u32));
        }
    }
    if value.chars().all(|c| c.is_ascii_digit() || c == '.') && !value.is_empty() {
        return Ok(value.to_string());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(fmt_ts(t.timestamp(), t.timestamp_subsec_nanos()));
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(value, f) {
            if let Some(t) = Local.from_local_datetime(&n).single() {
                return Ok(fmt_ts(t.timestamp(), t.timestamp_subsec_nanos()));
            }
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        if let Some(t) = d.and_hms_opt(0, 0, 0).and_then(|n| Local.from_local_datetime(&n).single()) {
            return Ok(fmt_ts(t.timestamp(), 0));
        }
    }
    bail!("invalid value for timestamp: {value:?}")
}

fn fmt_ts(secs: i64, nanos: u32) -> String {
    format!("{secs}.{nanos:09}")
}

pub use engine::units::human_duration;

/// "5 seconds ago" for a unix timestamp.
pub fn ago(unix: i64) -> String {
    let now = Utc::now().timestamp_millis() as f64 / 1000.0;
    format!("{} ago", human_duration((now - unix as f64).max(0.0)))
}

/// Go's `time.Time.String()` for a unix time, in local time ("2024-01-02 15:04:05 +0000 UTC").
pub fn go_time(unix: i64) -> String {
    let Some(t) = Local.timestamp_opt(unix, 0).single() else {
        return String::new();
    };
    let off = t.offset().local_minus_utc();
    let zone = if off == 0 { "UTC".to_string() } else { t.format("%z").to_string() };
    format!("{} {}", t.format("%Y-%m-%d %H:%M:%S %z"), zone)
}

/// docker's `Ellipsis`: shorten to `max` characters, the last one being "…".
pub fn ellipsis(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// Strip "sha256:" and keep 12 characters (docker's `TruncateID`).
pub fn short_id(id: &str) -> String {
    let id = id.split_once(':').map_or(id, |(_, h)| h);
    id.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64m").unwrap(), 64 * 1024 * 1024);
        assert_eq!(parse_size("64MB").unwrap(), 64 * 1024 * 1024);
        assert_eq!(parse_size("1.5g").unwrap(), 1536 * 1024 * 1024);
        assert_eq!(parse_size("512k").unwrap(), 512 * 1024);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert_eq!(parse_size("100b").unwrap(), 100);
        assert_eq!(parse_size("2GiB").unwrap(), 2 * 1024 * 1024 * 1024);
        assert_eq!(parse_size("-1").unwrap(), -1);
        assert!(parse_size("12x").is_err());
        assert!(parse_size("m").is_err());
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_cpus("1.5").unwrap(), 1_500_000_000);
        assert_eq!(parse_cpus("0.25").unwrap(), 250_000_000);
        assert_eq!(parse_cpus("2").unwrap(), 2_000_000_000);
        assert!(parse_cpus("abc").is_err());
        assert!(parse_cpus("-1").is_err());
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_size_prec(4_261_234.0, 3), "4.26MB");
        assert_eq!(human_size_prec(0.0, 3), "0B");
        assert_eq!(human_size_prec(123.0, 3), "123B");
        assert_eq!(human_size_prec(1_000.0, 3), "1kB");
        assert_eq!(human_size_prec(999.9, 3), "1e+03B");
        assert_eq!(human_size_prec(1_234_567_890.0, 4), "1.235GB");
        assert_eq!(bytes_size(1024.0 * 1024.0 * 1.5), "1.5MiB");
        assert_eq!(bytes_size(7_864_320.0), "7.5MiB");
        assert_eq!(bytes_size(100.0), "100B");
    }

    #[test]
    fn go_formatting() {
        assert_eq!(go_g(4.261234, 3), "4.26");
        assert_eq!(go_g(100.0, 3), "100");
        assert_eq!(go_g(0.000012345, 3), "1.23e-05");
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(100000.0), "100000");
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(0.5), "Less than a second");
        assert_eq!(human_duration(1.0), "1 second");
        assert_eq!(human_duration(5.0), "5 seconds");
        assert_eq!(human_duration(60.0), "About a minute");
        assert_eq!(human_duration(119.0), "About a minute");
        assert_eq!(human_duration(120.0), "2 minutes");
        assert_eq!(human_duration(3600.0), "About an hour");
        assert_eq!(human_duration(3.0 * 3600.0), "3 hours");
        assert_eq!(human_duration(3.0 * 86400.0), "3 days");
        assert_eq!(human_duration(21.0 * 86400.0), "3 weeks");
        assert_eq!(human_duration(90.0 * 86400.0), "3 months");
        assert_eq!(human_duration(3.0 * 365.0 * 86400.0), "3 years");
    }

    #[test]
    fn go_durations_and_timestamps() {
        assert_eq!(parse_go_duration("10s").unwrap(), 10.0);
        assert_eq!(parse_go_duration("1h30m").unwrap(), 5400.0);
        assert_eq!(parse_go_duration("1.5h").unwrap(), 5400.0);
        assert_eq!(parse_go_duration("300ms").unwrap(), 0.3);
        assert!(parse_go_duration("10").is_err());
        assert!(parse_go_duration("abc").is_err());
        let now = DateTime::parse_from_rfc3339("2024-01-01T00:10:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(parse_timestamp("10m", now).unwrap(), "1704067200.000000000");
        assert_eq!(parse_timestamp("1704067200", now).unwrap(), "1704067200");
        assert_eq!(parse_timestamp("2024-01-01T00:00:00Z", now).unwrap(), "1704067200.000000000");
        assert!(parse_timestamp("yesterday", now).is_err());
    }

    #[test]
    fn text() {
        assert_eq!(ellipsis("sh -c 'while true; do echo hi; done'", 20), "sh -c 'while true; …");
        assert_eq!(ellipsis("short", 20), "short");
        assert_eq!(short_id("sha256:0123456789abcdef0123"), "0123456789ab");
        assert_eq!(short_id("0123456789abcdef0123"), "0123456789ab");
    }
}

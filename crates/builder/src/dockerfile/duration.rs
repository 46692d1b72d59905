//! Durations as `HEALTHCHECK` flags write them (Go's `time.ParseDuration` syntax: `30s`, `1m30s`,
//! `1.5h`, `250ms`).

use std::time::Duration;

/// Parse a Go-style duration: a sequence of decimal numbers with a unit each (`ns`, `us`/`µs`, `ms`,
/// `s`, `m`, `h`), or a bare `0`. Negative durations are refused.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration {text:?}");
    let (negative, mut s) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, rest) = s.split_at(int_len);
        s = rest;
        let mut frac_part = "";
        if let Some(rest) = s.strip_prefix('.') {
            let frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            (frac_part, s) = rest.split_at(frac_len);
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = s.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(s.len());
        let (unit, rest) = s.split_at(unit_len);
        s = rest;
        let nanos_per_unit: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("missing unit in duration {text:?}")),
            _ => return Err(format!("unknown unit {unit:?} in duration {text:?}")),
        };
        let mut value: u128 = 0;
        for d in int_part.bytes() {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u128::from(d - b'0')))
                .ok_or_else(invalid)?;
        }
        value = value.checked_mul(nanos_per_unit).ok_or_else(invalid)?;
        // Digits past the 20th cannot change a nanosecond count that fits in 64 bits.
        let frac_part = &frac_part[..frac_part.len().min(20)];
        if !frac_part.is_empty() {
            let digits: u128 = frac_part.bytes().fold(0, |acc, d| acc * 10 + u128::from(d - b'0'));
            let scale = 10u128.pow(frac_part.len() as u32);
            value += digits * nanos_per_unit / scale;
        }
        total = total.checked_add(value).ok_or_else(invalid)?;
        if total > i64::MAX as u128 {
            return Err(invalid());
        }
    }
    if negative && total != 0 {
        return Err(format!("negative duration {text:?}"));
    }
    Ok(Duration::from_nanos(total as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        let ms = Duration::from_millis;
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("30s"), Ok(ms(30_000)));
        assert_eq!(parse_duration("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse_duration("1.5h"), Ok(ms(5_400_000)));
        assert_eq!(parse_duration(".5s"), Ok(ms(500)));
        assert_eq!(parse_duration("2.s"), Ok(ms(2000)));
        assert_eq!(parse_duration("250ms"), Ok(ms(250)));
        assert_eq!(parse_duration("10us"), Ok(Duration::from_micros(10)));
        assert_eq!(parse_duration("10µs"), Ok(Duration::from_micros(10)));
        assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_duration("+1h"), Ok(ms(3_600_000)));
        assert_eq!(parse_duration("-0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0.000000000000000000000001s"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_bad_durations() {
        assert_eq!(parse_duration("30"), Err("missing unit in duration \"30\"".into()));
        assert_eq!(parse_duration("3d"), Err("unknown unit \"d\" in duration \"3d\"".into()));
        assert_eq!(parse_duration("-1s"), Err("negative duration \"-1s\"".into()));
        for bad in [
            "",
            "s",
            ".s",
            "1..s",
            "-",
            "99999999999999999999h",
            "999999999999999999999999999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}

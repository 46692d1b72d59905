//! Sizes and durations as Docker writes them (go-units `RAMInBytes`, Go `time.ParseDuration`).
//! The `berth` CLI's flags use the same parsers.

/// "64m", "1.5g", "512k", "100" (bytes), binary multiples; "-1" is -1 (unlimited).
pub fn parse_size(s: &str) -> Result<i64, String> {
    let t = s.trim();
    if t == "-1" {
        return Ok(-1);
    }
    let num_end = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(num_end);
    let n: f64 = num.parse().map_err(|_| format!("invalid size: '{s}'"))?;
    let unit = unit.trim_start().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024f64.powi(2),
        "g" => 1024f64.powi(3),
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(format!("invalid size: '{s}'")),
    };
    Ok((n * mult) as i64)
}

/// Go `time.ParseDuration` ("1h30m", "10s", "1.5h", "300ms"), in seconds.
pub fn parse_duration(s: &str) -> Result<f64, String> {
    let bad = || format!("invalid duration {s:?}");
    let mut rest = s.trim();
    let neg = rest.starts_with('-');
    rest = rest.trim_start_matches(['-', '+']);
    if rest.is_empty() {
        return Err(bad());
    }
    if rest == "0" {
        return Ok(0.0);
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let n_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if n_end == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..n_end].parse().map_err(|_| bad())?;
        rest = &rest[n_end..];
        let u_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let mult = match &rest[..u_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        rest = &rest[u_end..];
        total += n * mult;
    }
    Ok(if neg { -total } else { total })
}

/// A device mapping as Docker writes it, `HOST[:CONTAINER[:PERMS]]` (PERMS some of `r`, `w`,
/// `m`; `HOST:PERMS` keeps the host path): host path, container path, permissions.
pub fn device_mapping(d: &str) -> Result<(String, String, String), String> {
    let parts: Vec<&str> = d.split(':').collect();
    let perms_ok = |p: &str| !p.is_empty() && p.chars().all(|c| "rwm".contains(c));
    let (host, inside, perms) = match parts[..] {
        [h] => (h, h, "rwm"),
        [h, p] if perms_ok(p) => (h, h, p),
        [h, c] => (h, c, "rwm"),
        [h, c, p] if perms_ok(p) => (h, c, p),
        _ => return Err(format!("invalid device specification: {d}")),
    };
    if !host.starts_with('/') || !inside.starts_with('/') {
        return Err(format!(
            "invalid device specification {d:?}: paths must be absolute (or a CDI name vendor.com/class=name)"
        ));
    }
    Ok((host.to_string(), inside.to_string(), perms.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("512m").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("12q").is_err());
        assert_eq!(parse_duration("1m30s").unwrap(), 90.0);
        assert_eq!(parse_duration("250ms").unwrap(), 0.25);
        assert!(parse_duration("5 minutes").is_err());
    }
}

//! Docker's human-readable units, shared by the Engine API (a container's `Status`) and the CLI
//! (`CREATED`, `STATUS` columns), so both say the same.

/// go-units' `HumanDuration`: "Less than a second", "3 seconds", "About a minute", "2 hours",
/// "3 days", "2 weeks", "4 months", "2 years".
pub fn human_duration(secs: f64) -> String {
    let seconds = secs as i64;
    let minutes = (secs / 60.0) as i64;
    let hours = (secs / 3600.0 + 0.5) as i64;
    if seconds < 1 {
        "Less than a second".into()
    } else if seconds == 1 {
        "1 second".into()
    } else if seconds < 60 {
        format!("{seconds} seconds")
    } else if minutes == 1 {
        "About a minute".into()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", (secs / 3600.0) as i64 / 24 / 365)
    }
}

#[cfg(test)]
mod tests {
    use super::human_duration;

    #[test]
    fn as_go_units_says_it() {
        for (secs, want) in [
            (0.5, "Less than a second"),
            (1.0, "1 second"),
            (59.0, "59 seconds"),
            (60.0, "About a minute"),
            (119.0, "About a minute"),
            (120.0, "2 minutes"),
            (3599.0, "59 minutes"),
            (3600.0, "About an hour"),
            (5400.0, "2 hours"),
            (47.0 * 3600.0, "47 hours"),
            (48.0 * 3600.0, "2 days"),
            (15.0 * 86400.0, "2 weeks"),
            (61.0 * 86400.0, "2 months"),
            (800.0 * 86400.0, "2 years"),
        ] {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }
}

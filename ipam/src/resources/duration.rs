//! Go's duration strings, as Calico's resources write them (`120s`, `2m`, `100ms`, `1m30s`,
//! `1.5s`), read into milliseconds.

/// Milliseconds in `s`, rounded up; `None` when it is not a duration.
pub fn millis(s: &str) -> Option<u64> {
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    let mut micros: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let scale = match &rest[..unit] {
            "h" => 3_600_000_000.0,
            "m" => 60_000_000.0,
            "s" => 1_000_000.0,
            "ms" => 1000.0,
            "us" | "µs" => 1.0,
            _ => return None,
        };
        rest = &rest[unit..];
        let part = number * scale;
        if !part.is_finite() || part >= u64::MAX as f64 {
            return None;
        }
        micros = micros.checked_add(part as u64)?;
    }
    Some(micros.div_ceil(1000))
}

#[cfg(test)]
mod tests {
    use super::millis;

    #[test]
    fn go_durations_read_as_milliseconds() {
        assert_eq!(millis("100ms"), Some(100));
        assert_eq!(millis("1s"), Some(1000));
        assert_eq!(millis("1.5s"), Some(1500));
        assert_eq!(millis("2m"), Some(120_000));
        assert_eq!(millis("1m30s"), Some(90_000));
        assert_eq!(millis("1h"), Some(3_600_000));
        assert_eq!(millis("500us"), Some(1));
        for bad in ["", "ms", "100", "1d", "1e400s", "--1s", "1.2.3s"] {
            assert_eq!(millis(bad), None, "{bad:?}");
        }
    }
}

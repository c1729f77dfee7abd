//! Durations as a user types them: `300ms`, `1s`, `1.5s`, `2min`.

/// What a duration option allows (the end of every error about one).
pub(crate) const ALLOWED: &str = "a number with a unit, ms, s or min (300ms, 1s, 1.5s, 2min), \
                                  a whole number of milliseconds from 1ms to one day (1440min)";

/// The longest duration any setting accepts: one day, as the library's
/// `FAILSTOP_*_MS` variables.
const MAX_MS: u128 = 86_400_000;

/// `text` in milliseconds, or why it is not a duration.
///
/// A decimal number (digits, at most one `.`) followed by `ms`, `s` or
/// `min`; the result must be a whole number of milliseconds from 1 to one
/// day. A number without a unit is refused: `--cpu-budget 300` could mean
/// 300 ms or 300 s.
pub(crate) fn parse_ms(text: &str) -> Result<u64, &'static str> {
    let unit_at = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(unit_at);
    if number.is_empty() {
        return Err(if text.starts_with('-') { "negative durations are not allowed" } else { "no number" });
    }
    let per_unit: u128 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "min" => 60_000,
        "" => return Err("no unit"),
        _ => return Err("unknown unit"),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return Err("not a number");
    }
    if whole.len() + fraction.len() > 30 {
        return Err("more than one day");
    }
    // The value in units of 10^-len(fraction), exact: digits only, at most 30.
    let digits: u128 = format!("{whole}{fraction}").parse().map_err(|_| "not a number")?;
    let scale = 10u128.pow(fraction.len() as u32);
    let scaled = digits * per_unit;
    if !scaled.is_multiple_of(scale) {
        return Err("not a whole number of milliseconds");
    }
    let ms = scaled / scale;
    if ms == 0 {
        return Err("must be greater than zero");
    }
    if ms > MAX_MS {
        return Err("more than one day");
    }
    Ok(ms as u64)
}

#[cfg(test)]
mod tests {
    use super::parse_ms;

    #[test]
    fn units_and_fractions() {
        assert_eq!(parse_ms("300ms"), Ok(300));
        assert_eq!(parse_ms("1s"), Ok(1000));
        assert_eq!(parse_ms("1.5s"), Ok(1500));
        assert_eq!(parse_ms(".25s"), Ok(250));
        assert_eq!(parse_ms("2min"), Ok(120_000));
        assert_eq!(parse_ms("1440min"), Ok(86_400_000));
    }

    #[test]
    fn refusals() {
        assert_eq!(parse_ms("300"), Err("no unit"));
        assert_eq!(parse_ms("5h"), Err("unknown unit"));
        assert_eq!(parse_ms("soon"), Err("no number"));
        assert_eq!(parse_ms("-1s"), Err("negative durations are not allowed"));
        assert_eq!(parse_ms("0s"), Err("must be greater than zero"));
        assert_eq!(parse_ms("0.5ms"), Err("not a whole number of milliseconds"));
        assert_eq!(parse_ms("1441min"), Err("more than one day"));
        assert_eq!(parse_ms("1.2.3s"), Err("not a number"));
        assert_eq!(parse_ms(".s"), Err("not a number"));
        assert_eq!(parse_ms("99999999999999999999999999999999999s"), Err("more than one day"));
        assert_eq!(parse_ms(""), Err("no number"));
        assert_eq!(parse_ms("1 s"), Err("unknown unit"));
    }
}

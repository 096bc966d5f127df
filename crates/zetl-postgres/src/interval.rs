//! PostgreSQL intervals in the `postgres` IntervalStyle (docs: "Interval Output") become the
//! event model's canonical `M months D days U microseconds`: one signed count per field, which
//! every target parses. The server's own form mixes signs per field (`-1 days +02:00:00`),
//! which DuckDB cannot read.

/// Returns `None` when the text is not a `postgres`-style interval.
pub fn canonical(text: &str) -> Option<String> {
    let (mut months, mut days, mut micros) = (0i64, 0i64, 0i64);
    let mut tokens = text.split_whitespace().peekable();
    let mut seen = false;
    while let Some(token) = tokens.next() {
        seen = true;
        if token.contains(':') {
            micros = micros.checked_add(time_micros(token)?)?;
            continue;
        }
        let n: i64 = token.parse().ok()?;
        let unit = tokens.next()?;
        match unit.trim_end_matches('s') {
            "year" => months = months.checked_add(n.checked_mul(12)?)?,
            "mon" => months = months.checked_add(n)?,
            "day" => days = days.checked_add(n)?,
            _ => return None,
        }
    }
    seen.then(|| format!("{months} months {days} days {micros} microseconds"))
}

/// `[+-]H:MM:SS[.ffffff]` (hours may exceed 24).
fn time_micros(token: &str) -> Option<i64> {
    let (negative, rest) = match token.as_bytes().first()? {
        b'-' => (true, &token[1..]),
        b'+' => (false, &token[1..]),
        _ => (false, token),
    };
    let mut parts = rest.split(':');
    let hours: i64 = parts.next()?.parse().ok()?;
    let minutes: i64 = parts.next()?.parse().ok()?;
    let seconds = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    let (whole, fraction) = seconds.split_once('.').unwrap_or((seconds, ""));
    let whole: i64 = whole.parse().ok()?;
    if fraction.len() > 6 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac: i64 = if fraction.is_empty() { 0 } else { format!("{fraction:0<6}").parse().ok()? };
    let total = ((hours * 60 + minutes) * 60 + whole) * 1_000_000 + frac;
    Some(if negative { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_the_server_forms() {
        let cases = [
            ("1 year 2 mons 3 days 04:05:06.5", "14 months 3 days 14706500000 microseconds"),
            ("-1 days +02:00:00", "0 months -1 days 7200000000 microseconds"),
            ("00:00:00", "0 months 0 days 0 microseconds"),
            ("-00:00:01.000001", "0 months 0 days -1000001 microseconds"),
            ("-2 years -1 mons", "-25 months 0 days 0 microseconds"),
            ("1 day", "0 months 1 days 0 microseconds"),
            ("100:00:00", "0 months 0 days 360000000000 microseconds"),
        ];
        for (pg, want) in cases {
            assert_eq!(canonical(pg).as_deref(), Some(want), "{pg}");
        }
        for bad in ["", "1 fortnight", "P1D", "1:2", "x days"] {
            assert_eq!(canonical(bad), None, "{bad}");
        }
    }
}

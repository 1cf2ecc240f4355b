//! The common RFC 3339 form, parsed without a date library: `YYYY-MM-DDTHH:MM:SS[.f…](Z|±HH:MM)`.
//!
//! `None` means "not this form", not "invalid": the JSON decoder then asks chrono, which knows
//! every form RFC 3339 allows and says what is wrong. For every input this parser accepts it gives
//! the epoch milliseconds chrono gives (a test compares them).

/// Epoch milliseconds of `s` in the common form (1–9 fraction digits, truncated to milliseconds),
/// or `None` when `s` has another form or an impossible date or time.
pub(crate) fn parse_ms(s: &[u8]) -> Option<i64> {
    if s.len() < 20 || s[4] != b'-' || s[7] != b'-' || s[10] != b'T' || s[13] != b':' || s[16] != b':' {
        return None;
    }
    let year = digits(&s[0..4])?;
    let month = digits(&s[5..7])?;
    let day = digits(&s[8..10])?;
    let (hour, minute, second) = (digits(&s[11..13])?, digits(&s[14..16])?, digits(&s[17..19])?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis = 0;
    if let Some((b'.', fraction)) = rest.split_first() {
        let n = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        let ms_digits = &fraction[..n.min(3)];
        millis = digits(ms_digits)? * [100, 10, 1][ms_digits.len() - 1];
        rest = &fraction[n..];
    }
    let offset_secs = match rest {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            let secs = h * 3600 + m * 60;
            if *sign == b'-' { -secs } else { secs }
        }
        _ => return None,
    };
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    Some(secs * 1000 + millis)
}

/// The number written by ASCII digits only.
fn digits(s: &[u8]) -> Option<i64> {
    s.iter().try_fold(0i64, |n, &b| b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0')))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chrono_ms(s: &str) -> Option<i64> {
        chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_millis())
    }

    #[test]
    fn agrees_with_chrono_wherever_it_answers() {
        let cases = [
            "2026-11-29T01:02:03.456Z",
            "2026-11-29T01:02:03Z",
            "1970-01-01T00:00:00Z",
            "1969-12-31T23:59:59.999Z",
            "1969-12-31T23:59:59.9999999Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999Z",
            "2024-02-29T12:00:00.1+09:00",
            "2023-02-29T12:00:00Z",
            "2026-11-29T01:02:03.456-08:00",
            "2026-11-29T01:02:03.456-00:00",
            "2026-11-29T01:02:03.45678+05:30",
            "2026-13-01T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-11-29T24:00:00Z",
            "2026-11-29T23:59:60Z",
            "2026-11-29t01:02:03Z",
            "2026-11-29T01:02:03z",
            "2026-11-29 01:02:03Z",
            "2026-11-29T01:02:03.Z",
            "2026-11-29T01:02:03.1234567891Z",
            "2026-11-29T01:02:03+0100",
            "2026-11-29T01:02:03+24:00",
            "2026-11-29T01:02:03",
            "+2026-11-29T01:02:03Z",
            "2026-1-29T01:02:03Z",
        ];
        let mut answered = 0;
        for s in cases {
            if let Some(ms) = parse_ms(s.as_bytes()) {
                assert_eq!(Some(ms), chrono_ms(s), "{s}");
                answered += 1;
            }
        }
        assert_eq!(answered, 11, "the common forms are answered here");
    }

    #[test]
    fn every_day_of_four_centuries_agrees_with_chrono() {
        let mut date = chrono::NaiveDate::from_ymd_opt(1800, 1, 1).unwrap();
        let end = chrono::NaiveDate::from_ymd_opt(2201, 1, 1).unwrap();
        while date < end {
            let s = format!("{}T13:14:15.016+02:00", date.format("%Y-%m-%d"));
            assert_eq!(parse_ms(s.as_bytes()), chrono_ms(&s), "{s}");
            date = date.succ_opt().unwrap();
        }
    }
}

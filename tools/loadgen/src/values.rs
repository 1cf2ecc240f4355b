//! Realistic values: names, addresses, phone numbers, URLs, text and HTML email bodies.

use std::fmt::Write as _;

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use serde_json::Value;

use crate::rng::Rng;
use crate::vocab;

/// A timestamp as the platform sends it: epoch milliseconds or RFC 3339 (UTC or with an offset).
pub(crate) fn json_timestamp(rng: &mut Rng, ms: i64) -> Value {
    let Some(utc) = DateTime::<Utc>::from_timestamp_millis(ms) else {
        return Value::from(ms);
    };
    match rng.below(20) {
        0..=7 => Value::from(ms),
        8..=16 => Value::from(utc.to_rfc3339_opts(SecondsFormat::Millis, true)),
        _ => {
            let hours = *rng.pick(&[-8, -5, 1, 2, 9]);
            match FixedOffset::east_opt(hours * 3600) {
                Some(offset) => Value::from(utc.with_timezone(&offset).to_rfc3339_opts(SecondsFormat::Millis, false)),
                None => Value::from(ms),
            }
        }
    }
}

/// A first and last name.
pub(crate) fn person_name(rng: &mut Rng) -> (&'static str, &'static str) {
    (*rng.pick(vocab::FIRST_NAMES), *rng.pick(vocab::LAST_NAMES))
}

/// An email address; ASCII local part, as most mail systems still require.
pub(crate) fn email(rng: &mut Rng) -> String {
    let (first, last) = person_name(rng);
    let local = |s: &str| -> String {
        let ascii: String = s.chars().filter(char::is_ascii_alphabetic).collect::<String>().to_ascii_lowercase();
        if ascii.is_empty() { "user".into() } else { ascii }
    };
    let domain = rng.weighted(vocab::EMAIL_DOMAINS);
    match rng.below(4) {
        0 => format!("{}.{}@{domain}", local(first), local(last)),
        1 => format!("{}{}@{domain}", local(first), rng.below(1000)),
        2 => format!("{}.{}+news@{domain}", local(first), local(last)),
        _ => format!("{}_{}{}@{domain}", local(last), local(first), rng.below(100)),
    }
}

/// An E.164 phone number.
pub(crate) fn phone(rng: &mut Rng) -> String {
    let country = rng.pick(&["1", "44", "49", "33", "55", "81"]);
    format!("+{country}{}", 2_000_000_000 + rng.below(7_999_999_999))
}

/// A random platform-style internal id (12 hex digits) for references that need not be unique.
pub(crate) fn short_hex(rng: &mut Rng) -> String {
    format!("{:012x}", rng.next_u64() & 0xffff_ffff_ffff)
}

/// A tracked link on one of the workspace sites.
pub(crate) fn url(rng: &mut Rng) -> String {
    let domain = rng.pick(vocab::SITE_DOMAINS);
    let path = rng.pick(vocab::URL_PATHS);
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("https://{domain}{path}{sep}utm_source=dwsync&utm_medium=email&utm_campaign=c{}", rng.below(500))
}

/// `words` words of text.
pub(crate) fn text(rng: &mut Rng, words: usize) -> String {
    let mut out = String::with_capacity(words * 7);
    for i in 0..words {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(rng.pick::<&str>(vocab::WORDS));
    }
    out
}

/// A sentence-cased subject line.
pub(crate) fn subject_line(rng: &mut Rng) -> String {
    let words = 3 + rng.below(6) as usize;
    let mut s = text(rng, words);
    if let Some(first) = s.get(..1) {
        let upper = first.to_ascii_uppercase();
        s.replace_range(..1, &upper);
    }
    if rng.chance(0.2) {
        s.push_str(rng.pick::<&str>(&[" 🎉", " ✨", " — last chance", " (1/3)", "!"]));
    }
    s
}

/// An HTML email body of several kilobytes, and its plain-text version.
pub(crate) fn email_body(rng: &mut Rng, name: &str) -> (String, String) {
    let paragraphs = 4 + rng.below(6) as usize;
    let mut html = String::with_capacity(6_000);
    let mut plain = String::with_capacity(2_500);
    html.push_str(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Update</title>\
         <style>body{margin:0;padding:0;background:#f4f4f7;font-family:Helvetica,Arial,sans-serif;}\
         .container{max-width:600px;margin:0 auto;background:#ffffff;}\
         .button{display:inline-block;padding:12px 24px;background:#5b4cff;color:#ffffff;border-radius:4px;}\
         p{font-size:16px;line-height:24px;color:#333333;}</style></head>\
         <body><table role=\"presentation\" class=\"container\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\">",
    );
    let _ = write!(html, "<tr><td style=\"padding:32px 24px\"><h1>Hi {name},</h1>");
    let _ = writeln!(plain, "Hi {name},\n");
    for _ in 0..paragraphs {
        let words = 40 + rng.below(50) as usize;
        let p = text(rng, words);
        let _ = write!(html, "<p>{p}.</p>");
        let _ = writeln!(plain, "{p}.\n");
    }
    let link = url(rng);
    let _ = write!(
        html,
        "<p style=\"text-align:center\"><a class=\"button\" href=\"{link}\">Learn more</a></p></td></tr>\
         <tr><td style=\"padding:24px;font-size:12px;color:#888888\">You are receiving this email because \
         you signed up at our site. <a href=\"https://acme.io/unsubscribe?d={}\">Unsubscribe</a> · \
         Acme Inc., Friedrichstraße 123, 10117 Berlin</td></tr></table>\
         <img src=\"https://track.acme.io/e/o/{:x}\" width=\"1\" height=\"1\" alt=\"\"></body></html>",
        rng.next_u64(),
        rng.next_u64()
    );
    let _ = write!(plain, "Learn more: {link}\n\nUnsubscribe: https://acme.io/unsubscribe");
    (html, plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_bodies_are_several_kilobytes() {
        let mut rng = Rng::new(3);
        for _ in 0..50 {
            let (html, plain) = email_body(&mut rng, "Zoë");
            assert!((2_000..12_000).contains(&html.len()), "{}", html.len());
            assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>"));
            assert!(plain.len() < html.len());
        }
    }

    #[test]
    fn addresses_look_like_addresses() {
        let mut rng = Rng::new(4);
        for _ in 0..200 {
            let e = email(&mut rng);
            assert_eq!(e.matches('@').count(), 1, "{e}");
            assert!(e.is_ascii(), "{e}");
            assert!(phone(&mut rng).starts_with('+'));
        }
    }

    #[test]
    fn timestamps_mix_representations() {
        let mut rng = Rng::new(5);
        let forms: Vec<Value> = (0..100).map(|_| json_timestamp(&mut rng, 1_767_225_600_123)).collect();
        assert!(forms.iter().any(Value::is_i64));
        assert!(forms.iter().any(|v| v.as_str().is_some_and(|s| s.ends_with('Z'))));
        assert!(forms.iter().any(|v| v.as_str().is_some_and(|s| !s.ends_with('Z'))));
        for v in &forms {
            assert_eq!(crate::protobuf::timestamp_ms(v), Some(1_767_225_600_123), "{v}");
        }
    }
}

//! Just enough `strftime` for chat templates (`strftime_now("%d %b %Y")`, llama.cpp's
//! `date_string`), so we need no date crate. Times are UTC, as llama-server's are in containers.

use std::time::{SystemTime, UNIX_EPOCH};

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// A broken-down UTC time.
struct Civil {
    year: i64,
    month: usize, // 1..=12
    day: i64,
    weekday: usize, // 0 = Sunday
    hour: i64,
    minute: i64,
    second: i64,
}

fn civil(now: SystemTime) -> Civil {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month: month as usize,
        day,
        weekday: (days + 4).rem_euclid(7) as usize,
        hour: rem / 3600,
        minute: rem % 3600 / 60,
        second: rem % 60,
    }
}

/// Formats `now` with the common `strftime` conversions; unknown ones are kept verbatim.
pub fn strftime(now: SystemTime, format: &str) -> String {
    let t = civil(now);
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&t.year.to_string()),
            Some('y') => out.push_str(&format!("{:02}", t.year % 100)),
            Some('m') => out.push_str(&format!("{:02}", t.month)),
            Some('d') => out.push_str(&format!("{:02}", t.day)),
            Some('e') => out.push_str(&format!("{:2}", t.day)),
            Some('B') => out.push_str(MONTHS[t.month - 1]),
            Some('b') | Some('h') => out.push_str(&MONTHS[t.month - 1][..3]),
            Some('A') => out.push_str(WEEKDAYS[t.weekday]),
            Some('a') => out.push_str(&WEEKDAYS[t.weekday][..3]),
            Some('H') => out.push_str(&format!("{:02}", t.hour)),
            Some('M') => out.push_str(&format!("{:02}", t.minute)),
            Some('S') => out.push_str(&format!("{:02}", t.second)),
            Some('F') => out.push_str(&format!("{}-{:02}-{:02}", t.year, t.month, t.day)),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_known_dates() {
        let cases = [
            (0, "%Y-%m-%d %H:%M:%S %a", "1970-01-01 00:00:00 Thu"),
            (1_721_952_000, "%d %b %Y", "26 Jul 2024"),
            (
                1_803_427_200,
                "%b %d %Y, %A %B",
                "Feb 24 2027, Wednesday February",
            ),
            (951_782_400, "%F", "2000-02-29"),
        ];
        for (secs, format, want) in cases {
            let now = UNIX_EPOCH + Duration::from_secs(secs);
            assert_eq!(strftime(now, format), want, "{secs} {format}");
        }
    }
}

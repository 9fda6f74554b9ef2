//! Dates: the civil date and time (proleptic Gregorian calendar, UTC) of a Unix time, the HTTP
//! date (IMF-fixdate, RFC 9110 §5.6.7) that ferrule puts in the `Date` field of the responses it
//! sends (RFC 9110 §6.6.1), and [`HttpDate`], a cache of that text that is formatted again only
//! when the second changes.
//!
//! One copy of the calendar arithmetic for the crate: the access log's time stamps
//! (`access_log.rs`) and the certificate dates in TLS messages (`tls/certs.rs`) use it too.
//! A worker keeps one [`HttpDate`] and refreshes it once per poll round (`worker/mod.rs`), so a
//! response pays for its `Date` with a 29-byte copy; the admin server formats one per answer.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// Month abbreviations, January first (as HTTP dates and nginx's log times write them).
pub const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
/// Day-name abbreviations, Sunday first.
const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// Length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const IMF_FIXDATE_LEN: usize = 29;
/// The last second with a four-digit year (9999-12-31T23:59:59Z): later times are written as it.
const LAST_FOUR_DIGIT_SECOND: i64 = 253_402_300_799;

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`). Exact for every day an `i64` of seconds can reach.
pub fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A Unix time, broken down (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    /// 1-12
    pub month: u32,
    /// 1-31
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// 0 is Sunday.
    pub weekday: u32,
}

impl Civil {
    /// `secs` seconds since 1970-01-01T00:00:00Z (negative: before it).
    pub fn of(secs: i64) -> Civil {
        let days = secs.div_euclid(86_400);
        let in_day = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil(days);
        Civil {
            year,
            month,
            day,
            hour: in_day / 3600,
            minute: in_day / 60 % 60,
            second: in_day % 60,
            // 1970-01-01 was a Thursday
            weekday: (days + 4).rem_euclid(7) as u32,
        }
    }

    /// `Jan` … `Dec`.
    pub fn month_name(&self) -> &'static str {
        MONTHS
            .get(self.month.saturating_sub(1) as usize)
            .copied()
            .unwrap_or("Jan")
    }

    fn weekday_name(&self) -> &'static str {
        WEEKDAYS
            .get(self.weekday as usize)
            .copied()
            .unwrap_or("Thu")
    }
}

/// `secs` as an IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`; a time before 1970 is written as
/// 1970's first second, one past year 9999 as its last.
pub fn imf_fixdate(secs: i64) -> [u8; IMF_FIXDATE_LEN] {
    let c = Civil::of(secs.clamp(0, LAST_FOUR_DIGIT_SECOND));
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    let mut w: &mut [u8] = &mut out;
    // exactly 29 bytes (the year has four digits): the write cannot run out of room
    let _ = write!(
        w,
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        c.weekday_name(),
        c.day,
        c.month_name(),
        c.year,
        c.hour,
        c.minute,
        c.second
    );
    out
}

/// Seconds since the Unix epoch now, from the system clock (0 if it reads before 1970).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The IMF-fixdate of one second, formatted once for that second.
#[derive(Debug, Clone)]
pub struct HttpDate {
    second: i64,
    text: [u8; IMF_FIXDATE_LEN],
}

impl HttpDate {
    /// The date of `secs` (seconds since the Unix epoch).
    pub fn at(secs: i64) -> HttpDate {
        HttpDate {
            second: secs,
            text: imf_fixdate(secs),
        }
    }

    /// The date of the system clock's current second.
    pub fn now() -> HttpDate {
        HttpDate::at(unix_now())
    }

    /// Moves to `secs`; the text is formatted again only when the second changed.
    pub fn set(&mut self, secs: i64) {
        if secs != self.second {
            *self = HttpDate::at(secs);
        }
    }

    /// Moves to the system clock's current second (one clock read).
    pub fn refresh(&mut self) {
        self.set(unix_now());
    }

    /// The IMF-fixdate, without the field name.
    pub fn text(&self) -> &[u8; IMF_FIXDATE_LEN] {
        &self.text
    }
}

impl Default for HttpDate {
    fn default() -> Self {
        HttpDate::now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(11_016), (2000, 2, 29));
        assert_eq!(civil(20_789), (2026, 12, 2));
        assert_eq!(civil(-1), (1969, 12, 31));
        // the extremes of an i64 of seconds do not overflow
        let _ = Civil::of(i64::MAX);
        let _ = Civil::of(i64::MIN);
    }

    #[test]
    fn imf_fixdates() {
        // RFC 9110's example
        assert_eq!(&imf_fixdate(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&imf_fixdate(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(&imf_fixdate(951_868_799), b"Tue, 29 Feb 2000 23:59:59 GMT");
        assert_eq!(
            &imf_fixdate(1_798_761_599),
            b"Thu, 31 Dec 2026 23:59:59 GMT"
        );
        assert_eq!(&imf_fixdate(-5), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(&imf_fixdate(i64::MAX), b"Fri, 31 Dec 9999 23:59:59 GMT");
        // every weekday of one week, and each agrees with the day count
        let names: Vec<String> = (0..7)
            .map(|d| String::from_utf8(imf_fixdate(d * 86_400)[..3].to_vec()).unwrap())
            .collect();
        assert_eq!(names, ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]);
    }

    #[test]
    fn the_cache_changes_with_the_second_only() {
        let mut d = HttpDate::at(784_111_777);
        d.set(784_111_777);
        assert_eq!(d.text(), b"Sun, 06 Nov 1994 08:49:37 GMT");
        d.set(784_111_778);
        assert_eq!(d.text(), b"Sun, 06 Nov 1994 08:49:38 GMT");
        let mut now = HttpDate::at(0);
        now.refresh();
        let secs = unix_now();
        assert!([imf_fixdate(secs), imf_fixdate(secs - 1)].contains(now.text()));
    }
}

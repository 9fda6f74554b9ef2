//! The edges of issue 26, each over real sockets at 127.0.0.1:
//!
//! - `date`: every response ferrule sends carries one `Date` (RFC 9110 §6.6.1): its own answers
//!   (503, 400), forwarded responses that have none, the admin API; a backend's own passes
//!   unchanged; the date follows the clock;
//! - `tls`: the server's cipher order wins (strongest first); `ssl.hsts` adds
//!   `Strict-Transport-Security` over TLS unless the backend set one; the plain-HTTP answer on
//!   the TLS port is dated;
//! - `reload`: a reload reads the backend CA files again (a rotated CA takes effect, a file that
//!   no longer loads refuses the reload) and checks the keys against each other again once the
//!   restart-only keys have their running values back.
//!
//! Helpers every module uses are here; `tests/common` has the shared ones.

mod date;
mod reload;
mod tls;

use std::time::{SystemTime, UNIX_EPOCH};

use crate::common::Response;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
/// Day names from Thursday, 1970-01-01.
const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];

/// Seconds since the Unix epoch of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), or `None`
/// when it is not one exactly (its day name included). Written independently of ferrule's.
pub fn parse_imf_fixdate(s: &str) -> Option<i64> {
    let parts: Vec<&str> = s.split(' ').collect();
    let [weekday, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let two = |t: &str| (t.len() == 2).then(|| t.parse::<i64>().ok()).flatten();
    let weekday = weekday.strip_suffix(',')?;
    let day = two(day)?;
    let month = MONTHS.iter().position(|m| m == month)? as i64 + 1;
    let year: i64 = (year.len() == 4).then(|| year.parse().ok()).flatten()?;
    let hms: Vec<i64> = time.split(':').map(two).collect::<Option<_>>()?;
    let [h, m, sec] = hms.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&day) || *h > 23 || *m > 59 || *sec > 60 {
        return None;
    }
    // days from the civil date (H. Hinnant's days_from_civil)
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (WEEKDAYS[days.rem_euclid(7) as usize] == weekday)
        .then_some(days * 86_400 + h * 3600 + m * 60 + sec)
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64
}

/// The one `Date` field of `r`, checked to be an IMF-fixdate between `since` (less a second of
/// slack: a worker reads the clock once per poll round) and now, in seconds: its time.
#[track_caller]
pub fn fresh_date(r: &Response, since: i64) -> i64 {
    let dates = r.headers_named("date");
    assert_eq!(dates.len(), 1, "one Date field: {:?}", r.headers);
    let at = parse_imf_fixdate(dates[0])
        .unwrap_or_else(|| panic!("Date is not an IMF-fixdate: {:?}", dates[0]));
    let now = unix_now();
    assert!(
        since - 1 <= at && at <= now,
        "Date {:?} is not between {since} and {now}",
        dates[0]
    );
    at
}

#[test]
fn the_test_date_parser_reads_rfc_9110s_example() {
    assert_eq!(
        parse_imf_fixdate("Sun, 06 Nov 1994 08:49:37 GMT"),
        Some(784_111_777)
    );
    assert_eq!(
        parse_imf_fixdate("Tue, 29 Feb 2000 23:59:59 GMT"),
        Some(951_868_799)
    );
    assert_eq!(parse_imf_fixdate("Mon, 06 Nov 1994 08:49:37 GMT"), None);
    assert_eq!(parse_imf_fixdate("Sun, 6 Nov 1994 08:49:37 GMT"), None);
    assert_eq!(parse_imf_fixdate("Sunday, 06-Nov-94 08:49:37 GMT"), None);
}

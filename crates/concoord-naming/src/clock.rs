//! The only place naming reads the clock: the UTC time a SigV4 signature carries.

/// Now as (`YYYYMMDD`, `YYYYMMDDTHHMMSSZ`), the two forms SigV4 uses.
pub fn amz_now() -> (String, String) {
    #[allow(clippy::disallowed_methods)] // the request's signing time is the wall clock
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    amz_time(secs)
}

/// Unix seconds as (`YYYYMMDD`, `YYYYMMDDTHHMMSSZ`) in UTC.
pub fn amz_time(unix_secs: u64) -> (String, String) {
    let days = (unix_secs / 86_400) as i64;
    let rem = unix_secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let date = format!("{year:04}{month:02}{day:02}");
    let stamp = format!("{date}T{:02}{:02}{:02}Z", rem / 3_600, rem % 3_600 / 60, rem % 60);
    (date, stamp)
}

#[cfg(test)]
mod tests {
    #[test]
    fn unix_seconds_become_utc_dates() {
        assert_eq!(super::amz_time(0).1, "19700101T000000Z");
        // The date of AWS's SigV4 test suite.
        assert_eq!(super::amz_time(1_440_938_160).1, "20150830T123600Z");
        assert_eq!(super::amz_time(951_825_600).1, "20000229T120000Z");
    }
}

//! CF time units and calendars, and exact re-encoding between time units.
//!
//! # CF time coordinates
//!
//! A CF time coordinate stores numbers together with a `units` attribute of
//! the form `"<unit> since <reference datetime>"`, e.g.
//! `"days since 2000-01-01"` or `"hours since 1900-01-01 00:00:00.0 +02:00"`,
//! and a `calendar` attribute naming the rules that turn the reference
//! datetime into a point on the time line:
//!
//! | calendar | rules |
//! |---|---|
//! | `standard` (alias `gregorian`, the default) | Julian before 1582-10-15, Gregorian from then; 1582-10-05 to 1582-10-14 do not exist |
//! | `proleptic_gregorian` | Gregorian rules for every year |
//! | `julian` | a leap year every fourth year |
//! | `noleap` (alias `365_day`) | never a February 29 |
//! | `all_leap` (alias `366_day`) | always a February 29 |
//! | `360_day` | twelve months of 30 days |
//!
//! Years follow the numbering of cftime and CF 1.9 and later: the `standard`
//! and `julian` calendars have no year 0 (1 BC is year -1, so `-4713-01-01`
//! is the start of Julian day 0), while `proleptic_gregorian` (ISO 8601) and
//! the idealised calendars count astronomically, with a year 0.
//!
//! # Why the re-encoding is exact
//!
//! The files of a multi-file dataset may use different `units` for their time
//! axis (`days since 2000-01-01` in one, `hours since 2000-01-02 06:00` in the
//! next). The converter writes one axis, so every file's values are
//! re-encoded into one target unit string. Time axes are often integers (or
//! packed integers) and are compared for equality and monotonicity, so the
//! conversion must not drift: [`recode`] computes the map
//! `new = (old * num + offset) / den` with integers only (the epoch
//! difference is counted in nanoseconds from day numbers), and
//! [`Recode::apply_i64`] refuses any value whose result is not an integer,
//! while [`Recode::apply_f64`] rounds the mathematically exact result once.
//!
//! Calendar months and years (`months since`, `years since`) have no fixed
//! length in CF, so they are refused with [`TimeError::Ambiguous`].

use std::fmt;

/// Nanoseconds in one day.
const NANOS_PER_DAY: i128 = 86_400_000_000_000;

/// Nanoseconds in one minute.
const NANOS_PER_MINUTE: i128 = 60_000_000_000;

/// Errors from parsing CF time units or calendars, or from converting them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// The text is not of the form `<unit> since <date>` with a time unit.
    #[error("'{0}' are not CF time units (expected '<unit> since <date>')")]
    NotTime(String),
    /// Calendar months or years: no fixed length, no exact conversion.
    #[error("'{0}': calendar months and years have no fixed length, so values cannot be re-encoded exactly")]
    Ambiguous(String),
    /// An unknown `calendar` attribute value.
    #[error("unknown calendar '{0}'")]
    Calendar(String),
    /// A malformed reference datetime, or one the calendar does not have.
    #[error("invalid date in '{text}': {reason}")]
    Date {
        /// The units text holding the date.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
}

// ---------------------------------------------------------------------------
// Calendars
// ---------------------------------------------------------------------------

/// CF calendars.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub enum Calendar {
    /// Mixed Julian/Gregorian calendar (`standard`, `gregorian`): Julian
    /// before 1582-10-15, Gregorian from then; no year 0.
    #[default]
    #[serde(rename = "standard")]
    Standard,
    /// Gregorian rules extended to all years (`proleptic_gregorian`), with a
    /// year 0.
    #[serde(rename = "proleptic_gregorian")]
    ProlepticGregorian,
    /// Julian calendar (`julian`): every fourth year is a leap year; no year 0.
    #[serde(rename = "julian")]
    Julian,
    /// Every year has 365 days (`noleap`, `365_day`).
    #[serde(rename = "noleap")]
    NoLeap,
    /// Every year has 366 days (`all_leap`, `366_day`).
    #[serde(rename = "all_leap")]
    AllLeap,
    /// Every month has 30 days (`360_day`).
    #[serde(rename = "360_day")]
    Day360,
}

impl Calendar {
    /// Parses a `calendar` attribute.
    ///
    /// `None` or an empty text is [`Calendar::Standard`]. Case-insensitive;
    /// surrounding whitespace and NUL padding are ignored. Aliases:
    /// `gregorian`/`standard`, `noleap`/`365_day`, `all_leap`/`366_day`.
    ///
    /// # Errors
    /// [`TimeError::Calendar`] for any other name (including `none`).
    pub fn parse(name: Option<&str>) -> Result<Self, TimeError> {
        let raw = name.unwrap_or("");
        let lower = trim_cf(raw).to_ascii_lowercase();
        match lower.as_str() {
            "" | "standard" | "gregorian" => Ok(Self::Standard),
            "proleptic_gregorian" => Ok(Self::ProlepticGregorian),
            "julian" => Ok(Self::Julian),
            "noleap" | "365_day" => Ok(Self::NoLeap),
            "all_leap" | "366_day" => Ok(Self::AllLeap),
            "360_day" => Ok(Self::Day360),
            _ => Err(TimeError::Calendar(raw.to_string())),
        }
    }

    /// Canonical CF name (`standard`, `proleptic_gregorian`, `julian`,
    /// `noleap`, `all_leap`, `360_day`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::ProlepticGregorian => "proleptic_gregorian",
            Self::Julian => "julian",
            Self::NoLeap => "noleap",
            Self::AllLeap => "all_leap",
            Self::Day360 => "360_day",
        }
    }

    /// Day number of a date as written in this calendar.
    ///
    /// For the real-world calendars (standard, proleptic Gregorian, Julian)
    /// the count is days since 1970-01-01 in the proleptic Gregorian
    /// calendar, so all three share one time line; the idealised calendars
    /// count from their own 1970-01-01. Only differences within one calendar
    /// are meaningful. The error is the reason the date does not exist.
    fn day_number(self, year: i64, month: u32, day: u32) -> Result<i128, String> {
        if !(1..=12).contains(&month) {
            return Err(format!("month {month} is not between 1 and 12"));
        }
        let y = i128::from(year);
        match self {
            Self::ProlepticGregorian => {
                check_day(self, day, month_len(month, gregorian_leap(y)))?;
                Ok(gregorian_days(y, month, day))
            }
            Self::Julian => {
                let a = astronomical(self, year)?;
                check_day(self, day, month_len(month, julian_leap(a)))?;
                Ok(julian_days(a, month, day))
            }
            Self::Standard => {
                let a = astronomical(self, year)?;
                if (a, month, day) >= (1582, 10, 15) {
                    check_day(self, day, month_len(month, gregorian_leap(a)))?;
                    Ok(gregorian_days(a, month, day))
                } else if (a, month, day) <= (1582, 10, 4) {
                    check_day(self, day, month_len(month, julian_leap(a)))?;
                    Ok(julian_days(a, month, day))
                } else {
                    Err(format!(
                        "1582-10-{day:02} does not exist in the standard calendar \
                         (1582-10-04 is followed by 1582-10-15)"
                    ))
                }
            }
            Self::NoLeap => {
                check_day(self, day, month_len(month, false))?;
                Ok((y - 1970) * 365 + days_before_month(month, false) + i128::from(day) - 1)
            }
            Self::AllLeap => {
                check_day(self, day, month_len(month, true))?;
                Ok((y - 1970) * 366 + days_before_month(month, true) + i128::from(day) - 1)
            }
            Self::Day360 => {
                check_day(self, day, 30)?;
                Ok((y - 1970) * 360 + i128::from(month - 1) * 30 + i128::from(day) - 1)
            }
        }
    }
}

impl fmt::Display for Calendar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Astronomical year (with a year 0) of a year in the standard or Julian
/// calendar, which count 1 BC as -1.
fn astronomical(calendar: Calendar, year: i64) -> Result<i128, String> {
    match year {
        0 => Err(format!(
            "year 0 does not exist in the {calendar} calendar (1 BC is year -1)"
        )),
        y if y < 0 => Ok(i128::from(y) + 1),
        y => Ok(i128::from(y)),
    }
}

/// Fails when `day` is outside `1..=len`.
fn check_day(calendar: Calendar, day: u32, len: u32) -> Result<(), String> {
    if (1..=len).contains(&day) {
        Ok(())
    } else {
        Err(format!(
            "day {day} does not exist in that month of the {calendar} calendar"
        ))
    }
}

/// Gregorian leap-year rule (astronomical year).
fn gregorian_leap(y: i128) -> bool {
    y.rem_euclid(4) == 0 && (y.rem_euclid(100) != 0 || y.rem_euclid(400) == 0)
}

/// Julian leap-year rule (astronomical year).
fn julian_leap(y: i128) -> bool {
    y.rem_euclid(4) == 0
}

/// Days in `month` (1..=12) of a common or leap year.
fn month_len(month: u32, leap: bool) -> u32 {
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days of a year before the first of `month` (1..=12).
fn days_before_month(month: u32, leap: bool) -> i128 {
    (1..month).map(|m| i128::from(month_len(m, leap))).sum()
}

/// Day of a March-based year (March 1 is 0, February 29 is 365).
fn day_of_march_year(month: u32, day: u32) -> i128 {
    let mp = i128::from((month + 9) % 12);
    (153 * mp + 2) / 5 + i128::from(day) - 1
}

/// Days since 1970-01-01 of a proleptic Gregorian date (astronomical year).
fn gregorian_days(year: i128, month: u32, day: u32) -> i128 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + day_of_march_year(month, day);
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 (proleptic Gregorian) of a Julian date
/// (astronomical year). Julian 0000-03-01 is Gregorian 0000-02-28.
fn julian_days(year: i128, month: u32, day: u32) -> i128 {
    let y = if month <= 2 { year - 1 } else { year };
    let cycle = y.div_euclid(4);
    let yoc = y.rem_euclid(4);
    cycle * 1461 + yoc * 365 + day_of_march_year(month, day) - 719_470
}

// ---------------------------------------------------------------------------
// Units
// ---------------------------------------------------------------------------

/// A fixed-length time unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeUnit {
    /// 1 ns.
    Nanoseconds,
    /// 1000 ns.
    Microseconds,
    /// 10⁶ ns.
    Milliseconds,
    /// 10⁹ ns.
    Seconds,
    /// 60 s.
    Minutes,
    /// 3600 s.
    Hours,
    /// 86400 s.
    Days,
    /// 7 days.
    Weeks,
}

impl TimeUnit {
    /// Length in nanoseconds.
    pub fn nanos(self) -> i128 {
        match self {
            Self::Nanoseconds => 1,
            Self::Microseconds => 1_000,
            Self::Milliseconds => 1_000_000,
            Self::Seconds => 1_000_000_000,
            Self::Minutes => 60_000_000_000,
            Self::Hours => 3_600_000_000_000,
            Self::Days => NANOS_PER_DAY,
            Self::Weeks => 7 * NANOS_PER_DAY,
        }
    }

    /// Canonical CF name (`nanoseconds` … `weeks`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Nanoseconds => "nanoseconds",
            Self::Microseconds => "microseconds",
            Self::Milliseconds => "milliseconds",
            Self::Seconds => "seconds",
            Self::Minutes => "minutes",
            Self::Hours => "hours",
            Self::Days => "days",
            Self::Weeks => "weeks",
        }
    }

    /// The unit a (lower-case) word names, if any.
    fn from_word(word: &str) -> Option<Self> {
        Some(match word {
            "nanoseconds" | "nanosecond" | "ns" | "nsec" | "nsecs" => Self::Nanoseconds,
            "microseconds" | "microsecond" | "us" | "µs" | "μs" | "usec" | "usecs" => {
                Self::Microseconds
            }
            "milliseconds" | "millisecond" | "ms" | "msec" | "msecs" => Self::Milliseconds,
            "seconds" | "second" | "secs" | "sec" | "s" => Self::Seconds,
            "minutes" | "minute" | "mins" | "min" => Self::Minutes,
            "hours" | "hour" | "hrs" | "hr" | "h" => Self::Hours,
            "days" | "day" | "d" => Self::Days,
            "weeks" | "week" => Self::Weeks,
            _ => return None,
        })
    }
}

/// Unit words for calendar months and years (lower-case).
const AMBIGUOUS_UNITS: [&str; 10] = [
    "months",
    "month",
    "years",
    "year",
    "yr",
    "yrs",
    "common_years",
    "common_year",
    "calendar_months",
    "calendar_years",
];

/// Parsed CF time units, `"<unit> since <reference datetime>"`.
///
/// The reference fields are as written: `year` uses the calendar's own
/// numbering (see the module documentation), and the time of day is local
/// time at `utc_offset_minutes` east of UTC.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TimeUnits {
    /// The unit of the values.
    pub unit: TimeUnit,
    /// Reference year (may be negative or have more than four digits).
    pub year: i64,
    /// Reference month, 1..=12.
    pub month: u32,
    /// Reference day of the month, 1..=31 (checked against the calendar by
    /// [`TimeUnits::reference_nanos`] and [`recode`]).
    pub day: u32,
    /// Reference hour, 0..=23.
    pub hour: u32,
    /// Reference minute, 0..=59.
    pub minute: u32,
    /// Reference second, 0..=59.
    pub second: u32,
    /// Fraction of the reference second, in nanoseconds.
    pub nanosecond: u32,
    /// Time zone of the reference, in minutes east of UTC.
    pub utc_offset_minutes: i32,
}

impl TimeUnits {
    /// The reference instant in nanoseconds since 1970-01-01 00:00 UTC,
    /// counted in `calendar` (for the idealised calendars, since that
    /// calendar's own 1970-01-01).
    ///
    /// # Errors
    /// [`TimeError::Date`] when the date does not exist in `calendar`.
    pub fn reference_nanos(&self, calendar: Calendar) -> Result<i128, TimeError> {
        self.epoch_nanos(calendar)
            .map_err(|reason| TimeError::Date {
                text: self.to_string(),
                reason,
            })
    }

    /// [`TimeUnits::reference_nanos`] with the bare reason as error.
    fn epoch_nanos(&self, calendar: Calendar) -> Result<i128, String> {
        let days = calendar.day_number(self.year, self.month, self.day)?;
        let seconds =
            i128::from(self.hour) * 3600 + i128::from(self.minute) * 60 + i128::from(self.second);
        Ok(
            days * NANOS_PER_DAY + seconds * 1_000_000_000 + i128::from(self.nanosecond)
                - i128::from(self.utc_offset_minutes) * NANOS_PER_MINUTE,
        )
    }
}

/// Canonical form, e.g. `hours since 1900-01-01 06:00:00.5 +02:00`, which
/// [`parse_units`] reads back to the same value.
impl fmt::Display for TimeUnits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} since ", self.unit.name())?;
        if self.year < 0 {
            write!(f, "-{:04}", self.year.unsigned_abs())?;
        } else {
            write!(f, "{:04}", self.year)?;
        }
        write!(
            f,
            "-{:02}-{:02} {:02}:{:02}:{:02}",
            self.month, self.day, self.hour, self.minute, self.second
        )?;
        if self.nanosecond != 0 {
            let frac = format!("{:09}", self.nanosecond);
            write!(f, ".{}", frac.trim_end_matches('0'))?;
        }
        if self.utc_offset_minutes != 0 {
            let sign = if self.utc_offset_minutes < 0 {
                '-'
            } else {
                '+'
            };
            let m = self.utc_offset_minutes.unsigned_abs();
            write!(f, " {sign}{:02}:{:02}", m / 60, m % 60)?;
        }
        Ok(())
    }
}

/// Parses CF time units `"<unit> since <reference datetime>"`.
///
/// Unit names (case-insensitive): `nanoseconds`/`ns`,
/// `microseconds`/`us`, `milliseconds`/`ms`/`msec`,
/// `seconds`/`second`/`secs`/`sec`/`s`, `minutes`/`minute`/`mins`/`min`,
/// `hours`/`hour`/`hrs`/`hr`/`h`, `days`/`day`/`d`, `weeks`/`week`.
///
/// Reference: `YYYY-MM-DD` (or `YYYY-M-D`; the year may be negative or
/// longer than four digits), then optionally a time `HH`, `HH:MM`,
/// `HH:MM:SS` or `HH:MM:SS.fffffffff` after a space or `T`, then optionally
/// a zone `Z`, `UTC`, `GMT`, `+HH:MM`, `+HHMM`, `+HH` or `-H`. Extra
/// whitespace (and NUL padding) is tolerated.
///
/// # Errors
/// [`TimeError::NotTime`] when the text is not `<time unit> since …`;
/// [`TimeError::Ambiguous`] for calendar months or years;
/// [`TimeError::Date`] for a malformed or out-of-range reference.
pub fn parse_units(text: &str) -> Result<TimeUnits, TimeError> {
    let Some((word, reference)) = split_since(text) else {
        return Err(TimeError::NotTime(text.to_string()));
    };
    let word = word.to_lowercase();
    if AMBIGUOUS_UNITS.contains(&word.as_str()) {
        return Err(TimeError::Ambiguous(text.to_string()));
    }
    let unit = TimeUnit::from_word(&word).ok_or_else(|| TimeError::NotTime(text.to_string()))?;
    parse_reference(unit, reference).map_err(|reason| TimeError::Date {
        text: text.to_string(),
        reason,
    })
}

/// Whether `text` looks like CF time units (`"<word> since <something>"`),
/// whatever the word; [`parse_units`] says whether they are usable.
pub fn is_time_units(text: &str) -> bool {
    split_since(text).is_some()
}

/// Trims whitespace and the NUL padding some writers leave in attributes.
fn trim_cf(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_whitespace() || c == '\0')
}

/// Splits `"<word> since <rest>"` into the word and the trimmed rest.
fn split_since(text: &str) -> Option<(&str, &str)> {
    let t = trim_cf(text);
    let (word, rest) = t.split_at(t.find(char::is_whitespace)?);
    let rest = rest.trim_start();
    if !rest.get(..5)?.eq_ignore_ascii_case("since") {
        return None;
    }
    let after = rest.get(5..)?;
    if !after.starts_with(char::is_whitespace) {
        return None;
    }
    let reference = after.trim();
    (!reference.is_empty()).then_some((word, reference))
}

/// A byte cursor over a reference datetime.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.pos += 1;
        }
        hit
    }

    /// Consumes `word` (ASCII, case-insensitive) if it comes next.
    fn eat_word(&mut self, word: &str) -> bool {
        let end = self.pos + word.len();
        let hit = self
            .text
            .get(self.pos..end)
            .is_some_and(|s| s.eq_ignore_ascii_case(word));
        if hit {
            self.pos = end;
        }
        hit
    }

    /// Skips whitespace; whether there was any.
    fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// The longest run of ASCII digits from here.
    fn digits(&mut self) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        self.text.get(start..self.pos).unwrap_or("")
    }

    /// A number of 1..=`max_len` digits, at most `max`.
    fn number(&mut self, what: &str, max_len: usize, max: u32) -> Result<u32, String> {
        let d = self.digits();
        if d.is_empty() || d.len() > max_len {
            return Err(format!(
                "expected {what} of 1 to {max_len} digits at '{}'",
                self.rest_from(self.pos - d.len())
            ));
        }
        let v = d.parse::<u32>().map_err(|e| format!("{what} '{d}': {e}"))?;
        if v > max {
            return Err(format!("{what} {v} is out of range (at most {max})"));
        }
        Ok(v)
    }

    fn rest_from(&self, pos: usize) -> &'a str {
        self.text.get(pos..).unwrap_or("")
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }
}

/// Parses the reference datetime after `since`.
fn parse_reference(unit: TimeUnit, text: &str) -> Result<TimeUnits, String> {
    let mut c = Cursor { text, pos: 0 };
    c.skip_ws();
    // Date.
    let negative = if c.eat(b'-') {
        true
    } else {
        c.eat(b'+');
        false
    };
    let digits = c.digits();
    if digits.is_empty() {
        return Err(format!("expected a date 'YYYY-MM-DD', found '{text}'"));
    }
    let year = digits
        .parse::<i64>()
        .ok()
        .and_then(|y| if negative { y.checked_neg() } else { Some(y) })
        .ok_or_else(|| format!("year '{digits}' is out of range"))?;
    if !c.eat(b'-') {
        return Err(format!("expected a date 'YYYY-MM-DD', found '{text}'"));
    }
    let month = c.number("a month", 2, u32::MAX)?;
    if !(1..=12).contains(&month) {
        return Err(format!("month {month} is not between 1 and 12"));
    }
    if !c.eat(b'-') {
        return Err(format!("expected a date 'YYYY-MM-DD', found '{text}'"));
    }
    let day = c.number("a day", 2, u32::MAX)?;
    if !(1..=31).contains(&day) {
        return Err(format!("day {day} is not between 1 and 31"));
    }
    let mut units = TimeUnits {
        unit,
        year,
        month,
        day,
        hour: 0,
        minute: 0,
        second: 0,
        nanosecond: 0,
        utc_offset_minutes: 0,
    };
    // Time of day.
    let has_time = if c.eat(b'T') || c.eat(b't') {
        true
    } else {
        c.skip_ws() && c.peek().is_some_and(|b| b.is_ascii_digit())
    };
    if has_time {
        units.hour = c.number("an hour", 2, 23)?;
        if c.eat(b':') {
            units.minute = c.number("a minute", 2, 59)?;
            if c.eat(b':') {
                units.second = c.number("a second", 2, 59)?;
                if c.eat(b'.') {
                    units.nanosecond = fraction(c.digits())?;
                }
            }
        }
    }
    // Time zone.
    c.skip_ws();
    let named_zone = c.eat(b'Z') || c.eat(b'z') || c.eat_word("UTC") || c.eat_word("GMT");
    if named_zone {
        c.skip_ws();
    }
    if matches!(c.peek(), Some(b'+' | b'-')) {
        units.utc_offset_minutes = utc_offset(&mut c)?;
    }
    c.skip_ws();
    if !c.at_end() {
        return Err(format!("unexpected '{}'", c.rest_from(c.pos)));
    }
    Ok(units)
}

/// Nanoseconds of the digits after a decimal point.
fn fraction(digits: &str) -> Result<u32, String> {
    if digits.is_empty() {
        return Err("expected digits after the decimal point of the seconds".into());
    }
    let (head, tail) = digits.split_at(digits.len().min(9));
    if tail.bytes().any(|b| b != b'0') {
        return Err(format!(
            "fractional seconds '.{digits}' are finer than a nanosecond"
        ));
    }
    let v = head
        .parse::<u32>()
        .map_err(|e| format!("seconds fraction: {e}"))?;
    Ok(v * 10u32.pow(9 - head.len() as u32))
}

/// A zone offset `±H`, `±HH`, `±HH:MM`, `±HMM` or `±HHMM`, in minutes.
fn utc_offset(c: &mut Cursor<'_>) -> Result<i32, String> {
    let start = c.pos;
    let sign = if c.eat(b'-') {
        -1
    } else {
        c.eat(b'+');
        1
    };
    let text = c.text;
    let bad = || {
        format!(
            "invalid time zone offset '{}'",
            text.get(start..).unwrap_or("")
        )
    };
    let d = c.digits();
    let num = |s: &str| s.parse::<i32>().ok();
    let (h, m) = match d.len() {
        1 | 2 => {
            let h = num(d);
            let m = if c.eat(b':') {
                let md = c.digits();
                if md.len() != 2 {
                    return Err(bad());
                }
                num(md)
            } else {
                Some(0)
            };
            (h, m)
        }
        3 | 4 => {
            let (hd, md) = d.split_at(d.len() - 2);
            (num(hd), num(md))
        }
        _ => (None, None),
    };
    match (h, m) {
        (Some(h), Some(m)) if h <= 23 && m <= 59 => Ok(sign * (h * 60 + m)),
        _ => Err(bad()),
    }
}

// ---------------------------------------------------------------------------
// Exact re-encoding
// ---------------------------------------------------------------------------

/// Exact affine map `new = (old * num + offset) / den`, in integers.
///
/// Built by [`recode`] (or [`Recode::new`]) with `den > 0` and the three
/// numbers reduced by their greatest common divisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Recode {
    /// Multiplier of the old value.
    pub num: i128,
    /// Added after multiplying.
    pub offset: i128,
    /// Divisor of the sum (positive).
    pub den: i128,
}

impl Default for Recode {
    fn default() -> Self {
        Self::identity()
    }
}

impl Recode {
    /// The map that changes nothing.
    pub fn identity() -> Self {
        Self {
            num: 1,
            offset: 0,
            den: 1,
        }
    }

    /// `(x * num + offset) / den`, normalised to `den > 0` and reduced;
    /// `None` if `den` is 0 (or negating `i128::MIN` would overflow).
    pub fn new(num: i128, offset: i128, den: i128) -> Option<Self> {
        let (num, offset, den) = if den < 0 {
            (
                num.checked_neg()?,
                offset.checked_neg()?,
                den.checked_neg()?,
            )
        } else {
            (num, offset, den)
        };
        (den > 0).then(|| Self::reduced(num, offset, den))
    }

    /// Reduces by the gcd; `den` must be positive.
    fn reduced(num: i128, offset: i128, den: i128) -> Self {
        let g = gcd(
            gcd(num.unsigned_abs(), offset.unsigned_abs()),
            den.unsigned_abs(),
        );
        // 1 <= g <= den <= i128::MAX, so the cast is lossless.
        let g = g.max(1) as i128;
        Self {
            num: num / g,
            offset: offset / g,
            den: den / g,
        }
    }

    /// Whether the map changes nothing.
    pub fn is_identity(&self) -> bool {
        self.offset == 0 && self.num == self.den && self.den != 0
    }

    /// The exact result in `i128`, `None` if it is not an integer (or the
    /// arithmetic overflows).
    fn apply_i128(&self, x: i128) -> Option<i128> {
        let n = x.checked_mul(self.num)?.checked_add(self.offset)?;
        (n.checked_rem(self.den)? == 0).then(|| n.checked_div(self.den))?
    }

    /// Exact integer result; `None` if it is not an integer or does not fit
    /// in `i64`.
    pub fn apply_i64(&self, x: i64) -> Option<i64> {
        i64::try_from(self.apply_i128(i128::from(x))?).ok()
    }

    /// Exact integer result; `None` if it is not an integer or does not fit
    /// in `i32`.
    pub fn apply_i32(&self, x: i32) -> Option<i32> {
        i32::try_from(self.apply_i128(i128::from(x))?).ok()
    }

    /// Floating-point result, rounded once from the mathematically exact
    /// value (so exact whenever that value is representable).
    ///
    /// With `den == 1` and `num`, `offset` exactly representable (at most
    /// 2⁵³) this is `x + offset`, `x * num` or the fused
    /// `x.mul_add(num, offset)`; otherwise the rational result is computed in
    /// `i128` integers and rounded once. Only when those integers overflow
    /// (|x| beyond about 2⁷⁶, or a tiny |x| with a large offset) or the
    /// result is subnormal does it fall back to floating-point arithmetic
    /// that may round twice. NaN and infinities pass through unchanged.
    pub fn apply_f64(&self, x: f64) -> f64 {
        if !x.is_finite() || self.is_identity() {
            return x;
        }
        if let Some((k, c)) = self.integral_f64() {
            return if self.num == self.den {
                x + c
            } else if self.offset == 0 {
                x * k
            } else {
                x.mul_add(k, c)
            };
        }
        match self.exact_scaled(x) {
            Some(Scaled::Zero) => self.signed_zero(x),
            Some(Scaled::Value { negative, q, exp }) => {
                ldexp_f64(q as f64, exp).map_or_else(|| self.approx(x), |v| sign(v, negative))
            }
            None => self.approx(x),
        }
    }

    /// Single-precision result, rounded once from the exact value like
    /// [`Recode::apply_f64`] (no double rounding through `f64`); falls back
    /// to computing in `f64` and rounding to `f32` when the exact path does
    /// not fit. NaN and infinities pass through unchanged.
    pub fn apply_f32(&self, x: f32) -> f32 {
        if !x.is_finite() || self.is_identity() {
            return x;
        }
        let wide = f64::from(x);
        match self.exact_scaled(wide) {
            Some(Scaled::Zero) => self.signed_zero(wide) as f32,
            Some(Scaled::Value { negative, q, exp }) => ldexp_f32(q as f32, exp)
                .map_or_else(|| self.approx(wide) as f32, |v| sign(v, negative)),
            None => self.approx(wide) as f32,
        }
    }

    /// `(num, offset)` as exact `f64` when `den` divides both and both are
    /// at most 2⁵³ in magnitude.
    fn integral_f64(&self) -> Option<(f64, f64)> {
        const LIMIT: i128 = 1 << 53;
        if self.den <= 0 || self.num % self.den != 0 || self.offset % self.den != 0 {
            return None;
        }
        let k = self.num / self.den;
        let c = self.offset / self.den;
        (k.abs() <= LIMIT && c.abs() <= LIMIT).then_some((k as f64, c as f64))
    }

    /// An exactly zero result: `+0.0`, except that a zero `x` mapped by a
    /// zero offset keeps the sign of `x * num`.
    fn signed_zero(&self, x: f64) -> f64 {
        match (x == 0.0, self.num < 0) {
            (false, _) => 0.0,
            (true, false) => x,
            (true, true) => -x,
        }
    }

    /// Floating-point evaluation for values the exact path cannot hold
    /// (may round more than once, but keeps each step close to exact: a
    /// pure shift adds one rounded constant, a pure scaling is one
    /// operation).
    fn approx(&self, x: f64) -> f64 {
        let (num, offset, den) = (self.num as f64, self.offset as f64, self.den as f64);
        if self.num == self.den {
            x + offset / den
        } else if self.num == 1 {
            (x + offset) / den
        } else if self.den == 1 {
            x.mul_add(num, offset)
        } else {
            x.mul_add(num / den, offset / den)
        }
    }

    /// The exact result as `±q · 2^exp` with a sticky low bit (see
    /// [`Scaled`]), or `None` if the integers do not fit in `i128`.
    fn exact_scaled(&self, x: f64) -> Option<Scaled> {
        if self.den <= 0 {
            return None;
        }
        if x == 0.0 {
            return round_ratio(self.offset, self.den, 0);
        }
        // x = ±m · 2^e with m odd.
        let bits = x.to_bits();
        let field = ((bits >> 52) & 0x7ff) as i32;
        let frac = bits & ((1u64 << 52) - 1);
        let (mut m, mut e) = if field == 0 {
            (frac, -1074)
        } else {
            (frac | (1u64 << 52), field - 1075)
        };
        let tz = m.trailing_zeros();
        m >>= tz;
        e += tz as i32;
        let m = if x < 0.0 {
            -i128::from(m)
        } else {
            i128::from(m)
        };
        // x·num + offset = (m·2^max(e,0)·num + offset·2^max(-e,0)) / 2^max(-e,0)
        let (mx, shift) = if e >= 0 {
            (shl_checked(m, e.unsigned_abs())?, 0)
        } else {
            (m, e.unsigned_abs())
        };
        let n = mx
            .checked_mul(self.num)?
            .checked_add(shl_checked(self.offset, shift)?)?;
        round_ratio(n, self.den, shift)
    }
}

/// An exact rational value prepared for rounding.
enum Scaled {
    /// Exactly zero.
    Zero,
    /// `±q · 2^exp`, where `q >= 2^54` and bit 0 of `q` is a sticky bit
    /// (set if anything non-zero was dropped), so converting `q` to a float
    /// with round-to-nearest-even rounds the exact value correctly.
    Value {
        /// Sign of the value.
        negative: bool,
        /// Scaled magnitude with sticky bit, `2^54 <= q < 2^61`.
        q: u64,
        /// Power of two to scale `q` by.
        exp: i32,
    },
}

/// `n / (d · 2^shift)` prepared for one correct rounding; `d > 0`.
fn round_ratio(n: i128, d: i128, shift: u32) -> Option<Scaled> {
    if n == 0 {
        return Some(Scaled::Zero);
    }
    let negative = n < 0;
    let a = n.unsigned_abs();
    let d = u128::try_from(d).ok().filter(|&d| d > 0)?;
    let mut q = a / d;
    let mut r = a % d;
    let mut exp = -i64::from(shift);
    if q >= 1 << 54 {
        // Keep at most 60 bits; the dropped ones and the remainder are sticky.
        let drop = (128 - q.leading_zeros()).saturating_sub(60);
        let lost = (q & ((1u128 << drop) - 1)) != 0 || r != 0;
        q = (q >> drop) | u128::from(lost);
        exp += i64::from(drop);
    } else {
        // Long division until q has 55 bits; r < d < 2^127 never overflows.
        while q < 1 << 54 {
            let qbits = 128 - q.leading_zeros();
            let rbits = 128 - r.leading_zeros();
            let step = (55 - qbits).min(128 - rbits).max(1);
            let t = r << step;
            q = (q << step) | (t / d);
            r = t % d;
            exp -= i64::from(step);
        }
        q |= u128::from(r != 0);
    }
    Some(Scaled::Value {
        negative,
        q: u64::try_from(q).ok()?,
        exp: i32::try_from(exp).ok()?,
    })
}

/// `v << s` if no bits are lost.
fn shl_checked(v: i128, s: u32) -> Option<i128> {
    if v == 0 {
        return Some(0);
    }
    let room = v.unsigned_abs().leading_zeros().checked_sub(1)?;
    (s <= room).then(|| v << s)
}

/// `v · 2^exp` for a normal positive `v`, if the result is normal.
fn ldexp_f64(v: f64, exp: i32) -> Option<f64> {
    let bits = v.to_bits();
    let field = i64::try_from((bits >> 52) & 0x7ff).ok()? + i64::from(exp);
    (1..=2046)
        .contains(&field)
        .then(|| f64::from_bits((bits & !(0x7ffu64 << 52)) | ((field as u64) << 52)))
}

/// `v · 2^exp` for a normal positive `v`, if the result is normal.
fn ldexp_f32(v: f32, exp: i32) -> Option<f32> {
    let bits = v.to_bits();
    let field = i64::from((bits >> 23) & 0xff) + i64::from(exp);
    (1..=254)
        .contains(&field)
        .then(|| f32::from_bits((bits & !(0xffu32 << 23)) | ((field as u32) << 23)))
}

/// Negates `v` when `negative`.
fn sign<T: std::ops::Neg<Output = T>>(v: T, negative: bool) -> T {
    if negative {
        -v
    } else {
        v
    }
}

/// Greatest common divisor (gcd(0, 0) = 0).
fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The map from values in `from` units to values in `to` units under
/// `calendar`:
/// `value_to = (value_from · from.unit + (epoch_from − epoch_to)) / to.unit`,
/// with the epoch difference counted exactly in nanoseconds from the day
/// numbers of both references in `calendar`, and their UTC offsets applied.
///
/// # Errors
/// Those of [`parse_units`] for either text, and [`TimeError::Date`] when a
/// reference date does not exist in `calendar` (February 30, February 29 in
/// `noleap`, day 31 in `360_day`, 1582-10-05..14 or year 0 in `standard`).
pub fn recode(from: &str, to: &str, calendar: Calendar) -> Result<Recode, TimeError> {
    let epoch = |text: &str| -> Result<(TimeUnit, i128), TimeError> {
        let units = parse_units(text)?;
        let nanos = units
            .epoch_nanos(calendar)
            .map_err(|reason| TimeError::Date {
                text: text.to_string(),
                reason,
            })?;
        Ok((units.unit, nanos))
    };
    let (from_unit, from_epoch) = epoch(from)?;
    let (to_unit, to_epoch) = epoch(to)?;
    Ok(Recode::reduced(
        from_unit.nanos(),
        from_epoch - to_epoch,
        to_unit.nanos(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(text: &str) -> TimeUnits {
        parse_units(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn rc(from: &str, to: &str, calendar: Calendar) -> Recode {
        recode(from, to, calendar).unwrap_or_else(|e| panic!("{from} -> {to}: {e}"))
    }

    /// `x + c` (or another fixed map) in the Recode form.
    fn affine(num: i128, offset: i128, den: i128) -> Recode {
        Recode::new(num, offset, den).unwrap()
    }

    /// Deterministic pseudo-random numbers (xorshift64*).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        /// A finite f64 from random bits.
        fn any_f64(&mut self) -> f64 {
            loop {
                let v = f64::from_bits(self.next());
                if v.is_finite() {
                    return v;
                }
            }
        }
        /// A finite f64 with an exponent in roughly 2^-60..2^60.
        fn moderate_f64(&mut self) -> f64 {
            let bits = self.next();
            let exp = 1023 - 60 + (bits >> 52) % 120;
            f64::from_bits((bits & 0x800f_ffff_ffff_ffff) | (exp << 52))
        }
    }

    // ---- calendars ------------------------------------------------------

    #[test]
    fn calendar_names() {
        use Calendar::*;
        let cases = [
            (None, Standard),
            (Some(""), Standard),
            (Some("standard"), Standard),
            (Some("Gregorian"), Standard),
            (Some("PROLEPTIC_GREGORIAN"), ProlepticGregorian),
            (Some("julian"), Julian),
            (Some("noleap"), NoLeap),
            (Some("365_day"), NoLeap),
            (Some("all_leap"), AllLeap),
            (Some("366_day"), AllLeap),
            (Some(" 360_day\0"), Day360),
        ];
        for (name, want) in cases {
            assert_eq!(Calendar::parse(name).unwrap(), want, "{name:?}");
        }
        for bad in ["none", "fancy", "gregorian2"] {
            assert_eq!(
                Calendar::parse(Some(bad)).unwrap_err(),
                TimeError::Calendar(bad.into())
            );
        }
        for c in [
            Standard,
            ProlepticGregorian,
            Julian,
            NoLeap,
            AllLeap,
            Day360,
        ] {
            assert_eq!(Calendar::parse(Some(c.name())).unwrap(), c);
            assert_eq!(c.to_string(), c.name());
        }
        assert_eq!(Calendar::default(), Standard);
    }

    #[test]
    fn calendar_serde_uses_cf_names() {
        let json = serde_json::to_string(&Calendar::Day360).unwrap();
        assert_eq!(json, "\"360_day\"");
        let back: Calendar = serde_json::from_str("\"proleptic_gregorian\"").unwrap();
        assert_eq!(back, Calendar::ProlepticGregorian);
        let r = Recode::new(3, -7, 24).unwrap();
        let back: Recode = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    /// Walks every day of `years` in `calendar` and compares the day numbers
    /// with a plain counter, starting from `start` (the day number of
    /// January 1 of the first year), using only `year_len`/`month_lens`.
    fn walk(
        calendar: Calendar,
        years: std::ops::Range<i64>,
        start: i128,
        leap: impl Fn(i64) -> bool,
    ) {
        let mut n = start;
        for y in years {
            for m in 1..=12u32 {
                let len = match (calendar, m) {
                    (Calendar::Day360, _) => 30,
                    (_, 2) if leap(y) => 29,
                    (_, 2) => 28,
                    (_, 4 | 6 | 9 | 11) => 30,
                    _ => 31,
                };
                for d in 1..=len {
                    assert_eq!(
                        calendar.day_number(y, m, d),
                        Ok(n),
                        "{calendar} {y}-{m}-{d}"
                    );
                    n += 1;
                }
                assert!(
                    calendar.day_number(y, m, len + 1).is_err(),
                    "{calendar} {y}-{m}-{}",
                    len + 1
                );
            }
        }
    }

    #[test]
    fn proleptic_gregorian_matches_iteration() {
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        // Day number of 1500-01-01: minus the lengths of 1500..1970.
        let start = -(1500..1970)
            .map(|y| if leap(y) { 366 } else { 365 })
            .sum::<i128>();
        walk(Calendar::ProlepticGregorian, 1500..2500, start, leap);
        assert_eq!(Calendar::ProlepticGregorian.day_number(1970, 1, 1), Ok(0));
        assert_eq!(
            Calendar::ProlepticGregorian.day_number(2000, 3, 1),
            Ok(11_017)
        );
        // Year 0 exists and is a leap year; negative years count on.
        assert_eq!(
            Calendar::ProlepticGregorian.day_number(0, 2, 29),
            Ok(-719_469)
        );
        let leap_astro =
            |y: i64| (y.rem_euclid(4) == 0 && y.rem_euclid(100) != 0) || y.rem_euclid(400) == 0;
        let start = Calendar::ProlepticGregorian.day_number(-801, 1, 1).unwrap();
        walk(Calendar::ProlepticGregorian, -801..3, start, leap_astro);
    }

    #[test]
    fn julian_matches_iteration() {
        // Julian day 0 is 4713 BC January 1 (year -4713 without a year 0);
        // 1970-01-01 00:00 UTC is Julian day 2440587.5, so that midnight is
        // day -2440588.
        let start = Calendar::Julian.day_number(-4713, 1, 1).unwrap();
        assert_eq!(start, -2_440_588);
        let leap = |y: i64| y.rem_euclid(4) == 0;
        // Astronomical years -4712..=-1 are written -4713..=-2 and the walk
        // below uses written years; check them through the astronomical rule.
        let mut n = start;
        for written in -4713..=-1i64 {
            let astro = written + 1;
            let len = if leap(astro) { 366 } else { 365 };
            assert_eq!(
                Calendar::Julian.day_number(written, 1, 1),
                Ok(n),
                "{written}"
            );
            n += len;
        }
        assert!(Calendar::Julian.day_number(0, 6, 1).is_err());
        assert_eq!(Calendar::Julian.day_number(1, 1, 1), Ok(n));
        walk(Calendar::Julian, 1..2500, n, leap);
        // Julian 1582-10-05 is Gregorian 1582-10-15.
        assert_eq!(
            Calendar::Julian.day_number(1582, 10, 5),
            Calendar::ProlepticGregorian.day_number(1582, 10, 15)
        );
        // Julian 0001-01-01 is proleptic Gregorian 0000-12-30.
        assert_eq!(
            Calendar::Julian.day_number(1, 1, 1),
            Calendar::ProlepticGregorian.day_number(0, 12, 30)
        );
    }

    #[test]
    fn standard_switches_in_1582() {
        let s = Calendar::Standard;
        assert_eq!(
            s.day_number(1582, 10, 4).unwrap() + 1,
            s.day_number(1582, 10, 15).unwrap()
        );
        for d in 5..=14 {
            assert!(s.day_number(1582, 10, d).is_err(), "1582-10-{d}");
        }
        // Julian before, Gregorian after.
        assert_eq!(
            s.day_number(1500, 2, 29),
            Calendar::Julian.day_number(1500, 2, 29)
        );
        assert!(s.day_number(1700, 2, 29).is_err());
        assert_eq!(
            s.day_number(2000, 2, 29),
            Calendar::ProlepticGregorian.day_number(2000, 2, 29)
        );
        assert!(s.day_number(0, 1, 1).is_err());
        assert_eq!(s.day_number(-4713, 1, 1), Ok(-2_440_588));
    }

    #[test]
    fn idealised_calendars_match_iteration() {
        walk(
            Calendar::NoLeap,
            -3..2100,
            Calendar::NoLeap.day_number(-3, 1, 1).unwrap(),
            |_| false,
        );
        walk(
            Calendar::AllLeap,
            -3..2100,
            Calendar::AllLeap.day_number(-3, 1, 1).unwrap(),
            |_| true,
        );
        walk(
            Calendar::Day360,
            -3..2100,
            Calendar::Day360.day_number(-3, 1, 1).unwrap(),
            |_| false,
        );
        assert_eq!(Calendar::NoLeap.day_number(1970, 1, 1), Ok(0));
        assert_eq!(Calendar::Day360.day_number(1971, 1, 1), Ok(360));
    }

    // ---- parsing --------------------------------------------------------

    #[test]
    #[allow(clippy::too_many_lines)] // a table of accepted unit strings
    fn parses_many_forms() {
        let u = units("hours since 1900-01-01 00:00:00.0");
        assert_eq!(
            (u.unit, u.year, u.month, u.day),
            (TimeUnit::Hours, 1900, 1, 1)
        );
        assert_eq!(
            (
                u.hour,
                u.minute,
                u.second,
                u.nanosecond,
                u.utc_offset_minutes
            ),
            (0, 0, 0, 0, 0)
        );

        let u = units("days since 2000-1-1");
        assert_eq!(
            (u.unit, u.year, u.month, u.day),
            (TimeUnit::Days, 2000, 1, 1)
        );

        let u = units("seconds since 1970-01-01T00:00:00Z");
        assert_eq!(
            (u.unit, u.year, u.utc_offset_minutes),
            (TimeUnit::Seconds, 1970, 0)
        );

        let u = units("minutes since 2000-01-01 06:00:00 +02:00");
        assert_eq!(
            (u.unit, u.hour, u.utc_offset_minutes),
            (TimeUnit::Minutes, 6, 120)
        );

        let u = units("days since -4713-01-01");
        assert_eq!((u.year, u.month, u.day), (-4713, 1, 1));

        let u = units("  Days   SINCE   12345-06-07  8:09:10.123456789   UTC  ");
        assert_eq!(
            (
                u.unit,
                u.year,
                u.month,
                u.day,
                u.hour,
                u.minute,
                u.second,
                u.nanosecond
            ),
            (TimeUnit::Days, 12345, 6, 7, 8, 9, 10, 123_456_789)
        );
        assert_eq!(
            units("s since 2000-01-01 12:30:00.5").nanosecond,
            500_000_000
        );
        assert_eq!(
            units("s since 2000-01-01 12:30:00.500000000000").nanosecond,
            500_000_000
        );
        assert_eq!(units("h since 2000-01-01 12").hour, 12);
        assert_eq!(units("h since 2000-01-01 12:30").minute, 30);
        assert_eq!(
            units("h since 2000-01-01 12:30 -0530").utc_offset_minutes,
            -330
        );
        assert_eq!(
            units("h since 2000-01-01 12:30 +530").utc_offset_minutes,
            330
        );
        assert_eq!(
            units("h since 2000-01-01 00:00:00 -6").utc_offset_minutes,
            -360
        );
        assert_eq!(
            units("h since 2000-01-01T00:00:00+01").utc_offset_minutes,
            60
        );
        assert_eq!(
            units("h since 2000-01-01 00:00 UTC+01:00").utc_offset_minutes,
            60
        );
        assert_eq!(units("h since 2000-01-01 gmt").utc_offset_minutes, 0);
        assert_eq!(units("h since 2000-01-01Z").utc_offset_minutes, 0);
        assert_eq!(units("days since 2000-01-01\0\0").day, 1);

        let words = [
            ("nanoseconds", TimeUnit::Nanoseconds),
            ("ns", TimeUnit::Nanoseconds),
            ("microseconds", TimeUnit::Microseconds),
            ("us", TimeUnit::Microseconds),
            ("milliseconds", TimeUnit::Milliseconds),
            ("ms", TimeUnit::Milliseconds),
            ("msec", TimeUnit::Milliseconds),
            ("seconds", TimeUnit::Seconds),
            ("second", TimeUnit::Seconds),
            ("secs", TimeUnit::Seconds),
            ("sec", TimeUnit::Seconds),
            ("S", TimeUnit::Seconds),
            ("minutes", TimeUnit::Minutes),
            ("minute", TimeUnit::Minutes),
            ("mins", TimeUnit::Minutes),
            ("min", TimeUnit::Minutes),
            ("hours", TimeUnit::Hours),
            ("hour", TimeUnit::Hours),
            ("hrs", TimeUnit::Hours),
            ("hr", TimeUnit::Hours),
            ("h", TimeUnit::Hours),
            ("days", TimeUnit::Days),
            ("day", TimeUnit::Days),
            ("d", TimeUnit::Days),
            ("Weeks", TimeUnit::Weeks),
            ("week", TimeUnit::Weeks),
        ];
        for (word, unit) in words {
            assert_eq!(
                units(&format!("{word} since 2000-01-01")).unit,
                unit,
                "{word}"
            );
        }
    }

    #[test]
    fn parse_errors() {
        for text in [
            "months since 2000-01-01",
            "years since 2000-01-01",
            "common_years since 1-1-1",
            "Month since 2000-01-01",
        ] {
            assert_eq!(
                parse_units(text),
                Err(TimeError::Ambiguous(text.into())),
                "{text}"
            );
        }
        for text in [
            "K",
            "m s-1",
            "",
            "days",
            "days since",
            "fortnights since 2000-01-01",
            "days after 2000-01-01",
            "dayssince 2000-01-01",
        ] {
            assert_eq!(
                parse_units(text),
                Err(TimeError::NotTime(text.into())),
                "{text}"
            );
        }
        for text in [
            "days since 2000-13-01",
            "days since 2000-00-01",
            "days since 2000-01-32",
            "days since yesterday",
            "days since 2000-01",
            "days since 2000/01/01",
            "days since 2000-01-01 25:00",
            "days since 2000-01-01 10:60",
            "days since 2000-01-01 10:00:60",
            "days since 2000-01-01 10:00:00.",
            "days since 2000-01-01 10:00:00.0000000001",
            "days since 2000-01-01T",
            "days since 2000-01-01 00:00 +2400",
            "days since 2000-01-01 00:00 +02:3",
            "days since 2000-01-01 00:00 +12345",
            "days since 2000-01-01 00:00 nowhere",
            "days since 2000-01-01 00:00 Z extra",
            "days since 99999999999999999999-01-01",
        ] {
            match parse_units(text) {
                Err(TimeError::Date { text: t, reason }) => {
                    assert_eq!(t, text);
                    assert!(!reason.is_empty());
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(is_time_units("days since 2000-01-01"));
        assert!(is_time_units("months since 2000-01-01"));
        assert!(is_time_units("DAYS SINCE whenever"));
        assert!(!is_time_units("K"));
        assert!(!is_time_units("m s-1"));
        assert!(!is_time_units("days since"));
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            TimeError::NotTime("K".into()).to_string(),
            "'K' are not CF time units (expected '<unit> since <date>')"
        );
        assert_eq!(
            TimeError::Calendar("fancy".into()).to_string(),
            "unknown calendar 'fancy'"
        );
        let e = recode(
            "days since 2001-02-29",
            "days since 2000-01-01",
            Calendar::NoLeap,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid date in 'days since 2001-02-29': "),
            "{e}"
        );
        assert!(parse_units("years since 2000-01-01")
            .unwrap_err()
            .to_string()
            .contains("no fixed length"));
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "hours since 1900-01-01 06:00:00.5 +02:00",
            "days since -4713-01-01",
            "seconds since 12345-12-31 23:59:59.000000001 -05:30",
            "weeks since 0000-01-01",
        ] {
            let u = units(text);
            let shown = u.to_string();
            assert_eq!(units(&shown), u, "{text} -> {shown}");
        }
        assert_eq!(
            units("days since 2000-1-1").to_string(),
            "days since 2000-01-01 00:00:00"
        );
        assert_eq!(
            units("days since -1-1-1").to_string(),
            "days since -0001-01-01 00:00:00"
        );
    }

    // ---- recode ---------------------------------------------------------

    #[test]
    fn recode_basics() {
        let s = Calendar::Standard;
        let r = rc("days since 2000-01-01", "days since 2000-01-01", s);
        assert!(r.is_identity());
        assert_eq!(r, Recode::identity());

        let r = rc("days since 2000-01-02", "days since 2000-01-01", s);
        assert_eq!(r, affine(1, 1, 1));
        assert_eq!(r.apply_i64(5), Some(6));

        let r = rc("hours since 2000-01-01", "days since 2000-01-01", s);
        assert_eq!(r, affine(1, 0, 24));
        assert_eq!(r.apply_i64(48), Some(2));
        assert_eq!(r.apply_i64(5), None);
        assert_eq!(r.apply_f64(6.0), 0.25);
        assert_eq!(r.apply_f32(6.0), 0.25);

        let r = rc("hours since 2000-01-02 06:00", "days since 2000-01-01", s);
        assert_eq!(r, affine(1, 30, 24));
        assert_eq!(r.apply_i64(18), Some(2));
        assert_eq!(r.apply_f64(0.0), 1.25);

        let r = rc("days since 2000-01-01", "hours since 2000-01-02 06:00", s);
        assert_eq!(r.apply_i64(2), Some(18));

        // Time zones: 06:00 at +02:00 is 04:00 UTC.
        let r = rc(
            "minutes since 2000-01-01 06:00:00 +02:00",
            "minutes since 2000-01-01",
            s,
        );
        assert_eq!(r, affine(1, 240, 1));
        let r = rc(
            "seconds since 1970-01-01T00:00:00Z",
            "seconds since 1970-01-01 00:00:00 UTC",
            s,
        );
        assert!(r.is_identity());
        let r = rc(
            "milliseconds since 1970-01-01 00:00:00.5",
            "seconds since 1970-01-01",
            s,
        );
        assert_eq!(r, affine(1, 500, 1000));
        let r = rc("weeks since 2000-01-01", "days since 2000-01-01", s);
        assert_eq!(r, affine(7, 0, 1));
    }

    #[test]
    fn recode_per_calendar() {
        let year = |c| rc("days since 2001-01-01", "days since 2000-01-01", c);
        assert_eq!(year(Calendar::Standard), affine(1, 366, 1));
        assert_eq!(year(Calendar::ProlepticGregorian), affine(1, 366, 1));
        assert_eq!(year(Calendar::Julian), affine(1, 366, 1));
        assert_eq!(year(Calendar::NoLeap), affine(1, 365, 1));
        assert_eq!(year(Calendar::AllLeap), affine(1, 366, 1));
        assert_eq!(year(Calendar::Day360), affine(1, 360, 1));

        let switch = |c| rc("days since 1582-10-15", "days since 1582-10-04", c);
        assert_eq!(switch(Calendar::Standard), affine(1, 1, 1));
        assert_eq!(switch(Calendar::ProlepticGregorian), affine(1, 11, 1));
        assert_eq!(switch(Calendar::Julian), affine(1, 11, 1));

        let feb = |c| rc("days since 1900-03-01", "days since 1900-02-28", c);
        assert_eq!(feb(Calendar::Julian), affine(1, 2, 1));
        assert_eq!(feb(Calendar::ProlepticGregorian), affine(1, 1, 1));
        assert_eq!(feb(Calendar::Standard), affine(1, 1, 1));

        // Julian day numbers.
        let r = rc(
            "days since -4713-01-01 12:00",
            "days since 1970-01-01",
            Calendar::Standard,
        );
        assert_eq!(r, affine(2, -4_881_175, 2));
        assert_eq!(r.apply_f64(2_440_587.5), 0.0);

        // 360-day February 30 exists.
        let r = rc(
            "days since 2000-03-01",
            "days since 2000-02-30",
            Calendar::Day360,
        );
        assert_eq!(r, affine(1, 1, 1));
    }

    #[test]
    fn recode_invalid_dates() {
        let bad = [
            ("days since 2001-02-29", Calendar::NoLeap),
            ("days since 2001-02-29", Calendar::Standard),
            ("days since 2000-02-30", Calendar::AllLeap),
            ("days since 2000-01-31", Calendar::Day360),
            ("days since 1582-10-10", Calendar::Standard),
            ("days since 0000-01-01", Calendar::Standard),
            ("days since 0000-01-01", Calendar::Julian),
            ("days since 1900-02-29", Calendar::ProlepticGregorian),
            ("days since 2000-04-31", Calendar::Julian),
        ];
        for (text, c) in bad {
            for (from, to) in [
                (text, "days since 2000-01-01"),
                ("days since 2000-01-01", text),
            ] {
                match recode(from, to, c) {
                    Err(TimeError::Date { text: t, .. }) => assert_eq!(t, text),
                    other => panic!("{text} ({c}): {other:?}"),
                }
            }
        }
        assert!(recode(
            "days since 1900-02-29",
            "days since 1900-01-01",
            Calendar::Julian
        )
        .is_ok());
        assert!(recode(
            "days since 0000-01-01",
            "days since 2000-01-01",
            Calendar::ProlepticGregorian
        )
        .is_ok());
        assert!(matches!(
            recode(
                "months since 2000-01-01",
                "days since 2000-01-01",
                Calendar::Standard
            ),
            Err(TimeError::Ambiguous(_))
        ));
        assert!(matches!(
            recode("days since 2000-01-01", "K", Calendar::Standard),
            Err(TimeError::NotTime(_))
        ));
    }

    #[test]
    fn huge_years_do_not_overflow() {
        let r = rc(
            "nanoseconds since 9223372036854775807-12-31",
            "weeks since -9223372036854775807-01-01",
            Calendar::ProlepticGregorian,
        );
        assert!(r.den > 0);
        assert_eq!(r.apply_i64(0), None);
    }

    // ---- applying -------------------------------------------------------

    #[test]
    fn integer_application() {
        let r = rc(
            "days since 2000-01-01",
            "hours since 2000-01-01",
            Calendar::Standard,
        );
        assert_eq!(r.apply_i32(2), Some(48));
        assert_eq!(r.apply_i32(-2), Some(-48));
        assert_eq!(r.apply_i32(i32::MAX), None);
        assert_eq!(r.apply_i32(i32::MAX / 24 + 1), None);
        assert_eq!(r.apply_i32(i32::MAX / 24), Some(i32::MAX / 24 * 24));
        assert_eq!(r.apply_i64(i64::MAX), None);
        let r = rc(
            "days since 2000-01-01",
            "nanoseconds since 1970-01-01",
            Calendar::Standard,
        );
        assert_eq!(r.apply_i64(0), Some(946_684_800_000_000_000));
        assert_eq!(r.apply_i64(1_000_000), None);
        let r = rc(
            "days since 2000-01-02",
            "days since 2000-01-01",
            Calendar::Standard,
        );
        assert_eq!(r.apply_i32(i32::MAX), None);
        assert_eq!(r.apply_i32(i32::MIN), Some(i32::MIN + 1));
        let weird = Recode {
            num: 1,
            offset: 0,
            den: 0,
        };
        assert_eq!(weird.apply_i64(1), None);
        assert!(!weird.is_identity());
    }

    #[test]
    fn recode_new_normalises() {
        assert_eq!(
            Recode::new(2, 4, -6),
            Some(Recode {
                num: -1,
                offset: -2,
                den: 3
            })
        );
        assert_eq!(
            Recode::new(0, 0, 5),
            Some(Recode {
                num: 0,
                offset: 0,
                den: 1
            })
        );
        assert_eq!(Recode::new(1, 1, 0), None);
        assert_eq!(Recode::new(1, 1, i128::MIN), None);
        assert!(Recode::new(7, 0, 7).unwrap().is_identity());
        assert_eq!(Recode::default(), Recode::identity());
    }

    #[test]
    fn float_offset_is_exact() {
        let r = rc(
            "days since 2001-01-01",
            "days since 2000-01-01",
            Calendar::Standard,
        );
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for i in 0..200_000 {
            let x = match i % 4 {
                0 => rng.any_f64(),
                1 => rng.moderate_f64(),
                2 => (rng.next() % 2_000_000) as f64 - 1_000_000.0,
                _ => ((rng.next() % 2_000_000) as f64 - 1_000_000.0) / 64.0,
            };
            assert_eq!(r.apply_f64(x).to_bits(), (x + 366.0).to_bits(), "{x:e}");
        }
        assert!(r.apply_f64(f64::NAN).is_nan());
        assert_eq!(r.apply_f64(f64::INFINITY), f64::INFINITY);
        assert_eq!(r.apply_f64(f64::NEG_INFINITY), f64::NEG_INFINITY);
        assert!(r.apply_f32(f32::NAN).is_nan());
        assert_eq!(r.apply_f32(f32::NEG_INFINITY), f32::NEG_INFINITY);
        let nan = f64::from_bits(0x7ff8_dead_beef_0001);
        assert_eq!(r.apply_f64(nan).to_bits(), nan.to_bits());
        assert_eq!(
            Recode::identity().apply_f64(-0.0).to_bits(),
            (-0.0f64).to_bits()
        );
    }

    #[test]
    fn float_division_is_correctly_rounded() {
        // hours → days is x / 24: one IEEE division is the correctly rounded
        // reference, for every finite x.
        let r = rc(
            "hours since 2000-01-01",
            "days since 2000-01-01",
            Calendar::Standard,
        );
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        for i in 0..200_000 {
            let x = if i % 2 == 0 {
                rng.any_f64()
            } else {
                rng.moderate_f64()
            };
            assert_eq!(r.apply_f64(x).to_bits(), (x / 24.0).to_bits(), "{x:e}");
            let y = x as f32;
            if y.is_finite() {
                assert_eq!(r.apply_f32(y).to_bits(), (y / 24.0).to_bits(), "{y:e}");
            }
        }
        // 0.1 hours: the exact quotient is not representable.
        assert_eq!(r.apply_f64(0.1), 0.1 / 24.0);
        assert_eq!(r.apply_f64(-0.0).to_bits(), (-0.0f64).to_bits());
    }

    #[test]
    fn float_shift_and_division_round_once() {
        // (x + 30) / 24: exact for x + 30 representable, then one division.
        let r = rc(
            "hours since 2000-01-02 06:00",
            "days since 2000-01-01",
            Calendar::Standard,
        );
        let mut rng = Rng(42);
        for _ in 0..100_000 {
            let k = (rng.next() >> 12) as i64 - (1 << 51);
            for x in [k as f64, k as f64 / 1024.0] {
                assert_eq!(
                    r.apply_f64(x).to_bits(),
                    ((x + 30.0) / 24.0).to_bits(),
                    "{x:e}"
                );
            }
        }
        // x + 0.25 (days since 06:00 → days since midnight): the naive
        // (4x + 1) / 4 rounds twice; the reference rounds once.
        let r = rc(
            "days since 2000-01-01 06:00",
            "days since 2000-01-01",
            Calendar::Standard,
        );
        assert_eq!(r, affine(4, 1, 4));
        let mut naive_wrong = 0;
        for i in 0..200_000 {
            let x = if i % 2 == 0 {
                rng.any_f64()
            } else {
                rng.moderate_f64()
            };
            assert_eq!(r.apply_f64(x).to_bits(), (x + 0.25).to_bits(), "{x:e}");
            if ((x * 4.0 + 1.0) / 4.0).to_bits() != (x + 0.25).to_bits() {
                naive_wrong += 1;
            }
        }
        assert!(
            naive_wrong > 0,
            "the naive form should sometimes round twice ({naive_wrong})"
        );
        // A result of exactly zero.
        assert_eq!(r.apply_f64(-0.25), 0.0);
    }

    #[test]
    fn float_scaling_rounds_once() {
        // Minutes → seconds is x * 60; a multiply with an offset is one fma.
        let r = rc(
            "minutes since 2000-01-01",
            "seconds since 2000-01-01",
            Calendar::Standard,
        );
        let r2 = rc(
            "minutes since 2000-01-01 00:00:01",
            "seconds since 2000-01-01",
            Calendar::Standard,
        );
        assert_eq!(r2, affine(60, 1, 1));
        let mut rng = Rng(7);
        for _ in 0..100_000 {
            let x = rng.moderate_f64();
            assert_eq!(r.apply_f64(x).to_bits(), (x * 60.0).to_bits(), "{x:e}");
            assert_eq!(
                r2.apply_f64(x).to_bits(),
                x.mul_add(60.0, 1.0).to_bits(),
                "{x:e}"
            );
            let y = x as f32;
            assert_eq!(r.apply_f32(y).to_bits(), (y * 60.0).to_bits(), "{y:e}");
        }
    }
}

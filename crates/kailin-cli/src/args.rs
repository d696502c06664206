//! Validated option values: every numeric option is checked when the command line is parsed,
//! and the message names the allowed range (clap adds the option's name).

/// An integer of at least 1.
pub(crate) fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{s:?} is not a whole number of at least 1")),
    }
}

/// An integer of at least `min` (a batch needs two pairs to contrast; a BERT text three tokens).
pub(crate) fn at_least(min: usize) -> impl Fn(&str) -> Result<usize, String> + Clone + Send + Sync + 'static {
    move |s: &str| match s.trim().parse::<usize>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(format!("{s:?} is not a whole number of at least {min}")),
    }
}

/// A retry count: 0 (no retries) to 100.
pub(crate) fn retries(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n <= 100 => Ok(n),
        _ => Err(format!("{s:?} is not a whole number from 0 to 100")),
    }
}

/// A `u64` of at least 1.
pub(crate) fn at_least_one_u64(s: &str) -> Result<u64, String> {
    at_least_one(s).map(|n| n as u64)
}

/// A position count: at least 2, at most 1,048,576 (a RoPE table beyond that is memory no model
/// here can use; a model's own limit is checked when it loads).
pub(crate) fn positions(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (2..=1 << 20).contains(&n) => Ok(n),
        _ => Err(format!("{s:?} is not a whole number from 2 to 1048576")),
    }
}

/// A thread count: 0 (one per core) up to the cores this machine offers.
pub(crate) fn threads(s: &str) -> Result<usize, String> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    match s.trim().parse::<usize>() {
        Ok(n) if n <= cores => Ok(n),
        _ => Err(format!("{s:?} is not a whole number from 0 (one per core) to {cores} (the cores available)")),
    }
}

fn float(s: &str) -> Result<f64, String> {
    s.trim().parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| format!("{s:?} is not a finite number"))
}

/// A finite number of at least 0.
pub(crate) fn non_negative(s: &str) -> Result<f64, String> {
    float(s).and_then(|v| if v >= 0.0 { Ok(v) } else { Err(format!("{s:?} is negative; give 0 or more")) })
}

/// A finite number above 0.
pub(crate) fn positive(s: &str) -> Result<f64, String> {
    float(s).and_then(|v| if v > 0.0 { Ok(v) } else { Err(format!("{s:?} is not above 0")) })
}

/// [`non_negative`] as `f32`.
pub(crate) fn non_negative_f32(s: &str) -> Result<f32, String> {
    non_negative(s).map(|v| v as f32)
}

/// A probability mass in (0, 1].
pub(crate) fn unit_open_closed(s: &str) -> Result<f64, String> {
    float(s).and_then(|v| if v > 0.0 && v <= 1.0 { Ok(v) } else { Err(format!("{s:?} is not within (0, 1]")) })
}

/// [`unit_open_closed`] as `f32`.
pub(crate) fn unit_open_closed_f32(s: &str) -> Result<f32, String> {
    unit_open_closed(s).map(|v| v as f32)
}

/// A probability margin in [0, 1].
pub(crate) fn unit_closed(s: &str) -> Result<f64, String> {
    float(s).and_then(|v| if (0.0..=1.0).contains(&v) { Ok(v) } else { Err(format!("{s:?} is not within [0, 1]")) })
}

/// A share in [0, 1): a dropout probability, the steps spent warming up.
pub(crate) fn unit_closed_open(s: &str) -> Result<f64, String> {
    float(s).and_then(|v| if (0.0..1.0).contains(&v) { Ok(v) } else { Err(format!("{s:?} is not within [0, 1)")) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(at_least_one("3"), Ok(3));
        assert!(at_least_one("0").unwrap_err().contains("at least 1"));
        assert!(at_least_one("-1").is_err() && at_least_one("x").is_err());
        assert!(positions("1000000000").is_err() && positions("18446744073709551615").is_err());
        assert_eq!(positions("2048"), Ok(2048));
        assert!(threads("100000").unwrap_err().contains("cores available"));
        assert_eq!(threads("0"), Ok(0));
        assert!(non_negative("-0.5").is_err() && non_negative("NaN").is_err() && non_negative("inf").is_err());
        assert_eq!(non_negative("0"), Ok(0.0));
        assert!(positive("0").is_err());
        assert!(unit_open_closed("0").is_err() && unit_open_closed("1.5").is_err());
        assert_eq!(unit_open_closed("1"), Ok(1.0));
        assert!(unit_closed_open("1").is_err() && unit_closed_open("0") == Ok(0.0));
        assert_eq!(at_least(3)("3"), Ok(3));
        assert!(at_least(3)("2").unwrap_err().contains("at least 3"));
        assert!(unit_closed("1.01").is_err() && unit_closed("NaN").is_err());
        assert_eq!(unit_closed("0"), Ok(0.0));
    }
}

//! Growth that tells steps from trends.
//!
//! A least-squares line over the window turns one step (debugpy loading, the first
//! attach) into a steady "growth" for as long as the step stays in the window: a 5.6 MiB
//! attach step read as +13 KiB/s for ten minutes while RSS did not move. Here a series
//! is read in three parts:
//!
//! - **Steps**: runs of consecutive large increments in the same direction, short enough
//!   to be one event ([`detect_steps`]). "Large" is at least [`MIN_STEP`] and well above
//!   the series' own typical increment, so an app that grows by 2 MiB every sample has
//!   no steps: that is a trend.
//! - **Creep**: the Theil-Sen slope (median of pairwise slopes) of the series with every
//!   step taken out. It ignores the odd outlier that is not quite a step.
//! - **Recurring steps**: a staircase (a leak allocating 1 MiB every 2 s, sampled faster
//!   than that) is steps that keep coming. Steps with no debugging cause count as growth
//!   when there are at least [`MIN_RECURRING`] of them in the window and the last came
//!   within twice their typical spacing.
//!
//! The growth figure is creep plus recurring steps, and it is only given once the
//! history covers [`MIN_COVERAGE`] of the window ([`Growth::per_second`] is `None`
//! before). Creep that adds up to less than one [`MIN_STEP`] over the covered time
//! reads as 0: a median of pairwise slopes turns a single jump just below a step in the
//! middle of the window into a small slope (at most the jump over the window), and
//! that is not growth. So the figure resolves `MIN_STEP` per window: 0.4 KiB/s
//! (1.5 MiB/h) with the default 10-minute window.
//!
//! Everything here is pure arithmetic on `(seconds, bytes)` points.

/// The smallest increment that can be a step: Python's allocator and the kernel move RSS
/// by a few pages all the time.
pub const MIN_STEP: f64 = 256.0 * 1024.0;
/// A step must also be this many times the series' median absolute increment.
pub const STEP_OVER_TYPICAL: f64 = 4.0;
/// A run of large increments is one step if it has at most this many increments...
pub const MAX_STEP_SAMPLES: usize = 3;
/// ...or lasts at most this long (seconds); longer runs are a ramp, i.e. a trend.
pub const MAX_STEP_SECONDS: f64 = 2.0;
/// Steps with no debugging cause needed in the window before they count as a trend.
pub const MIN_RECURRING: usize = 3;
/// The share of the window the history must cover before a growth figure is given.
pub const MIN_COVERAGE: f64 = 0.5;
/// Points the Theil-Sen fit looks at at most (evenly thinned beyond): the fit is
/// quadratic in them.
const MAX_FIT_POINTS: usize = 300;

/// One step: the series moved by `bytes` between the samples at `from` and `to`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    /// The time of the last sample before the step.
    pub from: f64,
    /// The time of the first sample after it.
    pub to: f64,
    /// How far the series moved (negative: memory given back).
    pub bytes: f64,
    /// The step is still going on at the newest sample (it may grow further).
    pub open: bool,
}

/// Finds the steps of a series of `(seconds, bytes)` points, oldest first.
pub fn detect_steps(points: &[(f64, f64)]) -> Vec<Step> {
    let increments: Vec<(f64, f64, f64)> = points
        .windows(2)
        .map(|w| (w[0].0, w[1].0, w[1].1 - w[0].1))
        .collect();
    let typical = median(increments.iter().map(|(_, _, d)| d.abs()).collect()).unwrap_or(0.0);
    let threshold = MIN_STEP.max(STEP_OVER_TYPICAL * typical);
    let mut steps = Vec::new();
    let mut run: Option<(usize, usize)> = None; // first and last increment of the run
    let close = |steps: &mut Vec<Step>, (a, b): (usize, usize), open: bool| {
        let from = increments[a].0;
        let to = increments[b].1;
        if b - a < MAX_STEP_SAMPLES || to - from <= MAX_STEP_SECONDS {
            let bytes = increments[a..=b].iter().map(|(_, _, d)| d).sum();
            steps.push(Step {
                from,
                to,
                bytes,
                open,
            });
        }
    };
    for (i, (_, _, d)) in increments.iter().enumerate() {
        let large = d.abs() >= threshold;
        run = match run {
            Some((a, _)) if large && d.signum() == increments[a].2.signum() => Some((a, i)),
            Some(r) => {
                close(&mut steps, r, false);
                large.then_some((i, i))
            }
            None => large.then_some((i, i)),
        };
    }
    if let Some(r) = run {
        close(&mut steps, r, true);
    }
    steps
}

/// The median of `values` (`None` when empty).
fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mid = values.len() / 2;
    let (_, upper, _) = values.select_nth_unstable_by(mid, f64::total_cmp);
    let upper = *upper;
    if values.len() % 2 == 1 {
        return Some(upper);
    }
    let lower = values[..mid].iter().copied().fold(f64::MIN, f64::max);
    Some((lower + upper) / 2.0)
}

/// The Theil-Sen slope of `(seconds, bytes)` points: the median of the slopes between
/// every pair of points at different times. `None` with fewer than two distinct times.
pub fn theil_sen(points: &[(f64, f64)]) -> Option<f64> {
    let thinned: Vec<(f64, f64)> = if points.len() > MAX_FIT_POINTS {
        (0..MAX_FIT_POINTS)
            .map(|i| points[i * (points.len() - 1) / (MAX_FIT_POINTS - 1)])
            .collect()
    } else {
        points.to_vec()
    };
    let mut slopes = Vec::with_capacity(thinned.len() * thinned.len() / 2);
    for (i, (t1, y1)) in thinned.iter().enumerate() {
        for (t2, y2) in &thinned[i + 1..] {
            if (t2 - t1).abs() > f64::EPSILON {
                slopes.push((y2 - y1) / (t2 - t1));
            }
        }
    }
    median(slopes)
}

/// Least-squares slope of `(seconds, bytes)` points, in bytes per second; `None` with
/// fewer than two distinct times. Kept for comparison (`/status` shows it): it is what
/// the growth figure was before steps were told apart.
pub fn least_squares(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mean_t = points.iter().map(|(t, _)| t).sum::<f64>() / n;
    let mean_y = points.iter().map(|(_, y)| y).sum::<f64>() / n;
    let (mut cov, mut var) = (0.0, 0.0);
    for (t, y) in points {
        cov += (t - mean_t) * (y - mean_y);
        var += (t - mean_t) * (t - mean_t);
    }
    (var > f64::EPSILON).then(|| cov / var)
}

/// The growth of a series over a window.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Growth {
    /// Creep plus recurring steps, bytes per second; `None` until the history covers
    /// [`MIN_COVERAGE`] of the window.
    pub per_second: Option<f64>,
    /// Theil-Sen slope with the steps taken out (before the resolution limit).
    pub creep: Option<f64>,
    /// Growth from steps that keep coming (0 when they do not).
    pub recurring: f64,
    /// The least-squares slope of the raw series (for comparison).
    pub least_squares: Option<f64>,
    /// Seconds of the window the history covers.
    pub covered: f64,
}

/// The growth of `points` (the window's samples, oldest first, `(seconds, bytes)`),
/// given the steps found in them and, for each, whether debugging explains it (such steps
/// never count as a trend: they are what debugging cost).
pub fn growth(points: &[(f64, f64)], window: f64, steps: &[(Step, bool)]) -> Growth {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return Growth::default();
    };
    let covered = last.0 - first.0;
    // Take every step out: the series as it would be without them.
    let corrected: Vec<(f64, f64)> = points
        .iter()
        .map(|&(t, y)| {
            let before: f64 = steps
                .iter()
                .filter(|(s, _)| s.to <= t)
                .map(|(s, _)| s.bytes)
                .sum();
            (t, y - before)
        })
        .collect();
    let creep = theil_sen(&corrected);
    let recurring = recurring_rate(
        &steps
            .iter()
            .filter(|(s, explained)| !explained && s.bytes > 0.0)
            .map(|(s, _)| *s)
            .collect::<Vec<_>>(),
        last.0,
    );
    let shown = covered >= MIN_COVERAGE * window && points.len() >= 3;
    let resolved = creep
        .filter(|c| (c * covered).abs() >= MIN_STEP)
        .unwrap_or(0.0);
    Growth {
        per_second: shown.then_some(resolved + recurring),
        creep,
        recurring,
        least_squares: least_squares(points),
        covered,
    }
}

/// Bytes per second from steps that keep coming: at least [`MIN_RECURRING`] of them,
/// the last no older than twice their median spacing at `now`.
fn recurring_rate(steps: &[Step], now: f64) -> f64 {
    if steps.len() < MIN_RECURRING {
        return 0.0;
    }
    let spacings: Vec<f64> = steps.windows(2).map(|w| w[1].to - w[0].to).collect();
    let Some(spacing) = median(spacings) else {
        return 0.0;
    };
    let (Some(first), Some(last)) = (steps.first(), steps.last()) else {
        return 0.0;
    };
    let span = last.to - first.to;
    if span <= f64::EPSILON || now - last.to > 2.0 * spacing {
        return 0.0;
    }
    // The first step starts the staircase; the others are what grew over `span`.
    steps[1..].iter().map(|s| s.bytes).sum::<f64>() / span
}

#[cfg(test)]
mod tests;

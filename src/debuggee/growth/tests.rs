use super::*;

const MIB: f64 = 1048576.0;

/// A series sampled every `dt` seconds for `n` samples, with a value function.
fn series(n: usize, dt: f64, f: impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
    (0..n)
        .map(|i| {
            let t = i as f64 * dt;
            (t, f(t))
        })
        .collect()
}

/// Small deterministic noise of a few pages, like a quiet Python app.
fn noise(t: f64) -> f64 {
    (((t * 7.3).sin() * 3.0).round()) * 4096.0
}

fn steps_of(points: &[(f64, f64)]) -> Vec<(Step, bool)> {
    detect_steps(points)
        .into_iter()
        .map(|s| (s, false))
        .collect()
}

#[test]
fn least_squares_and_theil_sen_find_a_line() {
    assert_eq!(least_squares(&[]), None);
    assert_eq!(theil_sen(&[(1.0, 5.0), (1.0, 9.0)]), None);
    let line = series(10, 1.0, |t| 100.0 + 3.0 * t);
    assert!((least_squares(&line).unwrap() - 3.0).abs() < 1e-9);
    assert!((theil_sen(&line).unwrap() - 3.0).abs() < 1e-9);
}

#[test]
fn one_step_in_a_flat_series_is_a_step_not_growth() {
    // 200 MiB, +5 MiB at t = 30 s, flat after; 60 s window, sampled every second.
    let points = series(60, 1.0, |t| {
        200.0 * MIB + noise(t) + if t >= 30.0 { 5.0 * MIB } else { 0.0 }
    });
    let steps = detect_steps(&points);
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert_eq!((steps[0].from, steps[0].to), (29.0, 30.0));
    assert!((steps[0].bytes - 5.0 * MIB).abs() < 0.1 * MIB);
    let g = growth(&points, 60.0, &steps_of(&points));
    let rate = g.per_second.expect("covered");
    assert!(rate.abs() < 1024.0, "{g:?}");
    // What the least-squares line made of it: about 130 KiB/s.
    assert!(g.least_squares.unwrap() > 100.0 * 1024.0, "{g:?}");
}

#[test]
fn a_step_just_taken_is_no_growth_at_the_next_sample() {
    // The step is the newest increment: still "open", already taken out.
    let points = series(31, 1.0, |t| {
        100.0 * MIB + noise(t) + if t >= 30.0 { 6.0 * MIB } else { 0.0 }
    });
    let steps = detect_steps(&points);
    assert!(steps.len() == 1 && steps[0].open, "{steps:?}");
    let g = growth(&points, 40.0, &steps_of(&points));
    assert!(g.per_second.unwrap().abs() < 1024.0, "{g:?}");
}

#[test]
fn a_step_spread_over_a_few_samples_is_one_step() {
    let points = series(40, 0.2, |t| {
        let extra = if t >= 4.0 {
            2.0 * MIB
        } else if t >= 3.8 {
            1.5 * MIB
        } else if t >= 3.6 {
            0.8 * MIB
        } else {
            0.0
        };
        50.0 * MIB + extra
    });
    let steps = detect_steps(&points);
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert!((steps[0].bytes - 2.0 * MIB).abs() < 1.0, "{steps:?}");
}

#[test]
fn a_smooth_leak_is_growth_with_no_steps() {
    // 2.5 MiB per 5 s sample: every increment is "large", but that is the trend itself.
    let points = series(120, 5.0, |t| 300.0 * MIB + t * 0.5 * MIB + noise(t));
    assert!(detect_steps(&points).is_empty());
    let g = growth(&points, 600.0, &steps_of(&points));
    let rate = g.per_second.unwrap();
    assert!((rate - 0.5 * MIB).abs() < 0.02 * MIB, "{g:?}");
}

#[test]
fn a_staircase_leak_is_growth_from_recurring_steps() {
    // 1 MiB every 2 s, sampled every 200 ms: flat between steps.
    let points = series(60, 0.2, |t| 80.0 * MIB + (t / 2.0).floor() * MIB + noise(t));
    let steps = steps_of(&points);
    assert!(steps.len() >= 5, "{steps:?}");
    let g = growth(&points, 12.0, &steps);
    let rate = g.per_second.unwrap();
    assert!((rate - 0.5 * MIB).abs() < 0.05 * MIB, "{g:?}");
    // The same steps explained by debugging (attach after attach) are not a trend.
    let explained: Vec<(Step, bool)> = steps.iter().map(|(s, _)| (*s, true)).collect();
    assert!(growth(&points, 12.0, &explained).per_second.unwrap().abs() < 1024.0);
}

#[test]
fn a_staircase_that_stopped_is_no_longer_growth() {
    // Three steps, then nothing for much longer than their spacing.
    let points = series(100, 0.2, |t| 80.0 * MIB + (t.min(6.5) / 2.0).floor() * MIB);
    let g = growth(&points, 20.0, &steps_of(&points));
    assert_eq!(g.recurring, 0.0, "{g:?}");
    assert!(g.per_second.unwrap().abs() < 1024.0, "{g:?}");
}

#[test]
fn a_long_ramp_is_a_trend_not_a_step() {
    // Start-up: 30 MiB over 3 s at 200 ms samples, then flat: not a step, and once the
    // ramp is a small part of the window the median ignores it.
    let points = series(150, 0.2, |t| 40.0 * MIB + t.min(3.0) * 10.0 * MIB);
    assert!(detect_steps(&points).is_empty());
    let g = growth(&points, 30.0, &steps_of(&points));
    assert!(g.per_second.unwrap().abs() < 1024.0, "{g:?}");
}

#[test]
fn no_figure_until_the_history_covers_enough_of_the_window() {
    let points = series(10, 1.0, |t| t * MIB);
    let g = growth(&points, 60.0, &[]);
    assert_eq!(g.per_second, None);
    assert!((g.covered - 9.0).abs() < 1e-9);
    let g = growth(&series(31, 1.0, |t| t * MIB), 60.0, &[]);
    assert!((g.per_second.unwrap() - MIB).abs() < 1.0);
}

#[test]
fn memory_given_back_is_a_negative_step() {
    let points = series(
        30,
        1.0,
        |t| if t >= 10.0 { 90.0 * MIB } else { 100.0 * MIB },
    );
    let steps = detect_steps(&points);
    assert_eq!(steps.len(), 1);
    assert!(steps[0].bytes < -9.0 * MIB);
}

#[test]
fn theil_sen_thins_long_series() {
    let line = series(5000, 1.0, |t| 7.0 * t);
    assert!((theil_sen(&line).unwrap() - 7.0).abs() < 1e-9);
}

#[test]
fn a_jump_below_a_step_in_the_middle_of_the_window_is_not_growth() {
    // 24 KiB once, in the middle: the median of pairwise slopes makes a few KiB/s of it.
    let points = series(21, 0.2, |t| {
        250.0 * MIB + if t >= 2.0 { 24576.0 } else { 0.0 }
    });
    let g = growth(&points, 4.0, &steps_of(&points));
    assert!(g.creep.unwrap() > 0.0, "{g:?}");
    assert_eq!(g.per_second, Some(0.0), "{g:?}");
}

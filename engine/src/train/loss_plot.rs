//! `loss.svg` in a training's output folder: the loss of every step so far
//! (across resumes: the checkpoint carries the curve), a moving average over
//! ten steps, and a line where the run was resumed. A plateau, a spike or a
//! slow start is seen at a glance.

use std::fmt::Write as _;

use crate::svg;

/// Steps the moving average spans.
const SMOOTHING: usize = 10;

/// The picture of `losses` (step 1 first) out of `total_steps`; `resumed_at`
/// is the step this invocation started from, if it resumed.
pub fn loss_svg(losses: &[f64], resumed_at: Option<usize>, total_steps: usize) -> String {
    let (left, top, plot_w, plot_h) = (58.0, 44.0, 640.0, 260.0);
    let (width, height) = (left + plot_w + 24.0, top + plot_h + 62.0);
    let title = match losses.last() {
        Some(last) => format!(
            "training loss: {} of {total_steps} steps, last {last:.4}",
            losses.len()
        ),
        None => format!("training loss: no step of {total_steps} done yet"),
    };
    let mut s = svg::open(width, height, &title);
    let finite: Vec<f64> = losses.iter().copied().filter(|l| l.is_finite()).collect();
    let (top_value, step) = svg::axis(finite.iter().copied().fold(0.0, f64::max));
    let steps = total_steps.max(losses.len()).max(1) as f64;
    let x = |i: usize| left + plot_w * (i as f64 + 1.0) / steps;
    let y = |v: f64| top + plot_h - (v.clamp(0.0, top_value) / top_value) * plot_h;
    let lines = (top_value / step).round() as usize;
    for i in 0..=lines {
        let v = step * i as f64;
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#e3e3e3\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555\">{}</text>",
            left + plot_w,
            y(v),
            y(v),
            left - 6.0,
            y(v) + 4.0,
            trim(v)
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">step (of {total_steps})</text>",
        left + plot_w / 2.0,
        top + plot_h + 34.0
    );
    for tick in [0.25, 0.5, 0.75, 1.0] {
        let i = ((steps * tick).round() as usize).max(1);
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">{i}</text>",
            x(i - 1),
            top + plot_h + 16.0
        );
    }
    if let Some(at) = resumed_at.filter(|&at| at > 0) {
        let xx = left + plot_w * at as f64 / steps;
        let _ = writeln!(
            s,
            "<line x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{top}\" y2=\"{:.1}\" stroke=\"#888\" stroke-dasharray=\"4 3\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"#555\" font-size=\"10\">resumed after step {at}</text>",
            top + plot_h,
            xx + 4.0,
            top + 12.0
        );
    }
    let path = |values: &[(usize, f64)]| {
        values
            .iter()
            .enumerate()
            .map(|(n, (i, v))| {
                format!(
                    "{}{:.1},{:.1}",
                    if n == 0 { 'M' } else { 'L' },
                    x(*i),
                    y(*v)
                )
            })
            .collect::<String>()
    };
    let points: Vec<(usize, f64)> = losses
        .iter()
        .enumerate()
        .filter(|(_, l)| l.is_finite())
        .map(|(i, l)| (i, *l))
        .collect();
    let smoothed: Vec<(usize, f64)> = (0..losses.len())
        .filter_map(|i| {
            let window = &losses[i.saturating_sub(SMOOTHING - 1)..=i];
            let finite: Vec<f64> = window.iter().copied().filter(|l| l.is_finite()).collect();
            (!finite.is_empty()).then(|| (i, finite.iter().sum::<f64>() / finite.len() as f64))
        })
        .collect();
    let _ = writeln!(
        s,
        "<path d=\"{}\" fill=\"none\" stroke=\"#a0bfdc\" stroke-width=\"1\"/>\n\
         <path d=\"{}\" fill=\"none\" stroke=\"#1f5a96\" stroke-width=\"2\"/>",
        path(&points),
        path(&smoothed)
    );
    let _ = writeln!(
        s,
        "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#333\"/>\n\
         <text x=\"{left}\" y=\"{:.1}\" font-size=\"10\" fill=\"#555\">light: each step's loss; dark: mean of the last {SMOOTHING} steps</text>\n</svg>",
        left + plot_w,
        top + plot_h,
        top + plot_h,
        height - 8.0
    );
    s
}

/// An axis label without trailing zeros (`0.5`, `2`, `0.25`).
fn trim(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_curve_has_every_step_and_marks_the_resume() {
        let losses = [4.17, 4.1, f64::NAN, 3.2, 2.9];
        let svg = loss_svg(&losses, Some(2), 10);
        assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("5 of 10 steps, last 2.9000"), "{svg}");
        assert!(svg.contains("resumed after step 2"));
        // Four finite points on the light line: one M and three L.
        let light = svg.split("stroke=\"#a0bfdc\"").next().unwrap();
        let d = light.rsplit("d=\"").next().unwrap();
        assert_eq!(d.matches('L').count(), 3, "{d}");
        assert!(!svg.contains("NaN"));
        let empty = loss_svg(&[], None, 74);
        assert!(empty.contains("no step of 74 done yet"));
    }
}

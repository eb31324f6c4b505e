//! The few pieces every picture quarry draws shares: plain SVG 1.1, no
//! scripts, fonts from the viewer. Drawn by hand rather than with a plotting
//! crate: the pictures are a handful of rectangles, lines and labels, and
//! their text stays greppable and stable across versions.

/// `text` safe inside an SVG element or attribute.
pub fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The opening of a `width` × `height` picture on white, with its title.
pub fn open(width: f64, height: f64, title: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"DejaVu Sans, Arial, sans-serif\" \
         font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"16\" y=\"22\" font-size=\"14\" font-weight=\"bold\">{}</text>\n",
        xml_escape(title)
    )
}

/// A round upper bound for an axis from 0 to `max`, and the step of its grid
/// lines: 1, 2, 2.5 or 5 times a power of ten, at most seven steps.
pub fn axis(max: f64) -> (f64, f64) {
    if !(max > 0.0 && max.is_finite()) {
        return (1.0, 0.2);
    }
    let magnitude = 10f64.powf((max / 7.0).log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|step| (max / step - 1e-9).ceil() <= 7.0)
        .unwrap_or(10.0 * magnitude);
    (((max / step - 1e-9).ceil() * step).max(step), step)
}

/// `text` cut at spaces into lines of at most `width` characters (a longer
/// word stays whole on its own line).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + word.chars().count() <= width.max(1) => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_round_numbers_with_few_steps() {
        for (max, top, step) in [
            (0.593, 0.6, 0.1),
            (0.7, 0.7, 0.1),
            (0.31, 0.35, 0.05),
            (1.0, 1.0, 0.2),
            (4.17, 5.0, 1.0),
            (18.6, 20.0, 5.0),
            (0.004, 0.004, 0.001),
        ] {
            let (t, s) = axis(max);
            assert!(
                (t - top).abs() < 1e-9 && (s - step).abs() < 1e-9,
                "{max}: {t} {s}"
            );
        }
        assert_eq!(axis(0.0), (1.0, 0.2));
    }

    #[test]
    fn wrapping_keeps_words_whole() {
        assert_eq!(wrap("a bb ccc dddd", 6), ["a bb", "ccc", "dddd"]);
        assert_eq!(
            wrap("averyveryverylongword x", 4),
            ["averyveryverylongword", "x"]
        );
    }
}

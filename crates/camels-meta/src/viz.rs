//! What the learned weights look like: an HTML page with every token of sample documents coloured by
//! its weight (the weight in a tooltip, answer-bearing tokens underlined), and a PNG heat map of the
//! same tokens (one cell per token, no text), encoded with the `png` crate.

use std::fmt::Write as _;

/// One token as drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenView {
    /// The characters this token adds to the text (empty for a token that continues a character
    /// an earlier token already drew, as byte-level BPE splits some characters).
    pub text: String,
    /// Its weight.
    pub weight: f32,
    /// Whether it overlaps an answer span.
    pub answer: bool,
}

/// One document as drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct DocView {
    /// Heading (document id).
    pub title: String,
    /// Its real tokens, in order.
    pub tokens: Vec<TokenView>,
}

/// The tokens of `text` with their weights: `offsets` are character spans, one per real token.
pub fn token_views(text: &str, offsets: &[(usize, usize)], weights: &[f32], answer: &[bool]) -> Vec<TokenView> {
    let chars: Vec<char> = text.chars().collect();
    let mut drawn = 0;
    offsets
        .iter()
        .zip(weights)
        .zip(answer)
        .map(|((&(start, end), &weight), &answer)| {
            let (from, to) = (start.max(drawn).min(chars.len()), end.min(chars.len()));
            let text: String = if from < to { chars[from..to].iter().collect() } else { String::new() };
            drawn = drawn.max(to);
            TokenView { text, weight, answer }
        })
        .collect()
}

/// `text` with the HTML special characters escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The colour of weight `w` on a scale whose top is `max`: white (0) to red (max), RGB.
pub fn colour(w: f32, max: f32) -> [u8; 3] {
    let x = if max > 0.0 { (w / max).clamp(0.0, 1.0) } else { 0.0 };
    let fade = (255.0 * (1.0 - x)).round() as u8;
    [255, fade, fade]
}

fn max_weight(docs: &[DocView]) -> f32 {
    docs.iter().flat_map(|d| d.tokens.iter().map(|t| t.weight)).fold(0.0, f32::max)
}

/// The page style shared by [`html_page`] and the demo report.
pub const PAGE_STYLE: &str = "body{font-family:sans-serif;max-width:60em;margin:2em auto}\
     .doc{white-space:pre-wrap;font-family:monospace;line-height:1.7;border:1px solid #ccc;padding:.5em}\
     .t.a{text-decoration:underline;text-decoration-color:#06c;text-decoration-thickness:2px}\
     table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}td.lr{white-space:nowrap}";

/// A self-contained HTML page: `summary` (plain text) on top, then every document with one
/// `<span class="t">` per token, coloured by weight relative to the largest on the page.
pub fn html_page(title: &str, summary: &str, docs: &[DocView]) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title><style>{PAGE_STYLE}</style></head><body>\n\
         <h1>{}</h1>\n<pre>{}</pre>\n",
        escape(title),
        escape(title),
        escape(summary)
    );
    html.push_str(&docs_html(docs));
    html.push_str("</body></html>\n");
    html
}

/// The documents of [`html_page`] as an HTML fragment (a legend, then one `<div class="doc">` per
/// document), for pages that style it with [`PAGE_STYLE`].
pub fn docs_html(docs: &[DocView]) -> String {
    let max = max_weight(docs);
    let mut html = format!(
        "<p>White = 0, red = {max:.4} (the largest weight on this page); hover for a token's weight; \
         answer-bearing tokens are underlined in blue.</p>\n"
    );
    for doc in docs {
        let _ = write!(html, "<h2>{}</h2>\n<div class=\"doc\">", escape(&doc.title));
        for (i, token) in doc.tokens.iter().enumerate() {
            let [r, g, b] = colour(token.weight, max);
            let class = if token.answer { "t a" } else { "t" };
            let _ = write!(
                html,
                "<span class=\"{class}\" data-i=\"{i}\" title=\"w={:.4}\" style=\"background:#{r:02x}{g:02x}{b:02x}\">{}</span>",
                token.weight,
                escape(&token.text)
            );
        }
        html.push_str("</div>\n");
    }
    html
}

/// One named line of a [`svg_line_plot`]: (x, y) points in x order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// The points.
    pub points: Vec<(f64, f64)>,
}

const PLOT_COLOURS: [&str; 4] = ["#c0392b", "#2471a3", "#229954", "#7d3c98"];

/// An inline SVG line plot (no scripts) of `series` on shared axes, `width`×`height` pixels, with
/// the x and y ranges written at the axis ends and a legend; non-finite points are left out.
pub fn svg_line_plot(title: &str, x_label: &str, series: &[Series], width: usize, height: usize) -> String {
    let finite = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite();
    let all: Vec<(f64, f64)> = series.iter().flat_map(|s| s.points.iter().copied().filter(finite)).collect();
    let (w, h) = (width as f64, height as f64);
    let (left, right, top, bottom) = (60.0, 10.0, 24.0, 36.0);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">\
         <text x=\"{left}\" y=\"14\" font-size=\"13\">{}</text>",
        escape(title)
    );
    let (x0, x1) = all.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (y0, y1) = all.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.1), b.max(p.1)));
    if all.is_empty() {
        svg.push_str("<text x=\"60\" y=\"50\">no data</text></svg>");
        return svg;
    }
    let span = |a: f64, b: f64| if b > a { b - a } else { 1.0 };
    let px = |x: f64| left + (x - x0) / span(x0, x1) * (w - left - right);
    let py = |y: f64| h - bottom - (y - y0) / span(y0, y1) * (h - top - bottom);
    let _ = write!(
        svg,
        "<rect x=\"{left}\" y=\"{top}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"#999\"/>\
         <text x=\"{left}\" y=\"{:.1}\">{x0}</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{x1}</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{y1:.4}</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{y0:.4}</text>",
        w - left - right,
        h - top - bottom,
        h - bottom + 14.0,
        w - right,
        h - bottom + 14.0,
        (w + left - right) / 2.0,
        h - 6.0,
        escape(x_label),
        left - 4.0,
        top + 10.0,
        left - 4.0,
        h - bottom,
    );
    for (i, s) in series.iter().enumerate() {
        let colour = PLOT_COLOURS[i % PLOT_COLOURS.len()];
        let points: Vec<String> =
            s.points.iter().filter(|p| finite(p)).map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y))).collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"{colour}\" text-anchor=\"end\">{}</text>",
            points.join(" "),
            w - right - 4.0,
            top + 14.0 * (i + 1) as f64,
            escape(&s.label)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Pixels per token cell (square).
const CELL: usize = 8;

/// A heat map of the same tokens as a PNG: `cols` cells per line, one cell per token coloured as in
/// the HTML page, a blue bar under answer-bearing cells, a grey line between documents.
pub fn png_heatmap(docs: &[DocView], cols: usize) -> Vec<u8> {
    let cols = cols.max(1);
    let max = max_weight(docs);
    let lines: Vec<usize> = docs.iter().map(|d| d.tokens.len().div_ceil(cols).max(1)).collect();
    let width = cols * CELL;
    let height = (lines.iter().sum::<usize>() * CELL + docs.len().saturating_sub(1) * 2).max(1);
    let mut pixels = vec![255u8; width * height * 3];
    let mut put = |x: usize, y: usize, rgb: [u8; 3]| {
        let at = (y * width + x) * 3;
        pixels[at..at + 3].copy_from_slice(&rgb);
    };
    let mut top = 0;
    for (d, doc) in docs.iter().enumerate() {
        if d > 0 {
            for x in 0..width {
                put(x, top, [160, 160, 160]);
            }
            top += 2;
        }
        for (i, token) in doc.tokens.iter().enumerate() {
            let (cx, cy) = ((i % cols) * CELL, top + (i / cols) * CELL);
            let fill = colour(token.weight, max);
            for dy in 0..CELL {
                for dx in 0..CELL {
                    let rgb = if dx == CELL - 1 || dy == CELL - 1 {
                        [230, 230, 230]
                    } else if token.answer && dy >= CELL - 3 {
                        [0, 102, 204]
                    } else {
                        fill
                    };
                    put(cx + dx, cy + dy, rgb);
                }
            }
        }
        top += lines[d] * CELL;
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width as u32, height as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().expect("png header to memory");
        writer.write_image_data(&pixels).expect("png data to memory");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_plots_draw_every_finite_point_of_every_series() {
        let series = [
            Series { label: "a<b".into(), points: vec![(0.0, 1.0), (1.0, 3.0), (2.0, f64::NAN), (3.0, 2.0)] },
            Series { label: "flat".into(), points: vec![(0.0, 2.0), (3.0, 2.0)] },
        ];
        let svg = svg_line_plot("J", "step", &series, 300, 200);
        assert_eq!(svg.matches("<polyline").count(), 2);
        let first = svg.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
        assert_eq!(first.split(' ').count(), 3, "the NaN point is left out: {first}");
        // x from 0 to 3 spans the plot's inner width (60 .. 290), y 1 .. 3 its height (164 .. 24).
        assert!(first.starts_with("60.0,164.0 ") && first.ends_with(" 290.0,94.0"), "{first}");
        assert!(svg.contains("a&lt;b") && !svg.contains("<script"));
        assert!(svg_line_plot("J", "step", &[], 300, 200).contains("no data"));
    }
}

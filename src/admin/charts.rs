//! Charts for the dashboard as inline SVG text: pure functions from figures to
//! markup, so the page needs no JavaScript and the numbers can be unit-tested.
//!
//! Written by hand rather than with a plotting crate: `plotters` lays text out
//! itself and needs a font backend (system fonts or bundled font files) even for
//! SVG, and `charts-rs` bundles fonts as well; both emit `style` attributes that
//! the page's CSP (`style-src 'self'`) would block. What we need is two kinds of
//! bar chart, a few rectangles and labels, which the browser's own fonts render.
//!
//! Every chart has a `<title>` and `<desc>` named by `aria-labelledby`, uses
//! presentation attributes only (never `style=`), tells series apart by colour
//! *and* fill pattern with a labelled legend, and scales with its `viewBox`.
//! A chart whose figures are all zero (or absent) says so instead of dividing
//! by zero.

use std::fmt::Write;

/// One named row of figures, one value per category.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub values: Vec<i64>,
}

/// The words around a chart; `id` must be unique on the page.
#[derive(Debug, Clone)]
pub struct Labels {
    pub id: String,
    pub title: String,
    pub desc: String,
    pub no_data: String,
}

/// Colours with at least 3:1 contrast against white (WCAG 1.4.11) and against
/// each other's patterns; the pattern, not only the hue, tells series apart.
const COLOURS: [&str; 3] = ["#1f4e79", "#a34700", "#2d6a2f"];
const INK: &str = "#1a1a1a";
const GRID: &str = "#767676";

/// Sizes in viewBox units. The chart scales to its column, so these are chosen
/// for a phone (≈ 340 px wide) to show text at 10–11 px and a desktop column
/// (40 rem) at about 20 px: the column chart needs 24 groups, the bar chart
/// only its regions, hence different widths.
#[derive(Clone, Copy)]
struct Frame {
    width: f64,
    font: f64,
}

const COLUMNS: Frame = Frame {
    width: 720.0,
    font: 22.0,
};
const BARS: Frame = Frame {
    width: 480.0,
    font: 16.0,
};

/// Vertical columns, grouped by category (e.g. the hours of a day); the
/// category labels are shown every `label_every` categories.
pub fn columns(
    labels: &Labels,
    categories: &[String],
    series: &[Series],
    label_every: usize,
) -> String {
    let f = COLUMNS;
    let max = max_value(series);
    if max == 0 {
        return no_data(open(labels, f, 120.0), labels, f, 120.0);
    }
    let height = 360.0;
    let mut svg = open(labels, f, height);
    patterns(&mut svg, labels, series.len());
    let (left, right, top, bottom) = (84.0, 12.0, 28.0, height - 96.0);
    let plot_h = bottom - top;
    axis_lines(
        &mut svg,
        max,
        |v| bottom - plot_h * v as f64 / max as f64,
        left,
        f.width - right,
        f.font,
    );
    let n = categories.len().max(1) as f64;
    let group = (f.width - left - right) / n;
    let bar = (group * 0.8) / series.len().max(1) as f64;
    for (c, name) in categories.iter().enumerate() {
        let x0 = left + group * c as f64 + group * 0.1;
        for (s, ser) in series.iter().enumerate() {
            let v = ser.values.get(c).copied().unwrap_or(0).max(0);
            let h = plot_h * v as f64 / max as f64;
            bar_rect(
                &mut svg,
                labels,
                s,
                x0 + bar * s as f64,
                bottom - h,
                bar,
                h,
                &ser.label,
                name,
                v,
            );
        }
        if label_every > 0 && c % label_every == 0 {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" font-size="{}" text-anchor="middle" fill="{INK}">{}</text>"#,
                x0 + group * 0.4,
                bottom + f.font + 4.0,
                f.font,
                escape(name)
            );
        }
    }
    legend(&mut svg, labels, series, f, height - 24.0);
    close(svg)
}

/// Horizontal bars, grouped by category (e.g. regions), each bar labelled with
/// its value at its end so no number depends on reading a colour.
pub fn bars(labels: &Labels, categories: &[String], series: &[Series]) -> String {
    let f = BARS;
    let max = max_value(series);
    let per_bar = 20.0;
    let group = per_bar * series.len().max(1) as f64 + 16.0;
    let top = 8.0;
    let plot_h = group * categories.len() as f64;
    let height = if max == 0 { 120.0 } else { top + plot_h + 48.0 };
    let mut svg = open(labels, f, height);
    if max == 0 {
        return no_data(svg, labels, f, height);
    }
    patterns(&mut svg, labels, series.len());
    let (left, right) = (130.0, 56.0);
    let plot_w = f.width - left - right;
    let _ = write!(
        svg,
        r#"<line x1="{left}" y1="{top}" x2="{left}" y2="{:.1}" stroke="{GRID}" stroke-width="1"/>"#,
        top + plot_h
    );
    for (c, name) in categories.iter().enumerate() {
        let y0 = top + group * c as f64 + 8.0;
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="{}" text-anchor="end" fill="{INK}">{}</text>"#,
            left - 8.0,
            y0 + per_bar * series.len() as f64 / 2.0 + 5.0,
            f.font,
            escape(name)
        );
        for (s, ser) in series.iter().enumerate() {
            let v = ser.values.get(c).copied().unwrap_or(0).max(0);
            let w = plot_w * v as f64 / max as f64;
            let y = y0 + per_bar * s as f64;
            bar_rect(
                &mut svg,
                labels,
                s,
                left,
                y + 2.0,
                w,
                per_bar - 4.0,
                &ser.label,
                name,
                v,
            );
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" font-size="{:.0}" fill="{INK}">{v}</text>"#,
                left + w + 6.0,
                y + per_bar - 6.0,
                f.font - 2.0
            );
        }
    }
    legend(&mut svg, labels, series, f, top + plot_h + 24.0);
    close(svg)
}

fn max_value(series: &[Series]) -> i64 {
    series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .max()
        .unwrap_or(0)
        .max(0)
}

fn open(labels: &Labels, f: Frame, height: f64) -> String {
    let id = escape(&labels.id);
    let width = f.width;
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height:.0}" width="100%" role="img" aria-labelledby="{id}-title {id}-desc" data-chart="{id}"><title id="{id}-title">{}</title><desc id="{id}-desc">{}</desc>"#,
        escape(&labels.title),
        escape(&labels.desc)
    )
}

fn close(mut svg: String) -> String {
    svg.push_str("</svg>");
    svg
}

fn no_data(mut svg: String, labels: &Labels, f: Frame, height: f64) -> String {
    let _ = write!(
        svg,
        r#"<rect x="1" y="1" width="{:.0}" height="{:.0}" fill="none" stroke="{GRID}" stroke-width="1"/><text x="{:.0}" y="{:.0}" font-size="{}" text-anchor="middle" fill="{INK}" data-no-data="">{}</text>"#,
        f.width - 2.0,
        height - 2.0,
        f.width / 2.0,
        height / 2.0 + 5.0,
        f.font,
        escape(&labels.no_data)
    );
    close(svg)
}

/// Solid for the first series, white diagonal stripes for the second, white
/// dots for the third: shapes that differ without colour vision.
fn patterns(svg: &mut String, labels: &Labels, n: usize) {
    let id = escape(&labels.id);
    svg.push_str("<defs>");
    for s in 1..n {
        let colour = COLOURS[s % COLOURS.len()];
        let mark = if s % 2 == 1 {
            r##"<path d="M0,8 L8,0" stroke="#ffffff" stroke-width="2"/>"##
        } else {
            r##"<circle cx="4" cy="4" r="1.6" fill="#ffffff"/>"##
        };
        let _ = write!(
            svg,
            r#"<pattern id="{id}-p{s}" width="8" height="8" patternUnits="userSpaceOnUse"><rect width="8" height="8" fill="{colour}"/>{mark}</pattern>"#
        );
    }
    svg.push_str("</defs>");
}

fn fill(labels: &Labels, s: usize) -> String {
    if s == 0 {
        COLOURS[0].to_owned()
    } else {
        format!("url(#{}-p{s})", escape(&labels.id))
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "one bar's geometry and its words"
)]
fn bar_rect(
    svg: &mut String,
    labels: &Labels,
    s: usize,
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    series: &str,
    category: &str,
    value: i64,
) {
    let _ = write!(
        svg,
        r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{}" stroke="{}" stroke-width="1" data-series="{s}" data-value="{value}"><title>{} · {}: {value}</title></rect>"#,
        fill(labels, s),
        COLOURS[s % COLOURS.len()],
        escape(category),
        escape(series)
    );
}

/// Horizontal grid lines at 0, ½ and the maximum, each labelled.
fn axis_lines(svg: &mut String, max: i64, y_of: impl Fn(i64) -> f64, x1: f64, x2: f64, font: f64) {
    let mut ticks = vec![0, max / 2, max];
    ticks.dedup();
    for v in ticks {
        let y = y_of(v);
        let _ = write!(
            svg,
            r#"<line x1="{x1}" y1="{y:.1}" x2="{x2}" y2="{y:.1}" stroke="{GRID}" stroke-width="1"/><text x="{:.1}" y="{:.1}" font-size="{font}" text-anchor="end" fill="{INK}">{v}</text>"#,
            x1 - 6.0,
            y + font / 3.0
        );
    }
}

/// One row of swatch + label per series; a label's width is estimated (full
/// width for Hangul, about half for Latin) since the browser's font is unknown.
fn legend(svg: &mut String, labels: &Labels, series: &[Series], f: Frame, y: f64) {
    let mut x = 12.0;
    let swatch = f.font;
    for (s, ser) in series.iter().enumerate() {
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="{:.1}" width="{swatch}" height="{swatch}" fill="{}" stroke="{}" stroke-width="1"/><text x="{:.1}" y="{:.1}" font-size="{}" fill="{INK}">{}</text>"#,
            y - swatch * 0.85,
            fill(labels, s),
            COLOURS[s % COLOURS.len()],
            x + swatch * 1.4,
            y,
            f.font,
            escape(&ser.label)
        );
        let text: f64 = ser
            .label
            .chars()
            .map(|c| if c.is_ascii() { 0.6 } else { 1.0 })
            .sum();
        x += swatch * 1.4 + f.font * text + f.font * 1.5;
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Labels {
        Labels {
            id: "c".into(),
            title: "Title <1>".into(),
            desc: "Desc".into(),
            no_data: "No data".into(),
        }
    }

    fn series() -> Vec<Series> {
        vec![
            Series {
                label: "Made".into(),
                values: vec![10, 0, 5],
            },
            Series {
                label: "Picked up".into(),
                values: vec![2, 4, 0],
            },
        ]
    }

    fn cats() -> Vec<String> {
        vec!["A".into(), "B".into(), "C".into()]
    }

    /// `(data-value, the rect's height or width)` for every bar.
    fn bar_sizes(svg: &str, dim: &str) -> Vec<(i64, f64)> {
        svg.split("<rect ")
            .filter(|r| r.contains("data-value=\""))
            .map(|r| {
                let attr = |name: &str| {
                    let start = r.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
                    r[start..start + r[start..].find('"').unwrap()].to_owned()
                };
                (
                    attr("data-value").parse().unwrap(),
                    attr(dim).parse().unwrap(),
                )
            })
            .collect()
    }

    fn assert_proportional(sizes: &[(i64, f64)]) {
        let (max_v, max_len) = sizes.iter().copied().max_by_key(|(v, _)| *v).unwrap();
        assert!(max_len > 0.0);
        for (v, len) in sizes {
            let expected = max_len * *v as f64 / max_v as f64;
            assert!(
                (len - expected).abs() < 0.2,
                "{v} drawn {len}, expected {expected}"
            );
        }
    }

    #[test]
    fn column_heights_are_proportional_to_the_figures() {
        let svg = columns(&labels(), &cats(), &series(), 1);
        let sizes = bar_sizes(&svg, "height");
        assert_eq!(
            sizes.iter().map(|s| s.0).collect::<Vec<_>>(),
            [10, 2, 0, 4, 5, 0]
        );
        assert_proportional(&sizes);
    }

    #[test]
    fn bar_widths_are_proportional_and_each_bar_says_its_number() {
        let svg = bars(&labels(), &cats(), &series());
        let sizes = bar_sizes(&svg, "width");
        assert_eq!(sizes.len(), 6);
        assert_proportional(&sizes);
        for v in ["10", "5", "4", "2"] {
            assert!(svg.contains(&format!(">{v}</text>")), "{v} not labelled");
        }
    }

    #[test]
    fn charts_are_named_labelled_and_free_of_style_attributes() {
        for svg in [
            columns(&labels(), &cats(), &series(), 1),
            bars(&labels(), &cats(), &series()),
        ] {
            assert!(svg.contains(r#"role="img""#));
            assert!(svg.contains(r#"aria-labelledby="c-title c-desc""#));
            assert!(svg.contains(r#"<title id="c-title">Title &lt;1&gt;</title>"#));
            assert!(svg.contains(r#"<desc id="c-desc">Desc</desc>"#));
            assert!(svg.contains("viewBox=") && svg.contains(r#"width="100%""#));
            // Legend labels and category labels.
            for text in [
                ">Made</text>",
                ">Picked up</text>",
                ">A</text>",
                ">C</text>",
            ] {
                assert!(svg.contains(text), "{text} missing");
            }
            // The second series is told apart by a pattern, not only a hue.
            assert!(svg.contains("url(#c-p1)"));
            assert!(!svg.contains("style="), "{svg}");
        }
    }

    #[test]
    fn no_figures_give_a_chart_that_says_so() {
        let zero = vec![Series {
            label: "Made".into(),
            values: vec![0, 0],
        }];
        for svg in [
            columns(&labels(), &cats(), &zero, 1),
            columns(&labels(), &[], &[], 1),
            bars(&labels(), &[], &[]),
            bars(&labels(), &cats(), &zero),
        ] {
            assert!(svg.contains("data-no-data"), "{svg}");
            assert!(svg.contains(">No data</text>"));
            assert!(!svg.contains("NaN") && !svg.contains("inf"));
            assert!(svg.ends_with("</svg>"));
        }
    }
}

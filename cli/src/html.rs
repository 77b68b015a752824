//! Self-contained HTML pages (`explore.html`, `report.html`): one file each, its style inline,
//! its plots inline SVG (drawn by plotters; the browser draws their text with its own fonts) or
//! embedded PNG. No script, nothing fetched from the network: the page reads the same offline,
//! without JavaScript, and can be mailed as it is.

use core::fmt::Write as _;

use std::sync::OnceLock;

use anyhow::{Result, anyhow, ensure};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Registers the DejaVu Sans font compiled into the binary as plotters' `sans-serif` (text is
/// measured with it in every plot, drawn with it in PNGs).
pub(crate) fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular()).is_ok()
    });
    ensure!(ok, "the embedded DejaVu Sans font does not load");
    Ok(())
}

/// `text` with HTML's five special characters escaped.
pub(crate) fn escape(text: &str) -> String {
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

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1200px;\
padding:0 1em;color:#222}h1{font-size:1.6em}h2{margin-top:0;font-size:1.25em}\
section{border-top:1px solid #ccc;padding:1em 0}table{border-collapse:collapse;margin:.5em 0;font-size:.9em}\
td,th{border:1px solid #ddd;padding:.2em .5em;text-align:left}td.n,td.p{text-align:right;font-variant-numeric:tabular-nums}\
td.suppressed{color:#888;text-align:right;font-style:italic}.kind{font-size:.7em;color:#666;font-weight:normal}\
.plots{display:flex;flex-wrap:wrap;gap:1em}.note{color:#555;font-size:.9em}nav a{margin-right:.6em}\
img{max-width:100%}figure{margin:0}.plots>figure{flex:0 1 580px}";

/// A whole page: `title` and `body` (HTML) with the shared style.
pub(crate) fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n\
         <style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n",
        escape(title)
    )
}

/// One series of a bar chart: its name, colour and a value per category (`None`: not shown).
pub(crate) struct Series<'a> {
    /// Legend name.
    pub(crate) name: &'a str,
    /// Bar colour.
    pub(crate) color: RGBColor,
    /// A value per category.
    pub(crate) values: Vec<Option<f64>>,
}

/// The pooled figures' colour.
pub(crate) const POOLED: RGBColor = RGBColor(31, 119, 180);
/// A hospital's own figures' colour.
pub(crate) const LOCAL: RGBColor = RGBColor(255, 127, 14);

/// A horizontal bar chart as inline SVG: a row per category (the first on top), a bar per
/// series in it, values as percentages; a category with a marker (why it has no bar: `< 10`)
/// shows it.
pub(crate) fn bar_chart(
    title: &str,
    categories: &[String],
    series: &[Series<'_>],
    markers: &[Option<String>],
) -> Result<String> {
    let n = categories.len().max(1);
    let top = series.iter().flat_map(|s| s.values.iter().flatten()).fold(0.0f64, |a, &b| a.max(b));
    let x_max = if top > 0.0 { (top * 1.15).min(1.0).max(top) } else { 1.0 };
    let label_chars = categories.iter().map(|c| c.chars().count()).max().unwrap_or(4).min(28);
    let height = 70 + 18 * n as u32 * (series.len().max(1) as u32).min(2);
    register_font()?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (560, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 15))
            .margin(6)
            .x_label_area_size(28)
            .y_label_area_size(18 + 7 * label_chars as u32)
            .build_cartesian_2d(0.0..x_max, 0.0..n as f64)
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_labels(6)
            .x_label_formatter(&|x| format!("{:.0}%", x * 100.0))
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        // The categories' names, right-aligned left of their rows (plotters places axis labels
        // by ticks, which need not fall on the rows).
        let name_style = ("sans-serif", 12).into_font().into_text_style(&root).pos(Pos::new(HPos::Right, VPos::Center));
        for (i, name) in categories.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(0.0, (n - 1 - i) as f64 + 0.5));
            let name: String = name.chars().take(28).collect();
            root.draw(&Text::new(name, (x - 6, y), name_style.clone())).map_err(|e| anyhow!("{e}"))?;
        }
        let band = 0.8 / series.len().max(1) as f64;
        for (k, s) in series.iter().enumerate() {
            let color = s.color;
            let bars = s.values.iter().enumerate().filter_map(|(i, v)| {
                let y = (n - 1 - i) as f64 + 0.9 - band * k as f64;
                v.map(|v| Rectangle::new([(0.0, y - band), (v, y)], color.filled()))
            });
            chart
                .draw_series(bars)
                .map_err(|e| anyhow!("{e}"))?
                .label(s.name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        }
        let grey = RGBColor(120, 120, 120);
        let notes = markers.iter().enumerate().filter_map(|(i, marker)| {
            let style = ("sans-serif", 11).into_font().color(&grey);
            marker.as_ref().map(|m| Text::new(m.clone(), (x_max * 0.01, (n - 1 - i) as f64 + 0.75), style))
        });
        chart.draw_series(notes).map_err(|e| anyhow!("{e}"))?;
        if series.len() > 1 {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .label_font(("sans-serif", 12))
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK.mix(0.3))
                .draw()
                .map_err(|e| anyhow!("{e}"))?;
        }
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    Ok(svg)
}

/// One line of a [`line_chart`]: its legend name, points and colour.
pub(crate) struct Curve<'a> {
    /// Legend name.
    pub(crate) name: &'a str,
    /// The points, in drawing order.
    pub(crate) points: Vec<(f64, f64)>,
    /// Line colour.
    pub(crate) color: RGBColor,
}

/// Ten colours told apart easily (matplotlib's `tab10`), for a line per subgroup.
pub(crate) const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// A line chart over the unit square as inline SVG (a ROC curve, a reliability diagram): the
/// diagonal in grey, then each curve with point markers when `markers` is set, a legend in the
/// lower right.
pub(crate) fn line_chart(
    title: &str,
    (x_label, y_label): (&str, &str),
    curves: &[Curve<'_>],
    markers: bool,
) -> Result<String> {
    register_font()?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (560, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(44)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .x_labels(6)
            .y_labels(6)
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        let grey = RGBColor(150, 150, 150);
        chart
            .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], grey.stroke_width(1)))
            .map_err(|e| anyhow!("{e}"))?;
        for curve in curves {
            let color = curve.color;
            chart
                .draw_series(LineSeries::new(curve.points.iter().copied(), color.stroke_width(2)))
                .map_err(|e| anyhow!("{e}"))?
                .label(curve.name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
            if markers {
                chart
                    .draw_series(curve.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(|e| anyhow!("{e}"))?;
            }
        }
        if !curves.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .label_font(("sans-serif", 11))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .draw()
                .map_err(|e| anyhow!("{e}"))?;
        }
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    Ok(svg)
}

/// An `<img>` of PNG `bytes`, embedded as a data URI.
pub(crate) fn png_image(bytes: &[u8], alt: &str) -> String {
    use base64::Engine as _;
    let mut out = String::from("<img alt=\"");
    out += &escape(alt);
    let _ =
        write!(out, "\" src=\"data:image/png;base64,{}\">", base64::engine::general_purpose::STANDARD.encode(bytes));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_a_chart_is_an_svg_with_its_labels() {
        assert_eq!(escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        let categories = vec!["[0, 10)".to_string(), "Caucasian & <other>".to_string()];
        let svg = bar_chart(
            "rows",
            &categories,
            &[Series { name: "pooled", color: POOLED, values: vec![Some(0.25), None] }],
            &[None, Some("< 10".into())],
        )
        .unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("</svg>"), "{svg}");
        assert!(svg.contains("[0, 10)") && svg.contains("&lt; 10"), "{svg}");
        assert!(svg.contains("<rect"), "a bar");
        let curve = Curve { name: "Female & <x>", points: vec![(0.0, 0.0), (0.4, 0.7), (1.0, 1.0)], color: PALETTE[0] };
        let svg = line_chart("ROC", ("FPR", "TPR"), &[curve], true).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("Female &amp; &lt;x&gt;") && svg.contains("<polyline"),
            "{svg}"
        );
    }
}

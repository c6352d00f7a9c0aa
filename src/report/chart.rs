//! The trend chart, drawn with plotters: three lines (orphans planned, drift, failed lists)
//! over the trend's days. It holds no text, so it needs no font on the machine (the CronJob's
//! image has none); the report prints the legend, the scale and the dates beside it.

use chrono::{DateTime, Utc};
use plotters::prelude::*;

use super::trend::Trend;

pub const WIDTH: u32 = 560;
pub const HEIGHT: u32 = 160;

/// The series' colours, as the legend beside the chart names them.
pub const ORPHANS: (u8, u8, u8) = (198, 40, 40);
pub const DRIFT: (u8, u8, u8) = (239, 108, 0);
pub const FAILED: (u8, u8, u8) = (84, 110, 122);

pub fn css(c: (u8, u8, u8)) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

/// The largest count drawn: the top of the scale.
pub fn top(trend: &Trend) -> usize {
    trend
        .points
        .iter()
        .map(|p| p.orphans.max(p.drift).max(p.failed_lists))
        .max()
        .unwrap_or(0)
        .max(1)
}

/// The time span drawn: the trend's days up to its last point.
pub fn span(trend: &Trend) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let end = trend.points.last()?.at;
    Some((end - chrono::Duration::days(trend.days), end))
}

fn draw<DB: DrawingBackend>(
    area: DrawingArea<DB, plotters::coord::Shift>,
    trend: &Trend,
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    area.fill(&WHITE).map_err(err)?;
    let Some((start, end)) = span(trend) else {
        return area.present().map_err(err);
    };
    let seconds = (end - start).num_seconds().max(1) as f64;
    let top = top(trend) as f64;
    let mut chart = ChartBuilder::on(&area)
        .margin(8)
        .build_cartesian_2d(0f64..seconds, 0f64..top * 1.08)
        .map_err(err)?;
    // Four grid lines: 0, a quarter, a half, three quarters and the top of the scale.
    for i in 0..=4 {
        let y = top * f64::from(i) / 4.0;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(0.0, y), (seconds, y)],
                RGBColor(225, 225, 225).stroke_width(1),
            )))
            .map_err(err)?;
    }
    let x = |at: DateTime<Utc>| (at - start).num_seconds() as f64;
    type Pick = fn(&super::trend::TrendPoint) -> usize;
    let series: [((u8, u8, u8), Pick); 3] = [
        (FAILED, |p| p.failed_lists),
        (DRIFT, |p| p.drift),
        (ORPHANS, |p| p.orphans),
    ];
    for (colour, pick) in series {
        let colour = RGBColor(colour.0, colour.1, colour.2);
        let points: Vec<(f64, f64)> = trend
            .points
            .iter()
            .map(|p| (x(p.at), pick(p) as f64))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
            .map_err(err)?;
        chart
            .draw_series(
                points
                    .iter()
                    .map(|&(px, py)| Circle::new((px, py), 3, colour.filled())),
            )
            .map_err(err)?;
    }
    area.present().map_err(err)
}

/// The chart as an SVG document, for the HTML page.
pub fn svg(trend: &Trend) -> Result<String, String> {
    let mut out = String::new();
    {
        let area = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        draw(area, trend)?;
    }
    Ok(out)
}

/// The chart as a PNG, for the email (inline, by `cid:`).
pub fn png(trend: &Trend) -> Result<Vec<u8>, String> {
    let mut rgb = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let area = BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
        draw(area, trend)?;
    }
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, WIDTH, HEIGHT);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
        writer.write_image_data(&rgb).map_err(|e| e.to_string())?;
        writer.finish().map_err(|e| e.to_string())?;
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::super::trend::{Trend, TrendPoint};
    use super::*;

    fn trend() -> Trend {
        let at = |d: &str| DateTime::parse_from_rfc3339(d).unwrap().with_timezone(&Utc);
        Trend {
            archive: "gs://b/p".to_string(),
            days: 30,
            points: vec![
                TrendPoint {
                    run_id: "a".into(),
                    at: at("2026-11-10T07:30:00Z"),
                    orphans: 30,
                    drift: 4,
                    failed_lists: 0,
                },
                TrendPoint {
                    run_id: "b".into(),
                    at: at("2026-11-29T07:30:00Z"),
                    orphans: 21,
                    drift: 2,
                    failed_lists: 1,
                },
            ],
            error: None,
            skipped: 0,
        }
    }

    #[test]
    fn draws_an_svg_and_a_png_without_fonts() {
        let svg = svg(&trend()).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("<polyline"),
            "{svg}"
        );
        assert!(!svg.contains("<text"));
        let png = png(&trend()).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let reader = decoder.read_info().unwrap();
        assert_eq!((reader.info().width, reader.info().height), (WIDTH, HEIGHT));
    }
}

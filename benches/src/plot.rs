//! SVG plots (plotters, SVG backend only): latency vs payload size, and
//! latency vs number of watchers.

#![forbid(unsafe_code)]

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use crate::latency::Cell;
use crate::scaling::{Kind, Row};

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plotting: {e:?}")
}

/// Median round-trip latency (µs, log) against payload size (log), one
/// line per mechanism.
pub fn latency_vs_payload(cells: &[Cell], path: &Path) -> Result<()> {
    let mut series: Vec<(&'static str, Vec<(f64, f64)>)> = Vec::new();
    for cell in cells {
        let Ok(r) = &cell.result else { continue };
        let point = (cell.payload as f64, r.chosen.median as f64 / 1e3);
        match series.iter_mut().find(|(n, _)| *n == cell.mechanism.name()) {
            Some((_, points)) => points.push(point),
            None => series.push((cell.mechanism.name(), vec![point])),
        }
    }
    let points = series.iter().flat_map(|(_, p)| p.iter());
    let (x_max, y_min, y_max) = points
        .fold((8.0f64, f64::MAX, 0.0f64), |(x, lo, hi), &(px, py)| {
            (x.max(px), lo.min(py), hi.max(py))
        });
    if series.is_empty() {
        return Ok(());
    }
    let root = SVGBackend::new(path, (960, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Round-trip latency vs payload (median)", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(
            (4.0f64..x_max * 2.0).log_scale(),
            ((y_min / 2.0).max(0.01)..y_max * 2.0).log_scale(),
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("payload (bytes)")
        .y_desc("round trip (µs)")
        .x_label_formatter(&|x| crate::units::bytes(x.round() as usize))
        .draw()
        .map_err(err)?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let style = ShapeStyle::from(color).stroke_width(2);
        chart
            .draw_series(LineSeries::new(points.iter().copied(), style))
            .map_err(err)?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Latency to the last of N watchers (median and p99, µs, log) against N.
pub fn latency_vs_watchers(scaling: &[Row], path: &Path) -> Result<()> {
    if scaling.is_empty() {
        return Ok(());
    }
    let n_max = scaling.iter().map(|r| r.watchers).max().unwrap_or(1) as f64;
    let y_max = scaling.iter().map(|r| r.summary.p99).max().unwrap_or(1) as f64 / 1e3;
    let y_min = scaling.iter().map(|r| r.summary.median).min().unwrap_or(1) as f64 / 1e3;
    let root = SVGBackend::new(path, (960, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Publish → last of N watchers has read it",
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(
            (0.8f64..n_max * 1.25).log_scale(),
            ((y_min / 2.0).max(0.01)..y_max * 2.0).log_scale(),
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("watcher processes")
        .y_desc("latency (µs)")
        .x_label_formatter(&|x| format!("{:.0}", x))
        .draw()
        .map_err(err)?;
    for (i, kind) in Kind::ALL.into_iter().enumerate() {
        let rows: Vec<_> = scaling.iter().filter(|r| r.kind == kind).collect();
        for (stat, dashed) in [("median", false), ("p99", true)] {
            let points: Vec<(f64, f64)> = rows
                .iter()
                .map(|r| {
                    let v = if dashed {
                        r.summary.p99
                    } else {
                        r.summary.median
                    };
                    (r.watchers as f64, v as f64 / 1e3)
                })
                .collect();
            let color = Palette99::pick(i).to_rgba();
            let style = ShapeStyle::from(color).stroke_width(if dashed { 1 } else { 2 });
            chart
                .draw_series(LineSeries::new(points.iter().copied(), style))
                .map_err(err)?
                .label(format!("{} {stat}", kind.name()))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(err)?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

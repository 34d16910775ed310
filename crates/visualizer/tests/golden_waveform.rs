//! A known sine through the waveform renderer crosses the expected pixels; meter and spectrum
//! bars reach the expected heights.

mod common;

use common::{Checks, compare_golden, gpu_or_skip, render};
use wavecast_visualizer::geom::palette;
use wavecast_visualizer::meter::{METER_FLOOR_DB, MeterGeometry};
use wavecast_visualizer::waveform::trace_point;
use wavecast_visualizer::{
    Color, HeadlessTarget, MeterLevels, MeterRenderer, RgbaImage, SpectrumRenderer,
    WaveformRenderer,
};

fn rgb(c: Color) -> [u8; 3] {
    let [r, g, b, _] = c.to_rgba8();
    [r, g, b]
}

fn is_trace(p: [u8; 4]) -> bool {
    let t = rgb(palette::TRACE);
    p[..3].iter().zip(t).all(|(a, b)| a.abs_diff(b) <= 40)
}

/// The topmost trace-coloured row in column `x`.
fn trace_row(img: &RgbaImage, x: u32) -> Option<u32> {
    (0..img.height).find(|y| is_trace(img.pixel(x, *y).unwrap()))
}

#[test]
fn sine_crosses_expected_pixels() {
    let name = "waveform_sine";
    let Some(gpu) = gpu_or_skip(name) else { return };
    let (w, h) = (512, 160);
    let mut target = HeadlessTarget::new(&gpu.device, w, h).unwrap();
    let mut wave = WaveformRenderer::new(&gpu.device, target.format());
    wave.resize(&gpu.queue, w, h);
    let area = wave.trace_area();
    // One sample per pixel column: two periods at amplitude 0.8.
    let n = area.w as usize;
    let samples: Vec<f32> = (0..n)
        .map(|i| 0.8 * (std::f32::consts::TAU * 2.0 * i as f32 / n as f32).sin())
        .collect();
    wave.update(&gpu.device, &gpu.queue, &samples);
    let img = render(&gpu, &mut target, palette::BACKGROUND, |pass| {
        wave.render(pass)
    });
    let mut c = Checks::new(name, &img);
    let mut checked = 0;
    for i in (0..n).step_by(7) {
        let (x, y) = trace_point(area, i, n, samples[i]);
        let (xi, yi) = (x as u32, y.round() as u32);
        // The trace covers the expected pixel (±1 row for anti-aliasing) …
        let hit = (yi.saturating_sub(1)..=yi + 1).any(|yy| is_trace(img.pixel(xi, yy).unwrap()));
        c.that(
            &format!("sample {i}: no trace pixel near ({xi},{yi})"),
            hit,
            Some((xi, yi)),
        );
        // … and nothing far away from it in the same column.
        for yy in [yi as i64 - 12, yi as i64 + 12] {
            if yy >= 0 && (yy as u32) < h {
                let far = img.pixel(xi, yy as u32).unwrap();
                c.that(
                    &format!("sample {i}: stray trace at ({xi},{yy})"),
                    !is_trace(far),
                    Some((xi, yy as u32)),
                );
            }
        }
        checked += 1;
    }
    c.that("checked enough samples", checked > 50, None);
    // Peaks: +0.8 at a quarter period is 10 % below the top of the trace area.
    let (xq, yq) = trace_point(area, n / 8, n, 0.8);
    c.that(
        &format!("peak row {:?} near {yq}", trace_row(&img, xq as u32)),
        trace_row(&img, xq as u32).is_some_and(|r| (r as f32 - yq).abs() <= 2.5),
        Some((xq as u32, yq as u32)),
    );
    c.finish();
    compare_golden(name, &img);
}

#[test]
fn dense_history_draws_the_envelope() {
    let name = "waveform_envelope";
    let Some(gpu) = gpu_or_skip(name) else { return };
    let (w, h) = (256, 120);
    let mut target = HeadlessTarget::new(&gpu.device, w, h).unwrap();
    let mut wave = WaveformRenderer::new(&gpu.device, target.format());
    wave.resize(&gpu.queue, w, h);
    let area = wave.trace_area();
    // 4800 samples of 6 kHz at 48 kHz (8 samples a period, hitting the peaks; each ~19-sample
    // column spans over two periods),
    // amplitude 0.5 in the first half, 0.25 after.
    let samples: Vec<f32> = (0..4800)
        .map(|i| {
            let a = if i < 2400 { 0.5 } else { 0.25 };
            a * (std::f32::consts::TAU * 6000.0 * i as f32 / 48_000.0).sin()
        })
        .collect();
    wave.update(&gpu.device, &gpu.queue, &samples);
    let img = render(&gpu, &mut target, palette::BACKGROUND, |pass| {
        wave.render(pass)
    });
    let mut c = Checks::new(name, &img);
    let cols = area.w as usize;
    for (col, amp) in [(cols / 4, 0.5f32), (3 * cols / 4, 0.25)] {
        let (x, top) = trace_point(area, col, cols, amp);
        let (_, bottom) = trace_point(area, col, cols, -amp);
        let (_, mid) = trace_point(area, col, cols, 0.0);
        for (what, y) in [
            ("top", top + 1.5),
            ("middle", mid),
            ("bottom", bottom - 1.5),
        ] {
            c.that(
                &format!("column {col} {what} at y={y} is not trace-coloured"),
                is_trace(img.pixel(x as u32, y as u32).unwrap()),
                Some((x as u32, y as u32)),
            );
        }
        let (_, beyond) = trace_point(area, col, cols, amp + 0.15);
        c.that(
            &format!("column {col}: trace beyond the envelope at y={beyond}"),
            !is_trace(img.pixel(x as u32, beyond as u32).unwrap()),
            Some((x as u32, beyond as u32)),
        );
    }
    c.finish();
}

#[test]
fn meter_bars_reach_their_levels() {
    let name = "meter";
    let Some(gpu) = gpu_or_skip(name) else { return };
    let (w, h) = (120, 300);
    let mut target = HeadlessTarget::new(&gpu.device, w, h).unwrap();
    let mut meter = MeterRenderer::new(&gpu.device, &gpu.queue, target.format());
    meter.resize(&gpu.queue, w, h);
    let levels = [
        MeterLevels {
            rms_dbfs: -30.0,
            peak_dbfs: -20.0,
        },
        MeterLevels {
            rms_dbfs: -3.0,
            peak_dbfs: 0.0,
        },
    ];
    meter.update(&gpu.device, &gpu.queue, &levels).unwrap();
    let g: MeterGeometry = meter.geometry();
    let img = render(&gpu, &mut target, palette::BACKGROUND, |pass| {
        meter.render(pass).unwrap()
    });
    let mut c = Checks::new(name, &img);
    let ch0 = g.channel_rect(0, 2);
    let ch1 = g.channel_rect(1, 2);
    let cx0 = ch0.center().0;
    let cx1 = ch1.center().0;
    // Channel 0 at -30 dBFS: green below, empty above.
    c.color("ch0 green", cx0, g.db_to_y(-45.0), rgb(palette::GREEN), 4);
    c.color(
        "ch0 empty above level",
        cx0,
        g.db_to_y(-26.0),
        [0x0c, 0x0d, 0x10],
        4,
    );
    // Peak marker at -20 dBFS (white).
    c.color("ch0 peak", cx0, g.db_to_y(-20.0), [255, 255, 255], 40);
    // Channel 1 at -3 dBFS: green, yellow and red zones.
    c.color("ch1 green", cx1, g.db_to_y(-40.0), rgb(palette::GREEN), 4);
    c.color("ch1 yellow", cx1, g.db_to_y(-12.0), rgb(palette::YELLOW), 4);
    c.color("ch1 red", cx1, g.db_to_y(-4.5), rgb(palette::RED), 4);
    c.color(
        "ch1 empty above level",
        cx1,
        g.db_to_y(-1.5),
        [0x0c, 0x0d, 0x10],
        4,
    );
    // Peak at full scale is red.
    c.color(
        "ch1 clip peak",
        cx1,
        g.db_to_y(0.0) + 0.5,
        rgb(palette::RED),
        40,
    );
    // Scale labels exist left of the bars (light pixels).
    let mut label_px = 0;
    for y in g.bars.y as u32..g.bars.bottom() as u32 {
        for x in g.scale.x as u32..g.scale.right() as u32 {
            if img.pixel(x, y).unwrap()[0] > 90 {
                label_px += 1;
            }
        }
    }
    c.that(
        &format!("scale labels: {label_px} light pixels"),
        label_px > 80,
        None,
    );
    assert!(g.db_to_y(METER_FLOOR_DB) > g.db_to_y(0.0));
    c.finish();
    compare_golden(name, &img);
}

#[test]
fn spectrum_bar_heights_follow_band_levels() {
    let name = "spectrum";
    let Some(gpu) = gpu_or_skip(name) else { return };
    let (w, h) = (320, 160);
    let mut target = HeadlessTarget::new(&gpu.device, w, h).unwrap();
    let mut spec = SpectrumRenderer::new(&gpu.device, target.format(), 16);
    spec.resize(&gpu.queue, w, h);
    // A single loud tone near 1 kHz in an otherwise silent spectrum.
    let mut bins = vec![-120.0f32; 1025];
    let hz_per_bin = 24_000.0 / 1024.0;
    bins[(1000.0 / hz_per_bin) as usize] = -6.0;
    spec.update(&gpu.device, &gpu.queue, &bins, 48_000);
    let loud: Vec<usize> = spec
        .levels()
        .iter()
        .enumerate()
        .filter(|(_, l)| **l > -10.0)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(loud.len(), 1, "{:?}", spec.levels());
    let img = render(&gpu, &mut target, palette::BACKGROUND, |pass| {
        spec.render(pass)
    });
    let mut c = Checks::new(name, &img);
    let b = loud[0];
    let slot = spec.bar_slot(b);
    // -6 dBFS on a -90..0 scale: the bar fills 93 % of the slot (red above -12 dBFS).
    c.color(
        "loud bar near top",
        slot.center().0,
        slot.y + slot.h * 0.1,
        rgb(palette::RED),
        4,
    );
    let quiet = spec.bar_slot(if b > 2 { 0 } else { 15 });
    c.color(
        "quiet bar empty",
        quiet.center().0,
        quiet.y + quiet.h * 0.5,
        rgb(palette::PANEL),
        4,
    );
    c.finish();
}

#[test]
fn pipeline_waveform_history_draws_its_envelope() {
    use wavecast_visualizer::wavecast_pipeline::analysis::WaveformHistory;
    let name = "waveform_history";
    let Some(gpu) = gpu_or_skip(name) else { return };
    let (w, h) = (256, 120);
    let mut target = HeadlessTarget::new(&gpu.device, w, h).unwrap();
    let mut wave = WaveformRenderer::new(&gpu.device, target.format());
    wave.resize(&gpu.queue, w, h);
    let area = wave.trace_area();
    // 200 columns of 10 ms at 48 kHz: a 1 kHz tone at half scale, then at quarter scale.
    let mut history = WaveformHistory::new(200);
    for k in 0..200 {
        let amp = if k < 100 { 16_384.0 } else { 8_192.0 };
        let block: Vec<i16> = (0..480)
            .map(|i| (amp * (std::f32::consts::TAU * 1000.0 * i as f32 / 48_000.0).sin()) as i16)
            .collect();
        history.push_samples(&block);
    }
    wave.update_history(&gpu.device, &gpu.queue, &history);
    let img = render(&gpu, &mut target, palette::BACKGROUND, |pass| {
        wave.render(pass)
    });
    let mut c = Checks::new(name, &img);
    let col_w = area.w / 200.0;
    for (col, amp) in [(50usize, 0.5f32), (150, 0.25)] {
        let x = area.x + (col as f32 + 0.5) * col_w;
        let (_, top) = trace_point(area, 0, 1, amp);
        let (_, bottom) = trace_point(area, 0, 1, -amp);
        let (_, mid) = trace_point(area, 0, 1, 0.0);
        for (what, y) in [
            ("top", top + 1.5),
            ("middle", mid),
            ("bottom", bottom - 1.5),
        ] {
            c.that(
                &format!("column {col} {what} at ({x},{y}) is not trace-coloured"),
                is_trace(img.pixel(x as u32, y as u32).unwrap()),
                Some((x as u32, y as u32)),
            );
        }
        let (_, beyond) = trace_point(area, 0, 1, amp + 0.15);
        c.that(
            &format!("column {col}: trace beyond the envelope at y={beyond}"),
            !is_trace(img.pixel(x as u32, beyond as u32).unwrap()),
            Some((x as u32, beyond as u32)),
        );
    }
    c.finish();
}

#[test]
fn pipeline_spectrum_analyzer_tone_lands_in_its_band() {
    use wavecast_visualizer::spectrum::band_bins;
    use wavecast_visualizer::wavecast_pipeline::analysis::SpectrumAnalyzer;
    let name = "spectrum_analyzer";
    let Some(gpu) = gpu_or_skip(name) else { return };
    let mut analyzer = SpectrumAnalyzer::new(2048, 48_000).unwrap();
    let tone: Vec<i16> = (0..4096)
        .map(|i| (16_000.0 * (std::f32::consts::TAU * 1000.0 * i as f32 / 48_000.0).sin()) as i16)
        .collect();
    analyzer.push(&tone, 1);
    analyzer.compute();
    let mut spec = SpectrumRenderer::new(&gpu.device, wgpu::TextureFormat::Rgba8Unorm, 24);
    spec.resize(&gpu.queue, 240, 100);
    spec.update_analyzer(&gpu.device, &gpu.queue, &analyzer);
    let loudest = spec
        .levels()
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .unwrap();
    let bins: Vec<_> = band_bins(analyzer.magnitudes().len(), 24, 48_000).collect();
    let band = &bins[loudest];
    let (lo, hi) = (
        analyzer.bin_frequency(band.start),
        analyzer.bin_frequency(band.end - 1),
    );
    assert!(
        lo <= 1000.0 + 25.0 && hi >= 1000.0 - 25.0,
        "1 kHz in band {loudest}: {lo}..{hi} Hz"
    );
    assert!(spec.levels()[loudest] > -12.0, "{:?}", spec.levels());
}

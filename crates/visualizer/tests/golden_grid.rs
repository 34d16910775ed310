//! Participant grids of 1, 2, 4 and 9 tiles: tiles, labels and badges where expected.

mod common;

use common::{Checks, compare_golden, gpu_or_skip, render};
use wavecast_visualizer::geom::palette;
use wavecast_visualizer::{
    Color, ConnectionQuality, GridRenderer, HeadlessTarget, ParticipantTile, RgbaImage, TileLayout,
};

const W: u32 = 960;
const H: u32 = 540;
const NAMES: [&str; 9] = [
    "Ada",
    "Grace Hopper",
    "Alan",
    "Katherine J.",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "Ken",
];

fn participant(i: usize) -> ParticipantTile<'static> {
    ParticipantTile {
        name: NAMES[i],
        muted: i % 2 == 1,
        speaking: i.is_multiple_of(3),
        quality: [
            ConnectionQuality::Excellent,
            ConnectionQuality::Good,
            ConnectionQuality::Poor,
            ConnectionQuality::Lost,
        ][i % 4],
        screen_share: i % 4 == 2,
        has_video: false,
    }
}

fn rgb(c: Color) -> [u8; 3] {
    let [r, g, b, _] = c.to_rgba8();
    [r, g, b]
}

fn bright_pixels(img: &RgbaImage, r: wavecast_visualizer::Rect) -> usize {
    let mut n = 0;
    for y in r.y.ceil() as u32..r.bottom().floor() as u32 {
        for x in r.x.ceil() as u32..r.right().floor() as u32 {
            if let Some(p) = img.pixel(x, y)
                && p[0] > 180
                && p[1] > 180
                && p[2] > 180
            {
                n += 1;
            }
        }
    }
    n
}

fn check_grid(count: usize) {
    let name = format!("grid_{count}");
    let Some(gpu) = gpu_or_skip(&name) else {
        return;
    };
    let mut target = HeadlessTarget::new(&gpu.device, W, H).unwrap();
    let mut grid = GridRenderer::new(&gpu.device, &gpu.queue, target.format());
    grid.resize(&gpu.queue, W, H);
    let people: Vec<_> = (0..count).map(participant).collect();
    grid.update(&gpu.device, &gpu.queue, &people).unwrap();
    let layouts = grid.layouts().to_vec();
    assert_eq!(layouts.len(), count);
    let img = render(&gpu, &mut target, palette::BACKGROUND, |pass| {
        grid.render(pass).unwrap()
    });
    let mut c = Checks::new(&name, &img);

    // Columns: 1 -> 1, 2 -> 2, 4 -> 2, 9 -> 3.
    let mut xs: Vec<i32> = layouts.iter().map(|l| l.tile.x.round() as i32).collect();
    xs.sort_unstable();
    xs.dedup();
    let expected_cols = match count {
        1 => 1,
        2 | 4 => 2,
        _ => 3,
    };
    c.that(
        &format!("{} distinct columns, expected {expected_cols}", xs.len()),
        xs.len() == expected_cols,
        None,
    );

    for (i, (l, p)) in layouts.iter().zip(&people).enumerate() {
        let t = l.tile;
        let bg = rgb(palette::TILES[i % palette::TILES.len()]);
        // Tile body (left of centre, clear of badges, label and avatar).
        c.color(
            &format!("tile {i} body"),
            t.x + t.w * 0.12,
            t.y + t.h * 0.5,
            bg,
            3,
        );
        // Outside the tile: window background.
        c.color(
            &format!("tile {i} gap"),
            t.x - 1.5,
            t.y + t.h * 0.5,
            rgb(palette::BACKGROUND),
            3,
        );
        // Speaking ring on the left edge, or plain tile there.
        let edge = (t.x + l.stroke * 0.5, t.y + t.h * 0.5);
        if p.speaking {
            c.color(
                &format!("tile {i} ring"),
                edge.0,
                edge.1,
                rgb(palette::SPEAKING),
                6,
            );
        } else {
            c.color(&format!("tile {i} no ring"), edge.0, edge.1, bg, 6);
        }
        // Quality badge: first bar lit (unless lost), last bar lit only when excellent.
        let q = l.quality;
        let qi = q.inset(4.0 * TileLayout::scale(t));
        let bw = qi.w / 4.0;
        let bar_x = |b: usize| qi.x + (b as f32 + 0.5) * bw;
        let bar_y = qi.bottom() - 1.5;
        let (lit, lit_color) = p.quality.bars();
        for b in 0..4 {
            let expect = if b < lit {
                lit_color
            } else {
                palette::INACTIVE
            };
            c.color(
                &format!("tile {i} quality bar {b}"),
                bar_x(b),
                bar_y,
                rgb(expect),
                12,
            );
        }
        // Screen-share badge: blue plate at its left edge.
        match l.share {
            Some(sb) => c.color(
                &format!("tile {i} share badge"),
                sb.x + sb.w * 0.1,
                sb.y + sb.h * 0.5,
                rgb(palette::SHARE),
                6,
            ),
            None => c.that(
                &format!("tile {i} has no share badge"),
                !p.screen_share,
                None,
            ),
        }
        // Muted microphone: red disc.
        match l.mic {
            Some(m) => c.color(
                &format!("tile {i} mic"),
                m.x + m.w * 0.2,
                m.y + m.h * 0.5,
                rgb(palette::RED),
                12,
            ),
            None => c.that(&format!("tile {i} mic"), !p.muted, None),
        }
        // Label: dark pill containing white text.
        let text_px = bright_pixels(&img, l.name);
        c.that(
            &format!(
                "tile {i} name {:?}: only {text_px} bright pixels in {:?}",
                p.name, l.name
            ),
            text_px >= 3 * p.name.len(),
            Some((l.name.x as u32, l.name.y as u32)),
        );
        c.that(
            &format!("tile {i} label lies at the tile's bottom left"),
            l.label.x > t.x && l.label.bottom() < t.bottom() && l.label.y > t.center().1,
            None,
        );
        // The label is darker than the tile body (the pill is drawn).
        let lp = img
            .pixel(
                (l.label.x + 2.0) as u32,
                (l.label.y + l.label.h * 0.5) as u32,
            )
            .unwrap();
        c.that(
            &format!("tile {i} label background {lp:?} is dark"),
            lp[0] < bg[0] && lp[1] < bg[1] && lp[2] < bg[2],
            Some((
                (l.label.x + 2.0) as u32,
                (l.label.y + l.label.h * 0.5) as u32,
            )),
        );
    }
    c.finish();
    compare_golden(&name, &img);
}

#[test]
fn grid_of_1() {
    check_grid(1);
}

#[test]
fn grid_of_2() {
    check_grid(2);
}

#[test]
fn grid_of_4() {
    check_grid(4);
}

#[test]
fn grid_of_9() {
    check_grid(9);
}

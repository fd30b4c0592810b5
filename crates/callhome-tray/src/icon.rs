//! The tray icon, drawn in code for each state and each size a tray asks for: a coloured disc
//! (green ok, amber warning, orange failing, red overdue) with a white sign (a tick, "!", a
//! cross, a clock), anti-aliased by 4×4 supersampling. Shape and colour both carry the state, so
//! it reads without colour vision too.

use crate::view::Look;

/// The sizes trays use (16 and 22 on most Linux panels, 24/32 on HiDPI and Windows, 48 for
/// large panels). tray-icon takes one pixmap (32 px); the tests draw every size.
#[cfg(test)]
pub const SIZES: [u32; 5] = [16, 22, 24, 32, 48];

type Seg = ((f32, f32), (f32, f32));

fn colour(look: Look) -> [u8; 3] {
    match look {
        Look::Ok => [0x2e, 0x7d, 0x32],
        Look::Warning => [0xf9, 0xa8, 0x25],
        Look::Failing => [0xe6, 0x51, 0x00],
        Look::Overdue => [0xc6, 0x28, 0x28],
    }
}

/// The sign's strokes, in unit coordinates (0..1, y down).
fn strokes(look: Look) -> Vec<Seg> {
    match look {
        Look::Ok => vec![((0.28, 0.52), (0.44, 0.68)), ((0.44, 0.68), (0.72, 0.35))],
        Look::Warning => vec![((0.5, 0.25), (0.5, 0.56)), ((0.5, 0.73), (0.5, 0.735))],
        Look::Failing => vec![((0.34, 0.34), (0.66, 0.66)), ((0.66, 0.34), (0.34, 0.66))],
        Look::Overdue => vec![((0.5, 0.5), (0.5, 0.27)), ((0.5, 0.5), (0.68, 0.6))],
    }
}

fn dist_to_segment(p: (f32, f32), (a, b): Seg) -> f32 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 == 0.0 { 0.0 } else { (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0) };
    let (cx, cy) = (a.0 + t * dx, a.1 + t * dy);
    ((p.0 - cx).powi(2) + (p.1 - cy).powi(2)).sqrt()
}

/// Straight RGBA, row by row, `size`×`size`.
pub fn render(look: Look, size: u32) -> Vec<u8> {
    const SS: u32 = 4;
    let [r, g, b] = colour(look);
    let strokes = strokes(look);
    let half_width = 0.07;
    let mut out = Vec::with_capacity((size * size * 4) as usize);
    for y in 0..size {
        for x in 0..size {
            let (mut disc, mut sign) = (0u32, 0u32);
            for sy in 0..SS {
                for sx in 0..SS {
                    let p = (
                        (x as f32 + (sx as f32 + 0.5) / SS as f32) / size as f32,
                        (y as f32 + (sy as f32 + 0.5) / SS as f32) / size as f32,
                    );
                    let d = ((p.0 - 0.5).powi(2) + (p.1 - 0.5).powi(2)).sqrt();
                    if d <= 0.47 {
                        disc += 1;
                        let on_stroke = strokes.iter().any(|s| dist_to_segment(p, *s) <= half_width);
                        let on_ring = look == Look::Overdue && (d - 0.28).abs() <= 0.045;
                        if on_stroke || on_ring {
                            sign += 1;
                        }
                    }
                }
            }
            let n = (SS * SS) as f32;
            let white = sign as f32 / disc.max(1) as f32;
            let mix = |c: u8| (c as f32 * (1.0 - white) + 255.0 * white).round() as u8;
            out.extend_from_slice(&[mix(r), mix(g), mix(b), (disc as f32 / n * 255.0).round() as u8]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn px(img: &[u8], size: u32, x: u32, y: u32) -> [u8; 4] {
        let i = ((y * size + x) * 4) as usize;
        [img[i], img[i + 1], img[i + 2], img[i + 3]]
    }

    #[test]
    fn each_state_has_its_colour_and_the_corners_are_transparent() {
        for size in SIZES {
            for look in [Look::Ok, Look::Warning, Look::Failing, Look::Overdue] {
                let img = render(look, size);
                assert_eq!(img.len(), (size * size * 4) as usize);
                assert_eq!(px(&img, size, 0, 0)[3], 0, "{look:?} {size}: corner");
                // Lower left, inside the disc and clear of every sign: the state colour, opaque.
                let edge = px(&img, size, size * 22 / 100, size * 78 / 100);
                assert_eq!(edge[3], 255, "{look:?} {size}: {edge:?}");
                assert_eq!(&edge[..3], &colour(look), "{look:?} {size}");
            }
        }
    }

    #[test]
    fn the_signs_differ_so_shape_alone_tells_the_state() {
        let looks = [Look::Ok, Look::Warning, Look::Failing, Look::Overdue];
        let imgs: Vec<Vec<u8>> = looks.iter().map(|l| render(*l, 32)).collect();
        let whites = |img: &[u8]| img.chunks(4).map(|p| p[0] > 200 && p[1] > 200 && p[2] > 200).collect::<Vec<_>>();
        for i in 0..looks.len() {
            assert!(whites(&imgs[i]).iter().filter(|w| **w).count() > 20, "{:?} has a sign", looks[i]);
            for j in i + 1..looks.len() {
                assert_ne!(whites(&imgs[i]), whites(&imgs[j]), "{:?} vs {:?}", looks[i], looks[j]);
            }
        }
    }
}

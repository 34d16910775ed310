//! [`I420Scaler`]: the simulcast downscaler.

use crate::{CodecError, I420};

/// Fixed-point precision of the weights: they sum to `1 << WEIGHT_BITS` per output sample.
const WEIGHT_BITS: u32 = 14;
/// Fractional bits kept between the vertical and the horizontal pass.
const MID_BITS: u32 = 8;

/// The filter along one axis: for each output sample, its first source sample and weights.
#[derive(Debug, Default)]
struct Axis {
    src_len: usize,
    dst_len: usize,
    /// Taps per output sample (the widest footprint); unused ones have weight 0.
    taps: usize,
    starts: Vec<usize>,
    counts: Vec<usize>,
    weights: Vec<u32>,
}

impl Axis {
    fn new(src_len: usize, dst_len: usize) -> Self {
        let scale = src_len as f64 / dst_len as f64;
        // A footprint of `scale` samples touches at most ceil(scale) + 1 of them.
        let taps = scale.ceil() as usize + 1;
        let mut a = Axis {
            src_len,
            dst_len,
            taps,
            starts: Vec::with_capacity(dst_len),
            counts: Vec::with_capacity(dst_len),
            weights: vec![0; dst_len * taps],
        };
        let one = 1u32 << WEIGHT_BITS;
        for i in 0..dst_len {
            // Footprint [lo, hi) in source coordinates; when upscaling, one source sample wide
            // around the centre (nearest with blending at the edges).
            let (mut lo, mut hi) = (i as f64 * scale, (i + 1) as f64 * scale);
            if scale < 1.0 {
                let centre = (lo + hi) / 2.0;
                lo = (centre - 0.5).max(0.0);
                hi = (lo + 1.0).min(src_len as f64);
                lo = hi - 1.0;
            }
            let first = (lo.floor() as usize).min(src_len - 1);
            let last = ((hi.ceil() as usize).max(first + 1)).min(src_len);
            let n = (last - first).min(taps);
            let w = &mut a.weights[i * taps..i * taps + n];
            let span = hi - lo;
            let mut total = 0;
            for (k, slot) in w.iter_mut().enumerate() {
                let j = (first + k) as f64;
                let cover = (hi.min(j + 1.0) - lo.max(j)).max(0.0);
                *slot = (cover / span * f64::from(one)).round() as u32;
                total += *slot;
            }
            // Make the weights sum to exactly one: the rounding error goes to the largest.
            let k_max = (0..n).max_by_key(|&k| w[k]).unwrap_or(0);
            w[k_max] = (w[k_max] + one).saturating_sub(total);
            a.starts.push(first);
            a.counts.push(n);
        }
        a
    }
}

/// The filters of one plane.
#[derive(Debug, Default)]
struct PlaneFilter {
    h: Axis,
    v: Axis,
}

/// Scales I420 pictures to one fixed size, into planes it owns: the simulcast downscaler, one
/// per layer, each scaling every captured picture to its layer's size.
///
/// An area-averaging (box) filter, separable, in fixed point: each output sample is the mean of
/// the source samples its footprint covers, partly covered ones weighted by the part — the
/// right filter for downscaling by any ratio (no aliasing at 1/2 or 1/4, no blur beyond the
/// footprint). The tables of weights are built when the source size is first seen (or changes);
/// after that, scaling allocates nothing. The inner loops are plain slices of integers that the
/// compiler vectorises; on x86-64 they are compiled twice, for SSE2 and for AVX2, and the CPU
/// picks (detected at run time). The vertical pass, where most of the work is, runs down whole
/// rows with the common tap counts (1–3) fused into one pass.
///
/// Why not `fast_image_resize`: its `Resizer` computes the filter coefficients into new vectors
/// on every call, so it allocates per picture.
///
/// ```
/// use wavecast_codec::{I420, I420Scaler};
/// let (y, c) = (vec![200u8; 1280 * 720], vec![90u8; 640 * 360]);
/// let full = I420 { width: 1280, height: 720, planes: [&y, &c, &c], strides: [1280, 640, 640] };
/// let mut half = I420Scaler::new(640, 360)?;
/// let small = half.scale(&full)?;
/// assert_eq!((small.width, small.height), (640, 360));
/// assert_eq!((small.planes[0][0], small.planes[1][0]), (200, 90));
/// # Ok::<(), wavecast_codec::CodecError>(())
/// ```
///
/// Any source size works, odd ones included (chroma planes are `ceil(w/2)`×`ceil(h/2)`); a
/// source of the target size is copied. Scaling allocates nothing once a source size has been
/// seen.
#[derive(Debug)]
pub struct I420Scaler {
    width: u32,
    height: u32,
    /// Output planes, tightly packed.
    planes: [Vec<u8>; 3],
    /// The source size the filters are for.
    source: Option<(u32, u32)>,
    /// Luma and chroma filters (U and V share one).
    filters: [PlaneFilter; 2],
    /// One row after the vertical pass (source width, `MID_BITS` fractional bits).
    mid: Vec<u16>,
    /// The vertical pass's accumulator.
    acc: Vec<u32>,
}

impl I420Scaler {
    /// A scaler to `width`×`height`.
    ///
    /// # Errors
    /// [`CodecError::Unsupported`] for an empty or larger than 16384×16384 target.
    pub fn new(width: u32, height: u32) -> Result<Self, CodecError> {
        if width == 0 || height == 0 || width > 16_384 || height > 16_384 {
            return Err(CodecError::Unsupported {
                what: format!("scaling to {width}x{height}"),
            });
        }
        let (w, h) = (width as usize, height as usize);
        let c = w.div_ceil(2) * h.div_ceil(2);
        Ok(Self {
            width,
            height,
            planes: [vec![0; w * h], vec![0; c], vec![0; c]],
            source: None,
            filters: Default::default(),
            mid: Vec::new(),
            acc: Vec::new(),
        })
    }

    /// Target width.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Target height.
    pub fn height(&self) -> u32 {
        self.height
    }

    fn prepare(&mut self, src: &I420<'_>) {
        if self.source == Some((src.width, src.height)) {
            return;
        }
        let dst = I420 {
            width: self.width,
            height: self.height,
            planes: [&[]; 3],
            strides: [0; 3],
        };
        for (p, filter) in self.filters.iter_mut().enumerate() {
            let (sw, sh) = src.plane_size(p);
            let (dw, dh) = dst.plane_size(p);
            *filter = PlaneFilter {
                h: Axis::new(sw, dw),
                v: Axis::new(sh, dh),
            };
        }
        self.mid = vec![0; src.width as usize];
        self.acc = vec![0; src.width as usize];
        self.source = Some((src.width, src.height));
    }

    /// Scale `src` to the target size; the picture borrows the scaler's planes until the next
    /// call.
    ///
    /// # Errors
    /// [`CodecError::BadFrame`] for planes too short for the announced size, or an empty
    /// picture.
    pub fn scale(&mut self, src: &I420<'_>) -> Result<I420<'_>, CodecError> {
        if src.width == 0 || src.height == 0 {
            return Err(CodecError::BadFrame {
                what: format!("scaling an empty {}x{} picture", src.width, src.height),
            });
        }
        src.check()?;
        self.prepare(src);
        let w = self.width as usize;
        let cw = w.div_ceil(2);
        for p in 0..3 {
            let filter = &self.filters[usize::from(p > 0)];
            let dst_stride = if p == 0 { w } else { cw };
            scale_plane(
                src.planes[p],
                src.strides[p],
                filter,
                &mut self.planes[p],
                dst_stride,
                &mut self.acc,
                &mut self.mid,
            );
        }
        Ok(I420 {
            width: self.width,
            height: self.height,
            planes: [&self.planes[0], &self.planes[1], &self.planes[2]],
            strides: [w, cw, cw],
        })
    }
}

/// Scale one plane, with the widest vector instructions the CPU has: the same code compiled
/// for AVX2 when it is there (detected once; the detection is cached), for SSE2 otherwise.
fn scale_plane(
    src: &[u8],
    src_stride: usize,
    f: &PlaneFilter,
    dst: &mut [u8],
    dst_stride: usize,
    acc: &mut [u32],
    mid: &mut [u16],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        unsafe { scale_plane_avx2(src, src_stride, f, dst, dst_stride, acc, mid) };
        return;
    }
    scale_plane_portable(src, src_stride, f, dst, dst_stride, acc, mid);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn scale_plane_avx2(
    src: &[u8],
    src_stride: usize,
    f: &PlaneFilter,
    dst: &mut [u8],
    dst_stride: usize,
    acc: &mut [u32],
    mid: &mut [u16],
) {
    scale_plane_portable(src, src_stride, f, dst, dst_stride, acc, mid);
}

#[inline(always)]
fn scale_plane_portable(
    src: &[u8],
    src_stride: usize,
    f: &PlaneFilter,
    dst: &mut [u8],
    dst_stride: usize,
    acc: &mut [u32],
    mid: &mut [u16],
) {
    let sw = f.h.src_len;
    let (dw, dh) = (f.h.dst_len, f.v.dst_len);
    if sw == dw && f.v.src_len == dh {
        for (y, row) in dst.chunks_exact_mut(dst_stride).take(dh).enumerate() {
            row[..dw].copy_from_slice(&src[y * src_stride..][..dw]);
        }
        return;
    }
    let acc = &mut acc[..sw];
    let mid = &mut mid[..sw];
    const SHIFT: u32 = WEIGHT_BITS - MID_BITS;
    const ROUND_MID: u32 = 1 << (SHIFT - 1);
    const H_SHIFT: u32 = WEIGHT_BITS + MID_BITS;
    const ROUND_OUT: u32 = 1 << (H_SHIFT - 1);
    for (oy, out) in dst.chunks_exact_mut(dst_stride).take(dh).enumerate() {
        // Vertical pass: a weighted sum of whole source rows (vectorised), rounded to
        // `MID_BITS` fractional bits.
        let start = f.v.starts[oy];
        let weights = &f.v.weights[oy * f.v.taps..][..f.v.counts[oy]];
        let row = |k: usize| &src[(start + k) * src_stride..][..sw];
        match *weights {
            [w0] => {
                for (m, &a) in mid.iter_mut().zip(row(0)) {
                    *m = ((w0 * u32::from(a) + ROUND_MID) >> SHIFT) as u16;
                }
            }
            [w0, w1] => {
                for ((m, &a), &b) in mid.iter_mut().zip(row(0)).zip(row(1)) {
                    *m = ((w0 * u32::from(a) + w1 * u32::from(b) + ROUND_MID) >> SHIFT) as u16;
                }
            }
            [w0, w1, w2] => {
                for (((m, &a), &b), &c) in mid.iter_mut().zip(row(0)).zip(row(1)).zip(row(2)) {
                    let s = w0 * u32::from(a) + w1 * u32::from(b) + w2 * u32::from(c);
                    *m = ((s + ROUND_MID) >> SHIFT) as u16;
                }
            }
            _ => {
                acc.fill(ROUND_MID);
                for (k, &wt) in weights.iter().enumerate() {
                    if wt != 0 {
                        for (a, &s) in acc.iter_mut().zip(row(k)) {
                            *a += wt * u32::from(s);
                        }
                    }
                }
                for (m, &a) in mid.iter_mut().zip(acc.iter()) {
                    *m = (a >> SHIFT) as u16;
                }
            }
        }
        // Horizontal pass: each output sample from its few taps.
        let out = &mut out[..dw];
        if sw == dw {
            for (o, &m) in out.iter_mut().zip(mid.iter()) {
                *o = ((u32::from(m) + (1 << (MID_BITS - 1))) >> MID_BITS).min(255) as u8;
            }
        } else if sw == 2 * dw {
            for (o, pair) in out.iter_mut().zip(mid.chunks_exact(2)) {
                let s = u32::from(pair[0]) + u32::from(pair[1]);
                *o = ((s + (1 << MID_BITS)) >> (MID_BITS + 1)).min(255) as u8;
            }
        } else if sw == 4 * dw {
            for (o, quad) in out.iter_mut().zip(mid.chunks_exact(4)) {
                let s = u32::from(quad[0])
                    + u32::from(quad[1])
                    + u32::from(quad[2])
                    + u32::from(quad[3]);
                *o = ((s + (1 << (MID_BITS + 1))) >> (MID_BITS + 2)).min(255) as u8;
            }
        } else {
            let taps = f.h.taps;
            for (ox, o) in out.iter_mut().enumerate() {
                let start = f.h.starts[ox];
                let n = f.h.counts[ox];
                let sum: u32 = f.h.weights[ox * taps..][..n]
                    .iter()
                    .zip(&mid[start..start + n])
                    .map(|(&wt, &m)| wt * u32::from(m))
                    .sum();
                *o = ((sum + ROUND_OUT) >> H_SHIFT).min(255) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(w: u32, h: u32, f: impl Fn(u32, u32, usize) -> u8) -> [Vec<u8>; 3] {
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let plane = |pw: u32, ph: u32, p: usize| {
            (0..ph)
                .flat_map(|y| (0..pw).map(move |x| (x, y)))
                .map(|(x, y)| f(x, y, p))
                .collect::<Vec<u8>>()
        };
        [plane(w, h, 0), plane(cw, ch, 1), plane(cw, ch, 2)]
    }

    fn view(w: u32, h: u32, p: &[Vec<u8>; 3]) -> I420<'_> {
        let cw = w.div_ceil(2) as usize;
        I420 {
            width: w,
            height: h,
            planes: [&p[0], &p[1], &p[2]],
            strides: [w as usize, cw, cw],
        }
    }

    #[test]
    fn weights_sum_to_one_and_stay_in_bounds() {
        for (s, d) in [
            (1280, 640),
            (1280, 320),
            (1281, 641),
            (7, 3),
            (3, 7),
            (5, 5),
            (1, 1),
        ] {
            let a = Axis::new(s, d);
            for i in 0..d {
                let n = a.counts[i];
                let sum: u32 = a.weights[i * a.taps..][..n].iter().sum();
                assert_eq!(sum, 1 << WEIGHT_BITS, "{s}->{d} at {i}");
                assert!(a.starts[i] + n <= s, "{s}->{d} at {i}");
            }
        }
    }

    #[test]
    fn flat_pictures_stay_flat_at_any_ratio() {
        for (sw, sh, dw, dh) in [
            (1280, 720, 640, 360),
            (1280, 720, 320, 180),
            (1281, 719, 641, 359),
            (641, 361, 321, 181),
            (33, 17, 7, 5),
            (64, 48, 64, 48),
            (10, 10, 15, 15),
        ] {
            let p = picture(sw, sh, |_, _, plane| [77, 140, 201][plane]);
            let mut s = I420Scaler::new(dw, dh).unwrap();
            let out = s.scale(&view(sw, sh, &p)).unwrap();
            assert_eq!((out.width, out.height), (dw, dh));
            for (i, want) in [77u8, 140, 201].into_iter().enumerate() {
                let (w, h) = out.plane_size(i);
                assert_eq!(out.planes[i].len(), w * h);
                assert!(
                    out.planes[i].iter().all(|&v| v == want),
                    "{sw}x{sh}->{dw}x{dh} plane {i}"
                );
            }
        }
    }

    #[test]
    fn halving_averages_each_two_by_two_block() {
        let p = picture(8, 4, |x, y, _| (x * 20 + y * 3) as u8);
        let mut s = I420Scaler::new(4, 2).unwrap();
        let out = s.scale(&view(8, 4, &p)).unwrap();
        for oy in 0..2u32 {
            for ox in 0..4u32 {
                let sum: u32 = [(0, 0), (1, 0), (0, 1), (1, 1)]
                    .iter()
                    .map(|(dx, dy)| (2 * ox + dx) * 20 + (2 * oy + dy) * 3)
                    .sum();
                let want = (sum + 2) / 4;
                let got = u32::from(out.planes[0][(oy * 4 + ox) as usize]);
                assert!(got.abs_diff(want) <= 1, "({ox},{oy}): {got} vs {want}");
            }
        }
    }

    #[test]
    fn a_gradient_keeps_its_mean_and_direction() {
        let (sw, sh, dw, dh) = (1279u32, 721u32, 427u32, 240u32);
        let p = picture(sw, sh, |x, _, _| (x * 255 / (sw - 1)) as u8);
        let mut s = I420Scaler::new(dw, dh).unwrap();
        let out = s.scale(&view(sw, sh, &p)).unwrap();
        let row = &out.planes[0][..dw as usize];
        assert!(row.windows(2).all(|w| w[0] <= w[1]), "monotonic");
        let mean = |v: &[u8]| v.iter().map(|&b| f64::from(b)).sum::<f64>() / v.len() as f64;
        let src_mean = mean(&p[0][..sw as usize]);
        assert!((mean(row) - src_mean).abs() < 1.0);
    }

    #[test]
    fn strided_sources_and_size_changes() {
        let p = picture(100, 60, |x, y, _| (x + y) as u8);
        // The same picture with padded rows.
        let padded: [Vec<u8>; 3] = [0usize, 1, 2].map(|i| {
            let (w, h) = if i == 0 { (100, 60) } else { (50, 30) };
            let mut v = vec![9u8; (w + 16) * h];
            for y in 0..h {
                v[y * (w + 16)..][..w].copy_from_slice(&p[i][y * w..][..w]);
            }
            v
        });
        let strided = I420 {
            width: 100,
            height: 60,
            planes: [&padded[0], &padded[1], &padded[2]],
            strides: [116, 66, 66],
        };
        let mut s = I420Scaler::new(30, 20).unwrap();
        let a = s
            .scale(&view(100, 60, &p))
            .unwrap()
            .planes
            .map(<[u8]>::to_vec);
        let b = s.scale(&strided).unwrap().planes.map(<[u8]>::to_vec);
        assert_eq!(a, b);
        // Another source size rebuilds the filters.
        let q = picture(61, 41, |_, _, _| 50);
        let out = s.scale(&view(61, 41, &q)).unwrap();
        assert!(out.planes[0].iter().all(|&v| v == 50));
        // Bad input is an error.
        let short = I420 {
            width: 100,
            height: 60,
            planes: [&p[0][..10], &p[1], &p[2]],
            strides: [100, 50, 50],
        };
        assert!(matches!(s.scale(&short), Err(CodecError::BadFrame { .. })));
        assert!(I420Scaler::new(0, 10).is_err());
    }

    proptest::proptest! {
        /// Any sizes, any content: no panic, and every output sample lies within the range of
        /// its source plane (each is a weighted mean with non-negative weights).
        #[test]
        fn any_sizes_stay_within_the_source_range(sw in 1u32..160, sh in 1u32..120, dw in 1u32..100, dh in 1u32..80,
                                                  seed in proptest::num::u32::ANY) {
            let p = picture(sw, sh, |x, y, plane| {
                let v = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503) ^ seed) >> (plane as u32 * 3);
                (v % 200 + 20) as u8
            });
            let mut s = I420Scaler::new(dw, dh).unwrap();
            let out = s.scale(&view(sw, sh, &p)).unwrap();
            for (i, plane) in p.iter().enumerate() {
                let (lo, hi) = (*plane.iter().min().unwrap(), *plane.iter().max().unwrap());
                let (w, h) = out.plane_size(i);
                proptest::prop_assert_eq!(out.planes[i].len(), w * h);
                proptest::prop_assert!(out.planes[i].iter().all(|&v| (lo..=hi).contains(&v)));
            }
        }
    }
}

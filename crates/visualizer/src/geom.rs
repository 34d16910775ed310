//! Small value types shared by the renderers: pixel rectangles and sRGB colours.

/// An axis-aligned rectangle in target pixels, origin at the top-left corner.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rect {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
}

impl Rect {
    /// A rectangle from its top-left corner and size.
    pub const fn new(x: f32, y: f32, w: f32, h: f32) -> Self {
        Self { x, y, w, h }
    }

    /// The whole of a `width`×`height` target.
    pub fn of_size(width: u32, height: u32) -> Self {
        Self::new(0.0, 0.0, width as f32, height as f32)
    }

    /// Right edge.
    pub fn right(&self) -> f32 {
        self.x + self.w
    }

    /// Bottom edge.
    pub fn bottom(&self) -> f32 {
        self.y + self.h
    }

    /// Centre point.
    pub fn center(&self) -> (f32, f32) {
        (self.x + self.w * 0.5, self.y + self.h * 0.5)
    }

    /// True when the point lies inside (edges inclusive on the top-left, exclusive on the bottom-right).
    pub fn contains(&self, x: f32, y: f32) -> bool {
        x >= self.x && y >= self.y && x < self.right() && y < self.bottom()
    }

    /// Shrinks every side by `d` (never below zero size).
    pub fn inset(&self, d: f32) -> Self {
        let w = (self.w - 2.0 * d).max(0.0);
        let h = (self.h - 2.0 * d).max(0.0);
        Self::new(self.x + d, self.y + d, w, h)
    }

    /// The largest rectangle of aspect `aspect` (width / height) centred inside `self`.
    pub fn fit_aspect(&self, aspect: f32) -> Self {
        if !(aspect.is_finite() && aspect > 0.0) || self.w <= 0.0 || self.h <= 0.0 {
            return *self;
        }
        let (w, h) = if self.w / self.h > aspect {
            (self.h * aspect, self.h)
        } else {
            (self.w, self.w / aspect)
        };
        Self::new(
            self.x + (self.w - w) * 0.5,
            self.y + (self.h - h) * 0.5,
            w,
            h,
        )
    }

    /// Splits off the left `frac` of the width: `(left, right)`.
    pub fn split_h(&self, frac: f32) -> (Self, Self) {
        let lw = self.w * frac.clamp(0.0, 1.0);
        (
            Self::new(self.x, self.y, lw, self.h),
            Self::new(self.x + lw, self.y, self.w - lw, self.h),
        )
    }

    /// Splits off the top `frac` of the height: `(top, bottom)`.
    pub fn split_v(&self, frac: f32) -> (Self, Self) {
        let th = self.h * frac.clamp(0.0, 1.0);
        (
            Self::new(self.x, self.y, self.w, th),
            Self::new(self.x, self.y + th, self.w, self.h - th),
        )
    }
}

/// A colour in sRGB encoding (as on screen and in PNGs), straight (not premultiplied) alpha, 0..=1.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Color {
    /// Red.
    pub r: f32,
    /// Green.
    pub g: f32,
    /// Blue.
    pub b: f32,
    /// Alpha.
    pub a: f32,
}

impl Color {
    /// An opaque colour from 8-bit sRGB components.
    pub const fn rgb8(r: u8, g: u8, b: u8) -> Self {
        Self::rgba8(r, g, b, 255)
    }

    /// A colour from 8-bit sRGB components and alpha.
    pub const fn rgba8(r: u8, g: u8, b: u8, a: u8) -> Self {
        Self {
            r: r as f32 / 255.0,
            g: g as f32 / 255.0,
            b: b as f32 / 255.0,
            a: a as f32 / 255.0,
        }
    }

    /// The same colour with another alpha.
    pub const fn with_alpha(self, a: f32) -> Self {
        Self { a, ..self }
    }

    /// As 8-bit components `[r, g, b, a]`.
    pub fn to_rgba8(self) -> [u8; 4] {
        let q = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        [q(self.r), q(self.g), q(self.b), q(self.a)]
    }

    /// As a `wgpu` clear colour for a target of `format` (linearised for sRGB formats).
    pub fn to_wgpu(self, format: wgpu::TextureFormat) -> wgpu::Color {
        let conv = |v: f32| {
            let v = f64::from(v);
            if format.is_srgb() {
                srgb_to_linear(v)
            } else {
                v
            }
        };
        wgpu::Color {
            r: conv(self.r),
            g: conv(self.g),
            b: conv(self.b),
            a: f64::from(self.a),
        }
    }

    /// As a glyphon text colour.
    pub fn to_glyphon(self) -> glyphon::Color {
        let [r, g, b, a] = self.to_rgba8();
        glyphon::Color::rgba(r, g, b, a)
    }

    /// As `[r, g, b, a]` floats.
    pub fn to_array(self) -> [f32; 4] {
        [self.r, self.g, self.b, self.a]
    }
}

fn srgb_to_linear(v: f64) -> f64 {
    if v <= 0.04045 {
        v / 12.92
    } else {
        ((v + 0.055) / 1.055).powf(2.4)
    }
}

/// The palette the built-in renderers use.
pub mod palette {
    use super::Color;

    /// Window and panel background.
    pub const BACKGROUND: Color = Color::rgb8(0x12, 0x14, 0x18);
    /// Panel (widget) background.
    pub const PANEL: Color = Color::rgb8(0x1c, 0x1f, 0x26);
    /// Dim grid lines and ticks.
    pub const GRID_LINE: Color = Color::rgb8(0x3a, 0x3f, 0x4a);
    /// Scale labels.
    pub const LABEL: Color = Color::rgb8(0xb8, 0xbe, 0xc8);
    /// Waveform trace.
    pub const TRACE: Color = Color::rgb8(0x4c, 0xd9, 0xff);
    /// Meter and spectrum, safe range.
    pub const GREEN: Color = Color::rgb8(0x2e, 0xcc, 0x71);
    /// Meter and spectrum, approaching full scale.
    pub const YELLOW: Color = Color::rgb8(0xf1, 0xc4, 0x0f);
    /// Meter, near or at full scale; muted microphone.
    pub const RED: Color = Color::rgb8(0xe7, 0x4c, 0x3c);
    /// Speaking ring.
    pub const SPEAKING: Color = Color::rgb8(0x2e, 0xcc, 0x71);
    /// Screen-share badge.
    pub const SHARE: Color = Color::rgb8(0x34, 0x7d, 0xf0);
    /// Name label background.
    pub const LABEL_BG: Color = Color::rgba8(0x00, 0x00, 0x00, 0xb0);
    /// White text and icons.
    pub const WHITE: Color = Color::rgb8(0xff, 0xff, 0xff);
    /// Inactive quality bars.
    pub const INACTIVE: Color = Color::rgb8(0x55, 0x5a, 0x66);
    /// Tile backgrounds, picked by tile index.
    pub const TILES: [Color; 6] = [
        Color::rgb8(0x2c, 0x3e, 0x50),
        Color::rgb8(0x3d, 0x2c, 0x50),
        Color::rgb8(0x2c, 0x50, 0x45),
        Color::rgb8(0x50, 0x3d, 0x2c),
        Color::rgb8(0x2c, 0x45, 0x50),
        Color::rgb8(0x45, 0x50, 0x2c),
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_aspect_letterboxes_and_pillarboxes() {
        let r = Rect::new(0.0, 0.0, 200.0, 100.0);
        let f = r.fit_aspect(1.0);
        assert_eq!(f, Rect::new(50.0, 0.0, 100.0, 100.0));
        let f = r.fit_aspect(4.0);
        assert_eq!(f, Rect::new(0.0, 25.0, 200.0, 50.0));
        assert_eq!(r.fit_aspect(f32::NAN), r);
    }

    #[test]
    fn color_roundtrips_through_u8() {
        assert_eq!(Color::rgb8(1, 2, 250).to_rgba8(), [1, 2, 250, 255]);
    }
}

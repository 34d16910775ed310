//! Video: I420 planes as three `R8Unorm` textures, YUV→RGB in WGSL, aspect-fit letterboxing.

use bytemuck::{Pod, Zeroable};
pub use wavecast_pipeline::Rotation;

use crate::error::{Result, VisualizerError};
use crate::geom::{Color, Rect};

/// YCbCr matrix coefficients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Matrix {
    /// ITU-R BT.601 (SD video; what most WebRTC encoders signal by default).
    #[default]
    Bt601,
    /// ITU-R BT.709 (HD video).
    Bt709,
}

impl Matrix {
    /// `(Kr, Kb)`.
    pub fn kr_kb(self) -> (f32, f32) {
        match self {
            Matrix::Bt601 => (0.299, 0.114),
            Matrix::Bt709 => (0.2126, 0.0722),
        }
    }
}

/// Quantisation range of the 8-bit samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Range {
    /// "TV" range: luma 16..=235, chroma 16..=240.
    #[default]
    Limited,
    /// "PC"/JPEG range: 0..=255.
    Full,
}

/// How to turn a frame's YUV samples into RGB.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ColorSpace {
    /// Matrix coefficients.
    pub matrix: Matrix,
    /// Sample range.
    pub range: Range,
}

impl ColorSpace {
    /// BT.601 limited range.
    pub const BT601_LIMITED: Self = Self::new(Matrix::Bt601, Range::Limited);
    /// BT.601 full range.
    pub const BT601_FULL: Self = Self::new(Matrix::Bt601, Range::Full);
    /// BT.709 limited range.
    pub const BT709_LIMITED: Self = Self::new(Matrix::Bt709, Range::Limited);
    /// BT.709 full range.
    pub const BT709_FULL: Self = Self::new(Matrix::Bt709, Range::Full);

    /// A colour space from its parts.
    pub const fn new(matrix: Matrix, range: Range) -> Self {
        Self { matrix, range }
    }

    /// The affine map from normalised samples `(y, u, v, 1)` (each `value / 255`) to RGB 0..1,
    /// as three rows. This is what the shader applies.
    pub fn yuv_to_rgb_rows(self) -> [[f32; 4]; 3] {
        let (kr, kb) = self.matrix.kr_kb();
        let kg = 1.0 - kr - kb;
        // Y' = ay * y + by ; Cb = ac * u + bc ; Cr = ac * v + bc
        let (ay, by, ac, bc) = match self.range {
            Range::Limited => (255.0 / 219.0, -16.0 / 219.0, 255.0 / 224.0, -128.0 / 224.0),
            Range::Full => (1.0, 0.0, 1.0, -128.0 / 255.0),
        };
        let r_cr = 2.0 * (1.0 - kr);
        let g_cb = -2.0 * kb * (1.0 - kb) / kg;
        let g_cr = -2.0 * kr * (1.0 - kr) / kg;
        let b_cb = 2.0 * (1.0 - kb);
        [
            [ay, 0.0, r_cr * ac, by + r_cr * bc],
            [ay, g_cb * ac, g_cr * ac, by + (g_cb + g_cr) * bc],
            [ay, b_cb * ac, 0.0, by + b_cb * bc],
        ]
    }

    /// Converts one 8-bit sRGB-encoded colour to 8-bit `(Y, U, V)` in this colour space
    /// (used to build test patterns).
    pub fn rgb_to_yuv(self, rgb: [u8; 3]) -> [u8; 3] {
        let (kr, kb) = self.matrix.kr_kb();
        let kg = 1.0 - kr - kb;
        let [r, g, b] = rgb.map(|c| f32::from(c) / 255.0);
        let y = kr * r + kg * g + kb * b;
        let cb = (b - y) / (2.0 * (1.0 - kb));
        let cr = (r - y) / (2.0 * (1.0 - kr));
        let q = |v: f32| v.round().clamp(0.0, 255.0) as u8;
        match self.range {
            Range::Limited => [
                q(16.0 + 219.0 * y),
                q(128.0 + 224.0 * cb),
                q(128.0 + 224.0 * cr),
            ],
            Range::Full => [q(255.0 * y), q(128.0 + 255.0 * cb), q(128.0 + 255.0 * cr)],
        }
    }

    /// Converts 8-bit `(Y, U, V)` to 8-bit RGB on the CPU with the same arithmetic as the shader.
    pub fn yuv_to_rgb(self, yuv: [u8; 3]) -> [u8; 3] {
        let s = yuv.map(|c| f32::from(c) / 255.0);
        let rows = self.yuv_to_rgb_rows();
        rows.map(|m| {
            let v = m[0] * s[0] + m[1] * s[1] + m[2] * s[2] + m[3];
            (v.clamp(0.0, 1.0) * 255.0).round() as u8
        })
    }
}

/// A borrowed I420 (YUV 4:2:0, three planes) picture: the renderer's input.
///
/// Chroma planes are `ceil(width / 2)` × `ceil(height / 2)`. Strides may exceed the widths.
#[derive(Clone, Copy, Debug)]
pub struct I420Frame<'a> {
    /// Picture width in pixels.
    pub width: u32,
    /// Picture height in pixels.
    pub height: u32,
    /// Luma plane.
    pub y: &'a [u8],
    /// Bytes between luma rows.
    pub y_stride: u32,
    /// Cb plane.
    pub u: &'a [u8],
    /// Bytes between Cb rows.
    pub u_stride: u32,
    /// Cr plane.
    pub v: &'a [u8],
    /// Bytes between Cr rows.
    pub v_stride: u32,
}

impl I420Frame<'_> {
    /// Chroma plane size.
    pub fn chroma_size(&self) -> (u32, u32) {
        (self.width.div_ceil(2), self.height.div_ceil(2))
    }

    /// Checks that each plane holds `stride * (rows - 1) + width` bytes and strides cover widths.
    ///
    /// # Errors
    /// [`VisualizerError::InvalidFrame`] naming the plane at fault.
    pub fn validate(&self) -> Result<()> {
        let bad = |plane, reason: String| VisualizerError::InvalidFrame {
            width: self.width,
            height: self.height,
            plane,
            reason,
        };
        if self.width == 0 || self.height == 0 {
            return Err(bad("size", "width and height must be at least 1".into()));
        }
        let (cw, ch) = self.chroma_size();
        for (plane, data, stride, w, h) in [
            ("Y", self.y, self.y_stride, self.width, self.height),
            ("U", self.u, self.u_stride, cw, ch),
            ("V", self.v, self.v_stride, cw, ch),
        ] {
            if stride < w {
                return Err(bad(
                    plane,
                    format!("stride {stride} is less than the width {w}"),
                ));
            }
            let need = u64::from(stride) * u64::from(h - 1) + u64::from(w);
            if (data.len() as u64) < need {
                return Err(bad(
                    plane,
                    format!(
                        "{} bytes, need at least {need} ({h} rows of stride {stride})",
                        data.len()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// An owned I420 picture, for test patterns, demos and benches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct I420Buffer {
    width: u32,
    height: u32,
    y_stride: u32,
    c_stride: u32,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
}

/// The eight 75 % colour bars, left to right: white, yellow, cyan, green, magenta, red, blue, black.
pub const COLOR_BARS: [[u8; 3]; 8] = [
    [191, 191, 191],
    [191, 191, 0],
    [0, 191, 191],
    [0, 191, 0],
    [191, 0, 191],
    [191, 0, 0],
    [0, 0, 191],
    [0, 0, 0],
];

impl I420Buffer {
    /// A black (in `color_space`) picture whose rows are padded by `row_padding` bytes.
    pub fn new(width: u32, height: u32, row_padding: u32, color_space: ColorSpace) -> Self {
        let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
        let y_stride = width + row_padding;
        let c_stride = cw + row_padding;
        let [y0, u0, v0] = color_space.rgb_to_yuv([0, 0, 0]);
        Self {
            width,
            height,
            y_stride,
            c_stride,
            y: vec![y0; (y_stride * height) as usize],
            u: vec![u0; (c_stride * ch) as usize],
            v: vec![v0; (c_stride * ch) as usize],
        }
    }

    /// The eight [`COLOR_BARS`] as vertical stripes of equal width, encoded in `color_space`.
    pub fn color_bars(width: u32, height: u32, color_space: ColorSpace) -> Self {
        let mut buf = Self::new(width, height, 16, color_space);
        let n = COLOR_BARS.len() as u32;
        for (i, rgb) in COLOR_BARS.iter().enumerate() {
            let i = i as u32;
            let x0 = i * width / n;
            let x1 = (i + 1) * width / n;
            buf.fill_rect(x0, 0, x1 - x0, height, *rgb, color_space);
        }
        buf
    }

    /// Paints an RGB rectangle (chroma is written for every 2×2 block whose top-left is inside).
    pub fn fill_rect(&mut self, x: u32, y: u32, w: u32, h: u32, rgb: [u8; 3], cs: ColorSpace) {
        let [yy, uu, vv] = cs.rgb_to_yuv(rgb);
        let x1 = (x + w).min(self.width);
        let y1 = (y + h).min(self.height);
        for row in y..y1 {
            let start = (row * self.y_stride) as usize;
            self.y[start + x as usize..start + x1 as usize].fill(yy);
        }
        let (cx0, cy0) = (x.div_ceil(2), y.div_ceil(2));
        let (cx1, cy1) = (x1.div_ceil(2), y1.div_ceil(2));
        for row in cy0..cy1 {
            let start = (row * self.c_stride) as usize;
            self.u[start + cx0 as usize..start + cx1 as usize].fill(uu);
            self.v[start + cx0 as usize..start + cx1 as usize].fill(vv);
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Borrows the planes as an [`I420Frame`].
    pub fn as_frame(&self) -> I420Frame<'_> {
        I420Frame {
            width: self.width,
            height: self.height,
            y: &self.y,
            y_stride: self.y_stride,
            u: &self.u,
            u_stride: self.c_stride,
            v: &self.v,
            v_stride: self.c_stride,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
struct Params {
    region: [f32; 4],
    picture: [f32; 4],
    m0: [f32; 4],
    m1: [f32; 4],
    m2: [f32; 4],
    border: [f32; 4],
    rot: [f32; 4],
}

/// Rows of the matrix taking display coordinates (about the centre) to texture coordinates for a
/// frame shown rotated clockwise by `rotation`.
fn rotation_rows(rotation: Rotation) -> [f32; 4] {
    match rotation {
        Rotation::R0 => [1.0, 0.0, 0.0, 1.0],
        Rotation::R90 => [0.0, 1.0, -1.0, 0.0],
        Rotation::R180 => [-1.0, 0.0, 0.0, -1.0],
        Rotation::R270 => [0.0, -1.0, 1.0, 0.0],
    }
}

#[derive(Debug)]
struct Planes {
    width: u32,
    height: u32,
    y: wgpu::Texture,
    u: wgpu::Texture,
    v: wgpu::Texture,
    bind_group: wgpu::BindGroup,
}

/// Draws the latest I420 frame into a region of the target, aspect-fit with letterbox bars.
///
/// The three plane textures are reused while the frame size stays the same.
#[derive(Debug)]
pub struct VideoRenderer {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    sampler: wgpu::Sampler,
    params: wgpu::Buffer,
    planes: Option<Planes>,
    target: (u32, u32),
    region: Option<Rect>,
    color_space: ColorSpace,
    border: Color,
    rotation: Rotation,
    texture_allocations: u64,
}

impl VideoRenderer {
    /// Builds the pipeline for targets of `format`.
    pub fn new(device: &wgpu::Device, format: wgpu::TextureFormat) -> Self {
        let shader = device.create_shader_module(wgpu::include_wgsl!("shaders/video.wgsl"));
        let tex_entry = |binding| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::FRAGMENT,
            ty: wgpu::BindingType::Texture {
                sample_type: wgpu::TextureSampleType::Float { filterable: true },
                view_dimension: wgpu::TextureViewDimension::D2,
                multisampled: false,
            },
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("video"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::VERTEX_FRAGMENT,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
                tex_entry(1),
                tex_entry(2),
                tex_entry(3),
                wgpu::BindGroupLayoutEntry {
                    binding: 4,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Sampler(wgpu::SamplerBindingType::Filtering),
                    count: None,
                },
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("video"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let constants = [("SRGB_TARGET", if format.is_srgb() { 1.0 } else { 0.0 })];
        let options = wgpu::PipelineCompilationOptions {
            constants: &constants,
            ..Default::default()
        };
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("video"),
            layout: Some(&pipeline_layout),
            vertex: wgpu::VertexState {
                module: &shader,
                entry_point: Some("vs_main"),
                compilation_options: options.clone(),
                buffers: &[],
            },
            primitive: wgpu::PrimitiveState::default(),
            depth_stencil: None,
            multisample: wgpu::MultisampleState::default(),
            fragment: Some(wgpu::FragmentState {
                module: &shader,
                entry_point: Some("fs_main"),
                compilation_options: options,
                targets: &[Some(wgpu::ColorTargetState {
                    format,
                    blend: None,
                    write_mask: wgpu::ColorWrites::ALL,
                })],
            }),
            multiview_mask: None,
            cache: None,
        });
        let sampler = device.create_sampler(&wgpu::SamplerDescriptor {
            label: Some("video"),
            address_mode_u: wgpu::AddressMode::ClampToEdge,
            address_mode_v: wgpu::AddressMode::ClampToEdge,
            mag_filter: wgpu::FilterMode::Linear,
            min_filter: wgpu::FilterMode::Linear,
            ..Default::default()
        });
        let params = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("video params"),
            size: std::mem::size_of::<Params>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Self {
            pipeline,
            layout,
            sampler,
            params,
            planes: None,
            target: (1, 1),
            region: None,
            color_space: ColorSpace::default(),
            border: Color::rgb8(0, 0, 0),
            rotation: Rotation::R0,
            texture_allocations: 0,
        }
    }

    /// Records the target size (the region defaults to the whole target).
    pub fn resize(&mut self, queue: &wgpu::Queue, width: u32, height: u32) {
        self.target = (width.max(1), height.max(1));
        self.write_params(queue);
    }

    /// Draws into `region` of the target instead of the whole target (`None` for all of it).
    pub fn set_region(&mut self, queue: &wgpu::Queue, region: Option<Rect>) {
        self.region = region;
        self.write_params(queue);
    }

    /// Sets the letterbox bar colour (black by default).
    pub fn set_border(&mut self, queue: &wgpu::Queue, color: Color) {
        self.border = color;
        self.write_params(queue);
    }

    /// Shows frames rotated clockwise by `rotation` (the aspect fit follows the rotated shape).
    pub fn set_rotation(&mut self, queue: &wgpu::Queue, rotation: Rotation) {
        if self.rotation != rotation {
            self.rotation = rotation;
            self.write_params(queue);
        }
    }

    /// Uploads a pipeline [`wavecast_pipeline::VideoFrame`] (I420) and applies its rotation.
    ///
    /// # Errors
    /// As [`VideoRenderer::update`], plus [`VisualizerError::InvalidFrame`] for other formats.
    pub fn update_video_frame(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        frame: &wavecast_pipeline::VideoFrame,
        color_space: ColorSpace,
    ) -> Result<()> {
        let view = I420Frame::from_video_frame(frame)?;
        self.set_rotation(queue, frame.rotation());
        self.update(device, queue, &view, color_space)
    }

    /// Uploads a new frame, decoded as `color_space`.
    ///
    /// # Errors
    /// [`VisualizerError::InvalidFrame`] when the planes do not match the size and strides, or
    /// [`VisualizerError::InvalidSize`] when the frame exceeds the device's texture limit.
    pub fn update(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        frame: &I420Frame<'_>,
        color_space: ColorSpace,
    ) -> Result<()> {
        frame.validate()?;
        let max = device.limits().max_texture_dimension_2d;
        if frame.width > max || frame.height > max {
            return Err(VisualizerError::InvalidSize {
                what: "video frame",
                width: frame.width,
                height: frame.height,
                max,
            });
        }
        let reuse = self
            .planes
            .as_ref()
            .is_some_and(|p| p.width == frame.width && p.height == frame.height);
        if !reuse {
            self.planes = Some(self.create_planes(device, frame.width, frame.height));
            self.texture_allocations += 1;
            tracing::debug!(
                width = frame.width,
                height = frame.height,
                "video textures (re)created"
            );
        }
        let planes = self
            .planes
            .as_ref()
            .expect("planes were created just above");
        let (cw, ch) = frame.chroma_size();
        for (tex, data, stride, w, h) in [
            (
                &planes.y,
                frame.y,
                frame.y_stride,
                frame.width,
                frame.height,
            ),
            (&planes.u, frame.u, frame.u_stride, cw, ch),
            (&planes.v, frame.v, frame.v_stride, cw, ch),
        ] {
            let used = (stride as usize) * (h as usize - 1) + w as usize;
            queue.write_texture(
                tex.as_image_copy(),
                &data[..used],
                wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(stride),
                    rows_per_image: Some(h),
                },
                wgpu::Extent3d {
                    width: w,
                    height: h,
                    depth_or_array_layers: 1,
                },
            );
        }
        if self.color_space != color_space || !reuse {
            self.color_space = color_space;
            self.write_params(queue);
        }
        Ok(())
    }

    /// How many times plane textures were allocated (stays put while the frame size is unchanged).
    pub fn texture_allocations(&self) -> u64 {
        self.texture_allocations
    }

    /// Where the picture lands in the target, in pixels (`None` before the first frame).
    pub fn picture_rect(&self) -> Option<Rect> {
        let p = self.planes.as_ref()?;
        Some(self.region().fit_aspect(self.display_aspect(p)))
    }

    fn display_aspect(&self, p: &Planes) -> f32 {
        match self.rotation {
            Rotation::R0 | Rotation::R180 => p.width as f32 / p.height as f32,
            Rotation::R90 | Rotation::R270 => p.height as f32 / p.width as f32,
        }
    }

    fn region(&self) -> Rect {
        self.region
            .unwrap_or_else(|| Rect::of_size(self.target.0, self.target.1))
    }

    fn create_planes(&self, device: &wgpu::Device, width: u32, height: u32) -> Planes {
        let tex = |label, w, h| {
            device.create_texture(&wgpu::TextureDescriptor {
                label: Some(label),
                size: wgpu::Extent3d {
                    width: w,
                    height: h,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: wgpu::TextureFormat::R8Unorm,
                usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
                view_formats: &[],
            })
        };
        let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
        let y = tex("video Y", width, height);
        let u = tex("video U", cw, ch);
        let v = tex("video V", cw, ch);
        let view = |t: &wgpu::Texture| t.create_view(&wgpu::TextureViewDescriptor::default());
        let (yv, uv, vv) = (view(&y), view(&u), view(&v));
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("video"),
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: self.params.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: wgpu::BindingResource::TextureView(&yv),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: wgpu::BindingResource::TextureView(&uv),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: wgpu::BindingResource::TextureView(&vv),
                },
                wgpu::BindGroupEntry {
                    binding: 4,
                    resource: wgpu::BindingResource::Sampler(&self.sampler),
                },
            ],
        });
        Planes {
            width,
            height,
            y,
            u,
            v,
            bind_group,
        }
    }

    fn write_params(&self, queue: &wgpu::Queue) {
        let Some(p) = &self.planes else { return };
        let (tw, th) = (self.target.0 as f32, self.target.1 as f32);
        let r = self.region();
        let fit = r.fit_aspect(self.display_aspect(p));
        let rows = self.color_space.yuv_to_rgb_rows();
        let params = Params {
            region: [
                r.x / tw * 2.0 - 1.0,
                1.0 - r.y / th * 2.0,
                r.right() / tw * 2.0 - 1.0,
                1.0 - r.bottom() / th * 2.0,
            ],
            picture: [
                (fit.x - r.x) / r.w.max(1e-6),
                (fit.y - r.y) / r.h.max(1e-6),
                (fit.w / r.w.max(1e-6)).max(1e-6),
                (fit.h / r.h.max(1e-6)).max(1e-6),
            ],
            m0: rows[0],
            m1: rows[1],
            m2: rows[2],
            border: self.border.to_array(),
            rot: rotation_rows(self.rotation),
        };
        queue.write_buffer(&self.params, 0, bytemuck::bytes_of(&params));
    }

    /// Draws the last uploaded frame (nothing before the first one).
    pub fn render(&self, pass: &mut wgpu::RenderPass<'_>) {
        let Some(p) = &self.planes else { return };
        let r = self.region();
        if r.w <= 0.0 || r.h <= 0.0 {
            return;
        }
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &p.bind_group, &[]);
        pass.draw(0..6, 0..1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_bt601_limited_values() {
        // 100 % red in BT.601 limited range: Y=81, Cb=90, Cr=240.
        let cs = ColorSpace::BT601_LIMITED;
        assert_eq!(cs.rgb_to_yuv([255, 0, 0]), [81, 90, 240]);
        assert_eq!(cs.rgb_to_yuv([255, 255, 255]), [235, 128, 128]);
        assert_eq!(cs.rgb_to_yuv([0, 0, 0]), [16, 128, 128]);
        // BT.709 100 % red: Y=63, Cb=102, Cr=240.
        assert_eq!(
            ColorSpace::BT709_LIMITED.rgb_to_yuv([255, 0, 0]),
            [63, 102, 240]
        );
    }

    #[test]
    fn matrix_inverts_the_forward_transform() {
        for cs in [
            ColorSpace::BT601_LIMITED,
            ColorSpace::BT601_FULL,
            ColorSpace::BT709_LIMITED,
            ColorSpace::BT709_FULL,
        ] {
            for rgb in COLOR_BARS
                .iter()
                .chain(&[[255, 255, 255], [255, 0, 0], [12, 200, 99]])
            {
                let back = cs.yuv_to_rgb(cs.rgb_to_yuv(*rgb));
                for c in 0..3 {
                    assert!(back[c].abs_diff(rgb[c]) <= 3, "{cs:?} {rgb:?} -> {back:?}");
                }
            }
        }
    }

    #[test]
    fn wrong_matrix_gives_visibly_wrong_colours() {
        let yuv = ColorSpace::BT709_LIMITED.rgb_to_yuv([0, 191, 191]);
        let wrong = ColorSpace::BT601_LIMITED.yuv_to_rgb(yuv);
        assert!(
            wrong
                .iter()
                .zip([0, 191, 191])
                .any(|(a, b)| a.abs_diff(b) > 10),
            "{wrong:?}"
        );
    }

    #[test]
    fn frame_validation_names_the_plane() {
        let buf = I420Buffer::new(5, 3, 0, ColorSpace::default());
        let mut f = buf.as_frame();
        assert!(f.validate().is_ok());
        assert_eq!(f.chroma_size(), (3, 2));
        f.u = &f.u[..4];
        let err = f.validate().unwrap_err().to_string();
        assert!(err.contains("U plane"), "{err}");
        let mut f = buf.as_frame();
        f.y_stride = 4;
        assert!(f.validate().unwrap_err().to_string().contains("stride 4"));
        let mut f = buf.as_frame();
        f.width = 0;
        assert!(f.validate().is_err());
    }
}

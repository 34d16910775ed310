//! Instanced, anti-aliased 2D primitives (rounded rectangles, rings, circles, thick lines).
//!
//! Every widget renderer draws its panels, bars, icons and traces through one of these.

use bytemuck::{Pod, Zeroable};

use crate::geom::{Color, Rect};

/// One primitive as the GPU sees it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct ShapeInstance {
    /// Rectangle `x, y, w, h`, or segment `x0, y0, x1, y1`, in pixels.
    pub a: [f32; 4],
    /// sRGB colour with straight alpha.
    pub color: [f32; 4],
    /// Radius or thickness, stroke width, unused, kind (0 box, 1 segment).
    pub p: [f32; 4],
}

const KIND_BOX: f32 = 0.0;
const KIND_SEGMENT: f32 = 1.0;

/// Draws a list of primitives in one instanced draw call.
///
/// Lifecycle: [`ShapeRenderer::new`] once, [`ShapeRenderer::resize`] when the target size changes,
/// then per frame [`ShapeRenderer::clear`], `push_*`, [`ShapeRenderer::upload`] and
/// [`ShapeRenderer::render`]. The instance list and GPU buffer are reused (grown, never shrunk).
#[derive(Debug)]
pub struct ShapeRenderer {
    pipeline: wgpu::RenderPipeline,
    globals: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    instances: Vec<ShapeInstance>,
    buffer: wgpu::Buffer,
    capacity: usize,
    uploaded: u32,
}

impl ShapeRenderer {
    /// Builds the pipeline for targets of `format`.
    pub fn new(device: &wgpu::Device, format: wgpu::TextureFormat) -> Self {
        let shader = device.create_shader_module(wgpu::include_wgsl!("shaders/shapes.wgsl"));
        let bgl = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("shapes globals"),
            entries: &[wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::VERTEX,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            }],
        });
        let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("shapes"),
            bind_group_layouts: &[Some(&bgl)],
            immediate_size: 0,
        });
        let constants = [("SRGB_TARGET", if format.is_srgb() { 1.0 } else { 0.0 })];
        let options = wgpu::PipelineCompilationOptions {
            constants: &constants,
            ..Default::default()
        };
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("shapes"),
            layout: Some(&layout),
            vertex: wgpu::VertexState {
                module: &shader,
                entry_point: Some("vs_main"),
                compilation_options: options.clone(),
                buffers: &[Some(wgpu::VertexBufferLayout {
                    array_stride: std::mem::size_of::<ShapeInstance>() as u64,
                    step_mode: wgpu::VertexStepMode::Instance,
                    attributes: &wgpu::vertex_attr_array![0 => Float32x4, 1 => Float32x4, 2 => Float32x4],
                })],
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
                    blend: Some(wgpu::BlendState::ALPHA_BLENDING),
                    write_mask: wgpu::ColorWrites::ALL,
                })],
            }),
            multiview_mask: None,
            cache: None,
        });
        let globals = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("shapes globals"),
            size: 16,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("shapes globals"),
            layout: &bgl,
            entries: &[wgpu::BindGroupEntry {
                binding: 0,
                resource: globals.as_entire_binding(),
            }],
        });
        let capacity = 256;
        let buffer = Self::instance_buffer(device, capacity);
        Self {
            pipeline,
            globals,
            bind_group,
            instances: Vec::with_capacity(capacity),
            buffer,
            capacity,
            uploaded: 0,
        }
    }

    fn instance_buffer(device: &wgpu::Device, capacity: usize) -> wgpu::Buffer {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("shape instances"),
            size: (capacity * std::mem::size_of::<ShapeInstance>()) as u64,
            usage: wgpu::BufferUsages::VERTEX | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// Tells the shader the target size in pixels.
    pub fn resize(&mut self, queue: &wgpu::Queue, width: u32, height: u32) {
        let size = [width.max(1) as f32, height.max(1) as f32, 0.0, 0.0];
        queue.write_buffer(&self.globals, 0, bytemuck::cast_slice(&size));
    }

    /// Forgets the previous frame's primitives (keeps the allocation).
    pub fn clear(&mut self) {
        self.instances.clear();
    }

    /// Number of primitives queued.
    pub fn len(&self) -> usize {
        self.instances.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }

    /// A filled rectangle with rounded corners (`radius` 0 for square ones).
    pub fn rect(&mut self, r: Rect, color: Color, radius: f32) {
        self.push_box(r, color, radius, 0.0);
    }

    /// The outline of a rounded rectangle, `stroke` pixels wide, inside `r`.
    pub fn ring(&mut self, r: Rect, color: Color, radius: f32, stroke: f32) {
        self.push_box(r, color, radius, stroke.max(0.01));
    }

    /// A filled circle.
    pub fn circle(&mut self, cx: f32, cy: f32, radius: f32, color: Color) {
        let r = Rect::new(cx - radius, cy - radius, radius * 2.0, radius * 2.0);
        self.push_box(r, color, radius, 0.0);
    }

    /// A straight line with round caps.
    pub fn line(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, thickness: f32, color: Color) {
        if color.a <= 0.0 {
            return;
        }
        self.instances.push(ShapeInstance {
            a: [x0, y0, x1, y1],
            color: color.to_array(),
            p: [thickness.max(0.0), 0.0, 0.0, KIND_SEGMENT],
        });
    }

    fn push_box(&mut self, r: Rect, color: Color, radius: f32, stroke: f32) {
        if r.w <= 0.0 || r.h <= 0.0 || color.a <= 0.0 {
            return;
        }
        self.instances.push(ShapeInstance {
            a: [r.x, r.y, r.w, r.h],
            color: color.to_array(),
            p: [radius.max(0.0), stroke, 0.0, KIND_BOX],
        });
    }

    /// Sends the queued primitives to the GPU (grows the buffer only when it is too small).
    pub fn upload(&mut self, device: &wgpu::Device, queue: &wgpu::Queue) {
        if self.instances.len() > self.capacity {
            self.capacity = self.instances.len().next_power_of_two();
            self.buffer = Self::instance_buffer(device, self.capacity);
        }
        if !self.instances.is_empty() {
            queue.write_buffer(&self.buffer, 0, bytemuck::cast_slice(&self.instances));
        }
        self.uploaded = self.instances.len() as u32;
    }

    /// Draws what was last uploaded.
    pub fn render(&self, pass: &mut wgpu::RenderPass<'_>) {
        if self.uploaded == 0 {
            return;
        }
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.set_vertex_buffer(0, self.buffer.slice(..));
        pass.draw(0..6, 0..self.uploaded);
    }
}

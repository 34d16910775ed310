//! Text through glyphon, with the bundled DejaVu Sans font (see `assets/fonts/README.md`).

use glyphon::{
    Attrs, Buffer, Cache, ColorMode, Family, FontSystem, Metrics, Resolution, Shaping, SwashCache,
    TextArea, TextAtlas, TextBounds, TextRenderer, Viewport,
};

use crate::error::{Result, VisualizerError};
use crate::geom::{Color, Rect};

/// The bundled font (DejaVu Sans 2.37, Bitstream Vera licence; see `assets/fonts/`).
pub static FONT_DATA: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

/// The family name of [`FONT_DATA`].
pub const FONT_FAMILY: &str = "DejaVu Sans";

/// A font system that knows only the bundled font (no system font scan: fast and deterministic).
pub fn bundled_font_system() -> FontSystem {
    let mut db = glyphon::fontdb::Database::new();
    db.load_font_data(FONT_DATA.to_vec());
    FontSystem::new_with_locale_and_db("en-US".to_owned(), db)
}

/// Horizontal placement of a label relative to its anchor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// The anchor is the left edge.
    Left,
    /// The anchor is the centre.
    Center,
    /// The anchor is the right edge.
    Right,
}

struct Slot {
    buffer: Buffer,
    text: String,
    size: f32,
    width: f32,
    left: f32,
    top: f32,
    color: Color,
    clip: Rect,
}

/// A layer of short labels: shaped once, re-shaped only when their text or size changes.
///
/// Per frame: [`TextLayer::begin`], [`TextLayer::label`] for each label, [`TextLayer::prepare`],
/// then [`TextLayer::render`] inside the pass.
pub struct TextLayer {
    font_system: FontSystem,
    swash: SwashCache,
    atlas: TextAtlas,
    viewport: Viewport,
    renderer: TextRenderer,
    slots: Vec<Slot>,
    used: usize,
    what: &'static str,
}

impl std::fmt::Debug for TextLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextLayer")
            .field("what", &self.what)
            .field("labels", &self.used)
            .finish_non_exhaustive()
    }
}

impl TextLayer {
    /// Builds the atlas and pipeline for targets of `format`; `what` names the owner in errors.
    pub fn new(
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        format: wgpu::TextureFormat,
        what: &'static str,
    ) -> Self {
        let cache = Cache::new(device);
        // Our colours are sRGB-encoded values. glyphon's "Accurate" mode linearises them, which is
        // right only when the target re-encodes (an sRGB format); on linear-format targets the
        // values must pass through untouched ("Web" mode).
        let mode = if format.is_srgb() {
            ColorMode::Accurate
        } else {
            ColorMode::Web
        };
        let mut atlas = TextAtlas::with_color_mode(device, queue, &cache, format, mode);
        let renderer =
            TextRenderer::new(&mut atlas, device, wgpu::MultisampleState::default(), None);
        let viewport = Viewport::new(device, &cache);
        Self {
            font_system: bundled_font_system(),
            swash: SwashCache::new(),
            atlas,
            viewport,
            renderer,
            slots: Vec::new(),
            used: 0,
            what,
        }
    }

    /// Tells glyphon the target size.
    pub fn resize(&mut self, queue: &wgpu::Queue, width: u32, height: u32) {
        self.viewport.update(
            queue,
            Resolution {
                width: width.max(1),
                height: height.max(1),
            },
        );
    }

    /// Starts a new frame's list of labels.
    pub fn begin(&mut self) {
        self.used = 0;
    }

    /// Places one line of text with its top at `y`, anchored horizontally at `x` by `align`,
    /// clipped to `clip`. Returns the laid-out width in pixels.
    #[allow(clippy::too_many_arguments)]
    pub fn label(
        &mut self,
        text: &str,
        x: f32,
        y: f32,
        size: f32,
        align: Align,
        color: Color,
        clip: Rect,
    ) -> f32 {
        let size = size.max(1.0);
        let index = self.used;
        self.used += 1;
        if index == self.slots.len() {
            let buffer = Buffer::new(&mut self.font_system, Metrics::new(size, size * 1.2));
            self.slots.push(Slot {
                buffer,
                text: String::new(),
                size: 0.0,
                width: 0.0,
                left: 0.0,
                top: 0.0,
                color,
                clip,
            });
        }
        let slot = &mut self.slots[index];
        if slot.text != text || slot.size != size {
            slot.buffer
                .set_metrics(Metrics::new(size, (size * 1.2).ceil()));
            slot.buffer.set_size(None, None);
            slot.buffer.set_text(
                text,
                &Attrs::new().family(Family::Name(FONT_FAMILY)),
                Shaping::Advanced,
                None,
            );
            slot.buffer.shape_until_scroll(&mut self.font_system, false);
            slot.width = slot
                .buffer
                .layout_runs()
                .map(|run| run.line_w)
                .fold(0.0, f32::max);
            slot.text.clear();
            slot.text.push_str(text);
            slot.size = size;
        }
        slot.left = match align {
            Align::Left => x,
            Align::Center => x - slot.width * 0.5,
            Align::Right => x - slot.width,
        };
        slot.top = y;
        slot.color = color;
        slot.clip = clip;
        slot.width
    }

    /// Moves the most recently added label (for callers that size a box around the text first).
    pub fn move_last(&mut self, x: f32, y: f32, align: Align, clip: Rect) {
        let Some(slot) = self.used.checked_sub(1).and_then(|i| self.slots.get_mut(i)) else {
            return;
        };
        slot.left = match align {
            Align::Left => x,
            Align::Center => x - slot.width * 0.5,
            Align::Right => x - slot.width,
        };
        slot.top = y;
        slot.clip = clip;
    }

    /// Lays out the frame's labels and uploads new glyphs.
    ///
    /// # Errors
    /// [`VisualizerError::TextPrepare`] when the glyph atlas cannot grow.
    pub fn prepare(&mut self, device: &wgpu::Device, queue: &wgpu::Queue) -> Result<()> {
        let areas = self.slots[..self.used].iter().map(|s| TextArea {
            buffer: &s.buffer,
            left: s.left.round(),
            top: s.top.round(),
            scale: 1.0,
            bounds: TextBounds {
                left: s.clip.x.floor() as i32,
                top: s.clip.y.floor() as i32,
                right: s.clip.right().ceil() as i32,
                bottom: s.clip.bottom().ceil() as i32,
            },
            default_color: s.color.to_glyphon(),
            custom_glyphs: &[],
        });
        self.renderer
            .prepare(
                device,
                queue,
                &mut self.font_system,
                &mut self.atlas,
                &self.viewport,
                areas,
                &mut self.swash,
            )
            .map_err(|source| VisualizerError::TextPrepare {
                what: self.what,
                source,
            })?;
        self.atlas.trim();
        Ok(())
    }

    /// Draws the prepared labels.
    ///
    /// # Errors
    /// [`VisualizerError::TextRender`] when glyphon fails.
    pub fn render(&self, pass: &mut wgpu::RenderPass<'_>) -> Result<()> {
        self.renderer
            .render(&self.atlas, &self.viewport, pass)
            .map_err(|source| VisualizerError::TextRender {
                what: self.what,
                source,
            })
    }
}

//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while setting up the GPU, feeding renderers or writing images.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum VisualizerError {
    /// No adapter at all on the enabled backends (no GPU driver and no software Vulkan).
    #[error(
        "no GPU adapter found on backends {backends:?}: install a Vulkan driver, or Mesa's software \
         Vulkan (Debian: `apt-get install mesa-vulkan-drivers libvulkan1`) to render on the CPU"
    )]
    NoAdapter {
        /// The backends that were searched.
        backends: wgpu::Backends,
    },
    /// Adapters exist, but none of them can present to the window's surface.
    #[error("none of the {tried} GPU adapters can present to this window's surface")]
    NoCompatibleAdapter {
        /// How many adapters were tried.
        tried: usize,
    },
    /// The adapter refused to create a device.
    #[error("requesting a device from adapter {adapter:?}")]
    RequestDevice {
        /// The adapter's name.
        adapter: String,
        /// What wgpu said.
        #[source]
        source: wgpu::RequestDeviceError,
    },
    /// The window's surface could not be created.
    #[error("creating a surface for the window")]
    CreateSurface(#[source] wgpu::CreateSurfaceError),
    /// The surface reports no usable texture format for this adapter.
    #[error("the surface offers no texture format on adapter {adapter:?}")]
    NoSurfaceFormat {
        /// The adapter's name.
        adapter: String,
    },
    /// The surface failed validation (a bug, or a driver problem).
    #[error("the window surface failed validation while acquiring frame {frame}")]
    SurfaceValidation {
        /// The frame being acquired.
        frame: u64,
    },
    /// An I420 frame whose planes do not match its size and strides.
    #[error("invalid I420 frame {width}x{height}, {plane} plane: {reason}")]
    InvalidFrame {
        /// Frame width in pixels.
        width: u32,
        /// Frame height in pixels.
        height: u32,
        /// Which plane (`Y`, `U`, `V`) or `size`.
        plane: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A render target or image size outside what the device accepts.
    #[error("invalid size {width}x{height} for {what}: must be 1..={max} on each side")]
    InvalidSize {
        /// What was being sized.
        what: &'static str,
        /// Requested width.
        width: u32,
        /// Requested height.
        height: u32,
        /// The device's limit.
        max: u32,
    },
    /// A texture format the headless target cannot read back.
    #[error("texture format {format:?} cannot be read back (use an 8-bit RGBA or BGRA format)")]
    UnsupportedFormat {
        /// The format.
        format: wgpu::TextureFormat,
    },
    /// Mapping the readback buffer failed.
    #[error("mapping the readback buffer of a {width}x{height} image")]
    Readback {
        /// Image width.
        width: u32,
        /// Image height.
        height: u32,
        /// What wgpu said.
        #[source]
        source: wgpu::BufferAsyncError,
    },
    /// The mapped readback buffer could not be viewed.
    #[error("viewing the mapped readback buffer of a {width}x{height} image: {reason}")]
    ReadbackView {
        /// Image width.
        width: u32,
        /// Image height.
        height: u32,
        /// What wgpu said.
        reason: String,
    },
    /// Waiting for the GPU failed (device lost or timeout).
    #[error("waiting for the GPU to finish {what}")]
    Poll {
        /// The work being waited for.
        what: &'static str,
        /// What wgpu said.
        #[source]
        source: wgpu::PollError,
    },
    /// Encoding a PNG file failed.
    #[error("writing PNG {path}")]
    PngEncode {
        /// The file.
        path: PathBuf,
        /// What the encoder said.
        #[source]
        source: png::EncodingError,
    },
    /// Decoding a PNG file failed, or it is not 8-bit RGB/RGBA.
    #[error("reading PNG {path}: {reason}")]
    PngDecode {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// File-system error.
    #[error("I/O on {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Laying out or rasterising text failed (the glyph atlas is full, usually).
    #[error("preparing text for the {what}")]
    TextPrepare {
        /// Which renderer's text.
        what: &'static str,
        /// What glyphon said.
        #[source]
        source: glyphon::PrepareError,
    },
    /// Drawing text failed.
    #[error("drawing text for the {what}")]
    TextRender {
        /// Which renderer's text.
        what: &'static str,
        /// What glyphon said.
        #[source]
        source: glyphon::RenderError,
    },
    /// The window system failed.
    #[cfg(feature = "window")]
    #[error("window system: {context}")]
    Window {
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = VisualizerError> = std::result::Result<T, E>;

//! Screen capture on X11 (`--source screen`) with x11rb, the pure-Rust X11 client: the root
//! window is read with a core-protocol `GetImage` per frame and converted to I420 (BT.601 limited
//! range). Works on any X server, including Xvfb; no MIT-SHM, so it suits modest sizes and rates.

use wavecast_pipeline::{PixelFormat, VideoFrameMut, VideoLayout};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ConnectionExt, ImageFormat, ImageOrder, Window};
use x11rb::rust_connection::RustConnection;

use crate::error::{Result, StreamError};
use crate::publish::Grabber;

/// Grabs the root window of one X screen.
pub struct ScreenGrabber {
    conn: RustConnection,
    root: Window,
    width: u16,
    height: u16,
    /// Blue byte first (LSB-first 32-bit pixels).
    lsb_first: bool,
    display: String,
}

impl ScreenGrabber {
    /// Connects to `display` (or `$DISPLAY`) and checks the screen's pixel format.
    pub fn open(display: Option<&str>) -> Result<Self> {
        let name = display
            .map(str::to_owned)
            .or_else(|| std::env::var("DISPLAY").ok())
            .unwrap_or_default();
        let fail = |what: String, reason: String| StreamError::Capture { what, reason };
        if name.is_empty() {
            return Err(fail(
                "screen capture".into(),
                "needs an X display: set DISPLAY or pass --display :0".into(),
            ));
        }
        let (conn, screen_num) = x11rb::connect(Some(&name))
            .map_err(|e| fail(format!("X display {name}"), format!("cannot connect: {e}")))?;
        let setup = conn.setup();
        let screen = setup.roots.get(screen_num).ok_or_else(|| {
            fail(
                format!("X display {name}"),
                format!("no screen {screen_num}"),
            )
        })?;
        let depth = screen.root_depth;
        let bpp = setup
            .pixmap_formats
            .iter()
            .find(|f| f.depth == depth)
            .map(|f| f.bits_per_pixel);
        if !(depth == 24 || depth == 32) || bpp != Some(32) {
            return Err(StreamError::Unsupported {
                what: format!("X display {name}"),
                reason: format!(
                    "depth {depth} with {bpp:?} bits per pixel; screen capture reads 24/32-bit \
                     true colour"
                ),
            });
        }
        // I420 wants even sizes: drop a last odd column or row.
        let (width, height) = (screen.width_in_pixels & !1, screen.height_in_pixels & !1);
        Ok(Self {
            lsb_first: setup.image_byte_order == ImageOrder::LSB_FIRST,
            root: screen.root,
            width,
            height,
            conn,
            display: name,
        })
    }
}

impl Grabber for ScreenGrabber {
    fn layout(&self) -> VideoLayout {
        VideoLayout::new(
            PixelFormat::I420,
            u32::from(self.width),
            u32::from(self.height),
        )
        .expect("an X screen's size is a valid layout")
    }

    fn grab(&mut self, out: &mut VideoFrameMut) -> Result<()> {
        let reply = self
            .conn
            .get_image(
                ImageFormat::Z_PIXMAP,
                self.root,
                0,
                0,
                self.width,
                self.height,
                u32::MAX,
            )
            .map_err(|e| StreamError::Capture {
                what: format!("X display {}", self.display),
                reason: format!("GetImage request: {e}"),
            })?
            .reply()
            .map_err(|e| StreamError::Capture {
                what: format!("X display {}", self.display),
                reason: format!("cannot read the screen: {e}"),
            })?;
        let (w, h) = (usize::from(self.width), usize::from(self.height));
        let data = &reply.data;
        if data.len() < w * h * 4 {
            return Err(StreamError::Capture {
                what: format!("X display {}", self.display),
                reason: format!(
                    "GetImage returned {} bytes for {w}x{h}, expected {}",
                    data.len(),
                    w * h * 4
                ),
            });
        }
        let (r_at, b_at) = if self.lsb_first { (2, 0) } else { (1, 3) };
        let g_at = if self.lsb_first { 1 } else { 2 };
        let rgb = |x: usize, y: usize| {
            let p = &data[(y * w + x) * 4..];
            (f32::from(p[r_at]), f32::from(p[g_at]), f32::from(p[b_at]))
        };
        {
            let mut luma = out.plane_mut(0);
            for y in 0..h {
                let row = luma.row_mut(y);
                for (x, px) in row.iter_mut().enumerate().take(w) {
                    let (r, g, b) = rgb(x, y);
                    *px = (16.0 + 0.257 * r + 0.504 * g + 0.098 * b).round() as u8;
                }
            }
        }
        for (plane, v) in [(1usize, false), (2, true)] {
            let mut p = out.plane_mut(plane);
            for cy in 0..h / 2 {
                let row = p.row_mut(cy);
                for (cx, px) in row.iter_mut().enumerate().take(w / 2) {
                    let (r, g, b) = rgb(cx * 2, cy * 2);
                    let c = if v {
                        128.0 + 0.439 * r - 0.368 * g - 0.071 * b
                    } else {
                        128.0 - 0.148 * r - 0.291 * g + 0.439 * b
                    };
                    *px = c.round().clamp(0.0, 255.0) as u8;
                }
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "screen of X display {} ({}x{})",
            self.display, self.width, self.height
        )
    }
}

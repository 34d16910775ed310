//! Instance, adapter and device: one [`Gpu`] serves every renderer and both hosts.

use crate::error::{Result, VisualizerError};

/// The backends this crate is built with (Vulkan only, to keep the build lean).
pub const BACKENDS: wgpu::Backends = wgpu::Backends::VULKAN;

/// A wgpu instance, the chosen adapter, and its device and queue.
#[derive(Debug)]
pub struct Gpu {
    /// The instance the adapter came from (surfaces must be created from it).
    pub instance: wgpu::Instance,
    /// The chosen adapter.
    pub adapter: wgpu::Adapter,
    /// The logical device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
}

/// Builds the instance this crate uses (Vulkan; `WGPU_*` environment overrides honoured).
pub fn new_instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = BACKENDS;
    wgpu::Instance::new(desc)
}

/// Preference order of device types: hardware first, then virtual, then CPU (lavapipe/llvmpipe).
pub fn device_type_rank(device_type: wgpu::DeviceType) -> u8 {
    match device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

impl Gpu {
    /// A device for offscreen rendering: the best adapter on the machine, hardware preferred,
    /// software Vulkan (lavapipe) as the fallback.
    ///
    /// # Errors
    /// [`VisualizerError::NoAdapter`] when there is no adapter at all (the message says what to
    /// install), [`VisualizerError::RequestDevice`] when the adapter refuses a device.
    pub fn headless() -> Result<Self> {
        Self::from_instance(new_instance(), None)
    }

    /// Picks an adapter from `instance` (able to present to `surface` when given) and opens a device.
    ///
    /// # Errors
    /// As [`Gpu::headless`], plus [`VisualizerError::NoCompatibleAdapter`] when adapters exist
    /// but none can present to `surface`.
    pub fn from_instance(
        instance: wgpu::Instance,
        surface: Option<&wgpu::Surface<'_>>,
    ) -> Result<Self> {
        let adapters = pollster::block_on(instance.enumerate_adapters(BACKENDS));
        let tried = adapters.len();
        if tried == 0 {
            return Err(VisualizerError::NoAdapter { backends: BACKENDS });
        }
        let mut usable: Vec<wgpu::Adapter> = adapters
            .into_iter()
            .filter(|a| surface.is_none_or(|s| a.is_surface_supported(s)))
            .collect();
        usable.sort_by_key(|a| device_type_rank(a.get_info().device_type));
        let Some(adapter) = usable.into_iter().next() else {
            return Err(VisualizerError::NoCompatibleAdapter { tried });
        };
        let info = adapter.get_info();
        tracing::info!(
            adapter = %info.name,
            driver = %info.driver,
            device_type = ?info.device_type,
            "chose GPU adapter"
        );
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("wavecast-visualizer"),
            required_features: wgpu::Features::empty(),
            required_limits: wgpu::Limits::downlevel_defaults().using_resolution(adapter.limits()),
            ..Default::default()
        }))
        .map_err(|source| VisualizerError::RequestDevice {
            adapter: info.name.clone(),
            source,
        })?;
        Ok(Self {
            instance,
            adapter,
            device,
            queue,
        })
    }

    /// The adapter's description.
    pub fn info(&self) -> wgpu::AdapterInfo {
        self.adapter.get_info()
    }

    /// True when rendering happens on the CPU (lavapipe/llvmpipe).
    pub fn is_software(&self) -> bool {
        self.info().device_type == wgpu::DeviceType::Cpu
    }

    /// Blocks until all submitted work is done.
    ///
    /// # Errors
    /// [`VisualizerError::Poll`] when the device is lost.
    pub fn wait_idle(&self, what: &'static str) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|source| VisualizerError::Poll { what, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hardware_ranks_before_software() {
        let mut types = [
            wgpu::DeviceType::Cpu,
            wgpu::DeviceType::Other,
            wgpu::DeviceType::IntegratedGpu,
            wgpu::DeviceType::VirtualGpu,
            wgpu::DeviceType::DiscreteGpu,
        ];
        types.sort_by_key(|t| device_type_rank(*t));
        assert_eq!(types[0], wgpu::DeviceType::DiscreteGpu);
        assert_eq!(types[1], wgpu::DeviceType::IntegratedGpu);
        assert_eq!(types[4], wgpu::DeviceType::Cpu);
    }

    #[test]
    fn no_adapter_message_says_what_to_install() {
        let msg = VisualizerError::NoAdapter { backends: BACKENDS }.to_string();
        assert!(msg.contains("mesa-vulkan-drivers"), "{msg}");
    }
}

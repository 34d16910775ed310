//! With no Vulkan driver visible, setting up the GPU fails with a clear message instead of a
//! panic. (Its own test binary: it hides the drivers from the Vulkan loader for this process.)

use wavecast_visualizer::{Gpu, VisualizerError};

#[test]
fn no_vulkan_driver_is_a_clear_error() {
    // SAFETY: this binary has a single test and no other threads read the environment yet.
    unsafe {
        std::env::set_var("VK_DRIVER_FILES", "/nonexistent/wavecast-no-driver.json");
        std::env::set_var("VK_ICD_FILENAMES", "/nonexistent/wavecast-no-driver.json");
    }
    match Gpu::headless() {
        Err(e @ VisualizerError::NoAdapter { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("mesa-vulkan-drivers"), "{msg}");
        }
        Err(other) => panic!("expected NoAdapter, got {other}"),
        Ok(gpu) => panic!("expected no adapter, got {:?}", gpu.info()),
    }
}

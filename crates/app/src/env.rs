//! Process environment the apps settle before any thread starts.
//!
//! `error: XDG_RUNTIME_DIR is invalid or not set in the environment.` was printed twice at every
//! start where a Wayland display is named (`WAYLAND_DISPLAY`) but `XDG_RUNTIME_DIR` is not set —
//! a shell that kept a desktop's variables, `sudo`, a container. It is libwayland-client's
//! message: wgpu enables `VK_KHR_wayland_surface` on every Linux Vulkan instance, and Mesa's
//! implicit device-selection layer (`VK_LAYER_MESA_device_select`) then calls
//! `wl_display_connect` in each `vkEnumeratePhysicalDevices` (wgpu calls it twice) to find the
//! compositor's GPU. Reproduce: `WAYLAND_DISPLAY=wayland-0 viewer --source loopback --headless
//! --frames 10` without `XDG_RUNTIME_DIR`. When the display cannot be reached anyway (a relative
//! socket name needs `XDG_RUNTIME_DIR`), the probe can find nothing: the layer is switched off by
//! its documented switch (`NODEVICE_SELECT=1`). Where Wayland is reachable nothing changes.

/// Whether a Wayland connection is impossible: no `WAYLAND_SOCKET`, and `WAYLAND_DISPLAY` is a
/// relative name (or unset, meaning `wayland-0`) while `XDG_RUNTIME_DIR` is not an absolute path.
fn wayland_unreachable(
    socket: Option<&str>,
    display: Option<&str>,
    runtime_dir: Option<&str>,
) -> bool {
    let absolute = |s: Option<&str>| s.is_some_and(|s| s.starts_with('/'));
    socket.is_none() && !absolute(display) && !absolute(runtime_dir)
}

/// Disables Mesa's device-selection layer when it could only fail to reach Wayland and print
/// libwayland's error (see the module docs). Call first in `main`, before any thread exists; a
/// `NODEVICE_SELECT` the user set is kept.
pub fn quiet_wayland_probe() {
    let var = |k| std::env::var(k).ok();
    if std::env::var_os("NODEVICE_SELECT").is_none()
        && wayland_unreachable(
            var("WAYLAND_SOCKET").as_deref(),
            var("WAYLAND_DISPLAY").as_deref(),
            var("XDG_RUNTIME_DIR").as_deref(),
        )
    {
        // SAFETY: called at the top of `main` (through `init_logging`) before the app starts any
        // thread, so no other thread reads or writes the environment concurrently.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}

#[cfg(test)]
mod tests {
    use super::wayland_unreachable;

    #[test]
    fn wayland_is_unreachable_only_without_a_runtime_dir_or_absolute_socket() {
        assert!(wayland_unreachable(None, Some("wayland-0"), None));
        assert!(wayland_unreachable(None, None, Some("relative")));
        assert!(!wayland_unreachable(None, Some("wayland-0"), Some("/run/user/0")));
        assert!(!wayland_unreachable(None, Some("/tmp/wl.sock"), None));
        assert!(!wayland_unreachable(Some("3"), None, None));
    }
}

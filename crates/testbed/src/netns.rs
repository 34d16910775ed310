//! A private Linux network namespace for fault tests: UDP loss and blackholes from `nftables`
//! rules that touch nothing outside the namespace.
//!
//! [`NetNs::create`] makes `wavecast-<random>` (`ip netns add`), brings up its `lo` and a veth
//! pair that stays inside it, the first end carrying the documentation address [`NetNs::ADDR`]
//! (192.0.2.10/32: libwebrtc gathers no candidate on loopback alone). Everything a test starts
//! in the namespace talks over the namespace's own loopback or that address; no route leads
//! out of it.
//!
//! Processes run inside it in two ways:
//! - [`NetNs::enter_current_thread`] moves the calling thread into the namespace (`setns`).
//!   Threads and processes it starts afterwards inherit the namespace: build the tokio runtime,
//!   start [`crate::LiveKitServer`] and [`crate::PythonPeer`] from that thread and all of them
//!   live inside. Sockets keep the namespace they were created in.
//! - [`NetNs::command`] wraps a program in `ip netns exec NAME …`.
//!
//! Faults are `nft` rules in the namespace's own table ([`NetNs::set_udp_loss`],
//! [`NetNs::blackhole_udp`], [`NetNs::limit_rate`], [`NetNs::clear_faults`]); they apply on the
//! input hook, so each UDP datagram crosses them once whichever way it goes. TCP (the signal
//! WebSocket, the server's HTTP API) is never touched. A rate limit lives in a chain of its own,
//! so it combines with a loss fault.
//!
//! Dropping the [`NetNs`] kills what still runs inside it (by pid, from `ip netns pids`) and
//! deletes the namespace with its interfaces and rules.
//!
//! Creating a namespace needs root (`CAP_SYS_ADMIN`, `CAP_NET_ADMIN`) and `ip`/`nft` (Debian's
//! `iproute2` and `nftables`). [`NetNs::for_test`] turns their absence into a test failure with
//! the reason, or into a skip when [`SKIP_ENV`] is `1`.

use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::process::{Command, Stdio};

use std::io::Write as _;

/// Environment variable: `1` skips namespace tests where namespaces cannot be made (not root,
/// no `ip`/`nft`) instead of failing them.
pub const SKIP_ENV: &str = "WAVECAST_SKIP_NETNS";

/// The `nft` table the fault rules live in (inside the namespace only).
const TABLE: &str = "wavecast_faults";
/// The chain of [`TABLE`] holding the rate limit.
const RATE_CHAIN: &str = "rate";

/// Errors while making or using a namespace.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetNsError {
    /// Not running as root: namespaces and nftables rules need it.
    #[error("network namespaces need root (running as uid {uid}); set {SKIP_ENV}=1 to skip")]
    NotRoot {
        /// The effective user id.
        uid: u32,
    },
    /// A tool could not be started (not installed?).
    #[error(
        "cannot run `{tool}` (install Debian's iproute2 and nftables; set {SKIP_ENV}=1 to skip)"
    )]
    ToolMissing {
        /// The program.
        tool: String,
        /// Why it did not start.
        #[source]
        source: std::io::Error,
    },
    /// A command ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed on stderr.
        stderr: String,
    },
    /// Entering the namespace failed.
    #[error("entering network namespace {name}")]
    Enter {
        /// The namespace.
        name: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// A private network namespace, deleted on drop (see the module docs).
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// The documentation address on the namespace's veth (192.0.2.10/32).
    pub const ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

    /// Make a namespace `wavecast-<random>` with `lo` up and a veth pair inside it carrying
    /// [`NetNs::ADDR`].
    pub fn create() -> Result<Self, NetNsError> {
        let uid = effective_uid();
        if uid != 0 {
            return Err(NetNsError::NotRoot { uid });
        }
        let name = format!("wavecast-{:08x}", random_u32());
        run("ip", &["netns", "add", &name])?;
        // From here on, Drop cleans up whatever the rest leaves behind.
        let ns = Self { name };
        let n = ns.name.as_str();
        run("ip", &["-n", n, "link", "set", "lo", "up"])?;
        // `dummy` is not in every kernel; a veth pair whose both ends stay in the namespace
        // gives the same: an up, non-loopback interface with an address and no way out.
        run(
            "ip",
            &[
                "-n", n, "link", "add", "wc0", "type", "veth", "peer", "name", "wc1",
            ],
        )?;
        let cidr = format!("{}/32", Self::ADDR);
        run("ip", &["-n", n, "addr", "add", &cidr, "dev", "wc0"])?;
        run("ip", &["-n", n, "link", "set", "wc0", "up"])?;
        run("ip", &["-n", n, "link", "set", "wc1", "up"])?;
        // The fault table: one input chain for loss, one for a rate limit (after it), empty
        // until a fault is set.
        ns.nft(&format!(
            "add table inet {TABLE}\n\
             add chain inet {TABLE} input {{ type filter hook input priority 0; policy accept; }}\n\
             add chain inet {TABLE} {RATE_CHAIN} {{ type filter hook input priority 1; policy accept; }}\n"
        ))?;
        tracing::debug!(name = %ns.name, "network namespace created");
        Ok(ns)
    }

    /// [`NetNs::create`] for a test: `None` (with a note on stderr) when namespaces cannot be
    /// made and [`SKIP_ENV`] is `1`; otherwise a failure names the reason.
    ///
    /// # Panics
    /// When the namespace cannot be made and skipping was not asked for.
    pub fn for_test(test: &str) -> Option<Self> {
        match Self::create() {
            Ok(ns) => Some(ns),
            Err(e) if std::env::var(SKIP_ENV).is_ok_and(|v| v == "1") => {
                eprintln!("{test}: skipped ({SKIP_ENV}=1): {e}");
                None
            }
            Err(e) => panic!("{test}: cannot make a network namespace: {e}"),
        }
    }

    /// [`NetNs::for_test`], then move the calling thread (the test's) into the namespace, so
    /// the servers, apps and peers the test starts from here on run inside it.
    ///
    /// # Panics
    /// As [`NetNs::for_test`], and when the thread cannot enter the namespace.
    pub fn enter_for_test(test: &str) -> Option<Self> {
        let ns = Self::for_test(test)?;
        ns.enter_current_thread()
            .unwrap_or_else(|e| panic!("{test}: {e}"));
        Some(ns)
    }

    /// The namespace's name (`wavecast-…`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Move the calling thread into the namespace. Threads and processes it starts from now
    /// on are inside too; the thread cannot leave again (run it on a thread of its own, such
    /// as a test's).
    pub fn enter_current_thread(&self) -> Result<(), NetNsError> {
        let path = format!("/run/netns/{}", self.name);
        let enter = |source| NetNsError::Enter {
            name: self.name.clone(),
            source,
        };
        let file = std::fs::File::open(&path).map_err(enter)?;
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|errno| enter(std::io::Error::from(errno)))
    }

    /// `ip netns exec NAME program`: a command that runs `program` inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Drop `percent` % of the UDP datagrams entering any socket in the namespace, at random
    /// (replaces any earlier fault). `0` clears.
    pub fn set_udp_loss(&self, percent: u8) -> Result<(), NetNsError> {
        self.set_udp_loss_on(percent, UdpLeg::All)
    }

    /// Drop `percent` % of the UDP datagrams on one leg (see [`UdpLeg`]), at random (replaces
    /// any earlier fault). `0` clears.
    pub fn set_udp_loss_on(&self, percent: u8, leg: UdpLeg) -> Result<(), NetNsError> {
        let percent = percent.min(100);
        if percent == 0 {
            return self.clear_faults();
        }
        let m = leg.nft_match();
        self.nft(&format!(
            "flush chain inet {TABLE} input\n\
             add rule inet {TABLE} input {m} counter\n\
             add rule inet {TABLE} input {m} numgen random mod 100 < {percent} counter drop\n"
        ))
    }

    /// Drop every UDP datagram in the namespace (media dies, the TCP WebSocket stays up).
    /// Replaces any earlier fault.
    pub fn blackhole_udp(&self) -> Result<(), NetNsError> {
        self.nft(&format!(
            "flush chain inet {TABLE} input\n\
             add rule inet {TABLE} input meta l4proto udp counter\n\
             add rule inet {TABLE} input meta l4proto udp counter drop\n"
        ))
    }

    /// Limit the UDP datagrams on `leg` to `kbit_per_s` kilobits (1000 bits) per second, as a
    /// policer: `nft … limit rate over N bytes/second burst B bytes drop`, the bytes counted
    /// with their IP and UDP headers. The burst is 100 ms of the rate (at least 3000 bytes: two
    /// full-size datagrams); [`NetNs::limit_rate_with_burst`] sets it. Replaces an earlier rate
    /// limit, keeps a loss fault; [`NetNs::clear_faults`] removes it.
    ///
    /// nftables' byte limiter holds up to one second of the rate plus the burst
    /// (`tokens_max = rate + burst` for a per-second rate): a sender quiet for a while may send
    /// that much at once before the limit bites; a steady sender gets the rate.
    ///
    /// The leg carrying a publisher's uplink is [`UdpLeg::ToPort`] with the server's media port
    /// ([`crate::LiveKitServer::udp_port`]): everything clients send the server. Subscribers send
    /// it only their RTCP (a few kbit/s), which shares the limit; two publishers on that leg
    /// share it too.
    pub fn limit_rate(&self, kbit_per_s: u32, leg: UdpLeg) -> Result<(), NetNsError> {
        let bytes_per_s = u64::from(kbit_per_s) * 1000 / 8;
        self.limit_rate_with_burst(kbit_per_s, (bytes_per_s / 10).max(3000), leg)
    }

    /// [`NetNs::limit_rate`] with a burst of `burst_bytes` (the policer's bucket: how many bytes
    /// may pass at once after a quiet spell).
    pub fn limit_rate_with_burst(
        &self,
        kbit_per_s: u32,
        burst_bytes: u64,
        leg: UdpLeg,
    ) -> Result<(), NetNsError> {
        self.nft(&rate_rules(kbit_per_s, burst_bytes, leg))
    }

    /// UDP datagrams that reached the rate limit's rule, and those it dropped (both 0 without a
    /// rate limit; each new limit starts from 0).
    pub fn rate_counters(&self) -> Result<UdpCounters, NetNsError> {
        let out = self.output("nft", &["list", "chain", "inet", TABLE, RATE_CHAIN])?;
        let counts = parse_counter_packets(&out);
        Ok(UdpCounters {
            seen: counts.first().copied().unwrap_or(0),
            dropped: counts.get(1).copied().unwrap_or(0),
        })
    }

    /// Remove every fault rule (loss, blackhole and rate limit).
    pub fn clear_faults(&self) -> Result<(), NetNsError> {
        self.nft(&format!(
            "flush chain inet {TABLE} input\nflush chain inet {TABLE} {RATE_CHAIN}\n"
        ))
    }

    /// UDP datagrams that reached the current fault rule, and those it dropped (both 0 when no
    /// fault is set; each new fault starts from 0).
    pub fn udp_counters(&self) -> Result<UdpCounters, NetNsError> {
        let out = self.output("nft", &["list", "chain", "inet", TABLE, "input"])?;
        let counts = parse_counter_packets(&out);
        Ok(UdpCounters {
            seen: counts.first().copied().unwrap_or(0),
            dropped: counts.get(1).copied().unwrap_or(0),
        })
    }

    /// Run `nft -f -` inside the namespace with `script`.
    fn nft(&self, script: &str) -> Result<(), NetNsError> {
        let command = format!("ip netns exec {} nft -f -", self.name);
        let mut child = self
            .command("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| NetNsError::ToolMissing {
                tool: "ip netns exec … nft".into(),
                source,
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            // A failed write shows up as nft's error below.
            let _ = stdin.write_all(script.as_bytes());
        }
        let out = child
            .wait_with_output()
            .map_err(|source| NetNsError::ToolMissing {
                tool: "nft".into(),
                source,
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(NetNsError::Command {
                command,
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            })
        }
    }

    /// Run `program args…` inside the namespace and return its stdout.
    fn output(&self, program: &str, args: &[&str]) -> Result<String, NetNsError> {
        let mut all = vec!["netns", "exec", &self.name, program];
        all.extend_from_slice(args);
        output("ip", &all)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Whatever still runs inside was started by this test: end it by pid.
        if let Ok(pids) = output("ip", &["netns", "pids", &self.name]) {
            for pid in pids
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        match run("ip", &["netns", "del", &self.name]) {
            Ok(()) => tracing::debug!(name = %self.name, "network namespace deleted"),
            Err(e) => eprintln!("could not delete network namespace {}: {e}", self.name),
        }
    }
}

/// Which UDP datagrams a loss rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpLeg {
    /// Every datagram.
    All,
    /// Datagrams sent to this port (e.g. a server's media port: everything clients send it).
    ToPort(u16),
    /// Datagrams sent to any other port (e.g. everything a server sends its clients).
    NotToPort(u16),
}

impl UdpLeg {
    fn nft_match(self) -> String {
        match self {
            Self::All => "meta l4proto udp".into(),
            Self::ToPort(p) => format!("udp dport {p}"),
            Self::NotToPort(p) => format!("udp dport != {p}"),
        }
    }
}

/// The `nft` script of a rate limit (see [`NetNs::limit_rate`]): a counting rule, then the
/// policer.
fn rate_rules(kbit_per_s: u32, burst_bytes: u64, leg: UdpLeg) -> String {
    let m = leg.nft_match();
    let bytes_per_s = (u64::from(kbit_per_s) * 1000 / 8).max(1);
    let burst = burst_bytes.max(1);
    format!(
        "flush chain inet {TABLE} {RATE_CHAIN}\n\
         add rule inet {TABLE} {RATE_CHAIN} {m} counter\n\
         add rule inet {TABLE} {RATE_CHAIN} {m} limit rate over {bytes_per_s} bytes/second \
         burst {burst} bytes counter drop\n"
    )
}

/// What the fault rules counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpCounters {
    /// UDP datagrams that reached the fault rule.
    pub seen: u64,
    /// Those it dropped.
    pub dropped: u64,
}

impl UdpCounters {
    /// The share dropped, in per cent (0 when nothing was seen).
    pub fn loss_percent(&self) -> f64 {
        if self.seen == 0 {
            0.0
        } else {
            self.dropped as f64 * 100.0 / self.seen as f64
        }
    }
}

/// The packet counts of every `counter packets N bytes M` in `nft list` output, in order.
fn parse_counter_packets(listing: &str) -> Vec<u64> {
    listing
        .split("counter packets ")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next())
        .filter_map(|n| n.parse().ok())
        .collect()
}

fn run(program: &str, args: &[&str]) -> Result<(), NetNsError> {
    output(program, args).map(drop)
}

fn output(program: &str, args: &[&str]) -> Result<String, NetNsError> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| NetNsError::ToolMissing {
            tool: program.to_owned(),
            source,
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NetNsError::Command {
            command: format!("{program} {}", args.join(" ")),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

fn effective_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// A random 32-bit value from rand's thread-local generator.
fn random_u32() -> u32 {
    rand::random()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_is_read_from_the_listing() {
        let listing = "table inet wavecast_faults {\n\tchain input {\n\t\ttype filter hook input \
                       priority filter; policy accept;\n\t\tmeta l4proto udp counter packets 400 \
                       bytes 9000\n\t\tmeta l4proto udp counter packets 42 bytes 5000 drop\n\t}\n}\n";
        assert_eq!(parse_counter_packets(listing), vec![400, 42]);
        assert!(parse_counter_packets("table inet x {}").is_empty());
    }

    #[test]
    fn legs_match_ports() {
        assert_eq!(UdpLeg::All.nft_match(), "meta l4proto udp");
        assert_eq!(UdpLeg::ToPort(7882).nft_match(), "udp dport 7882");
        assert_eq!(UdpLeg::NotToPort(7882).nft_match(), "udp dport != 7882");
    }

    /// The namespace exists with its address, faults drop UDP inside it (and only UDP), and
    /// everything is gone after drop.
    #[test]
    fn namespace_drops_udp_on_demand_and_vanishes_on_drop() {
        let Some(ns) = NetNs::for_test("namespace_drops_udp_on_demand_and_vanishes_on_drop") else {
            return;
        };
        let name = ns.name().to_owned();
        let addrs = ns.output("ip", &["-4", "addr"]).expect("ip addr");
        assert!(addrs.contains("192.0.2.10/32"), "{addrs}");
        assert!(addrs.contains("127.0.0.1/8"), "{addrs}");

        // Sockets inside the namespace, made on a thread that entered it.
        let probe = |ns: &NetNs| {
            std::thread::scope(|s| {
                s.spawn(|| {
                    ns.enter_current_thread().expect("setns");
                    udp_delivered(Ipv4Addr::LOCALHOST, 50) + udp_delivered(NetNs::ADDR, 50)
                })
                .join()
                .expect("probe thread")
            })
        };
        assert_eq!(probe(&ns), 100, "no fault: everything arrives");
        ns.blackhole_udp().expect("blackhole");
        assert_eq!(probe(&ns), 0, "blackhole: nothing arrives");
        let c = ns.udp_counters().expect("counters");
        assert!(c.dropped >= 100 && c.seen == c.dropped, "{c:?}");
        ns.set_udp_loss(50).expect("loss");
        let half = probe(&ns);
        assert!((20..=80).contains(&half), "50 % loss delivered {half}/100");
        let c = ns.udp_counters().expect("counters");
        assert_eq!(c.seen - c.dropped, half as u64, "{c:?}");
        ns.clear_faults().expect("clear");
        assert_eq!(probe(&ns), 100, "cleared: everything arrives");

        // The host's namespace never saw the rules.
        let host = output("nft", &["list", "tables"]).unwrap_or_default();
        assert!(!host.contains(TABLE), "{host}");

        drop(ns);
        let left = output("ip", &["netns", "list"]).expect("ip netns list");
        assert!(!left.contains(&name), "{name} still exists: {left}");
    }

    #[test]
    fn rate_rules_police_bytes_on_the_leg() {
        let r = rate_rules(600, 7500, UdpLeg::ToPort(7882));
        assert!(
            r.starts_with("flush chain inet wavecast_faults rate\n"),
            "{r}"
        );
        assert!(
            r.contains(
                "udp dport 7882 limit rate over 75000 bytes/second burst 7500 bytes counter drop"
            ),
            "{r}"
        );
        assert!(r.contains("add rule inet wavecast_faults rate udp dport 7882 counter\n"));
    }

    /// A sender in the namespace blasts 2 Mbit/s at two receivers on the veth address for 4.5 s:
    /// over the last 3 s (the first 1.5 s empty the policer's one-second bucket) the one on the
    /// limited port gets about the limit (600 kbit/s, ±25 %), the other all of it; clearing the
    /// faults lifts the limit.
    #[test]
    fn rate_limit_caps_one_leg_near_its_rate() {
        let test = "rate_limit_caps_one_leg_near_its_rate";
        let Some(ns) = NetNs::for_test(test) else {
            return;
        };
        const LIMIT_KBIT: u32 = 600;
        std::thread::scope(|s| {
            s.spawn(|| {
                ns.enter_current_thread().expect("setns");
                let limited = std::net::UdpSocket::bind((NetNs::ADDR, 0)).expect("bind");
                let free = std::net::UdpSocket::bind((NetNs::ADDR, 0)).expect("bind");
                let port = limited.local_addr().expect("addr").port();
                ns.limit_rate(LIMIT_KBIT, UdpLeg::ToPort(port))
                    .expect("rate limit");
                let (got_limited, got_free) = blast(&limited, &free, 2_000, 1.5, 3.0);
                let c = ns.rate_counters().expect("counters");
                eprintln!(
                    "limited leg: {got_limited:.0} kbit/s, other leg: {got_free:.0} kbit/s, \
                     rule saw {} dropped {}",
                    c.seen, c.dropped
                );
                let lo = f64::from(LIMIT_KBIT) * 0.75;
                let hi = f64::from(LIMIT_KBIT) * 1.25;
                assert!(
                    (lo..=hi).contains(&got_limited),
                    "limited leg got {got_limited:.0} kbit/s, limit {LIMIT_KBIT}"
                );
                assert!(
                    got_free > 1_500.0,
                    "the other leg got {got_free:.0} kbit/s of 2000"
                );
                assert!(c.dropped > 0 && c.seen > c.dropped, "{c:?}");

                ns.clear_faults().expect("clear");
                assert_eq!(ns.rate_counters().expect("counters").seen, 0);
                let (after, _) = blast(&limited, &free, 2_000, 0.0, 1.0);
                assert!(after > 1_500.0, "cleared: {after:.0} kbit/s of 2000");
            })
            .join()
            .expect("sender thread")
        });
    }

    /// Send `kbit_per_s` (UDP payload plus IP and UDP headers, as the policer counts) to each of
    /// `a` and `b` for `warmup + seconds` from one socket, paced by the clock; returns what each
    /// received after the warm-up, in the same unit, over the rest of the sending time. (The
    /// warm-up drains the policer's bucket: see [`NetNs::limit_rate`].)
    fn blast(
        a: &std::net::UdpSocket,
        b: &std::net::UdpSocket,
        kbit_per_s: u32,
        warmup: f64,
        seconds: f64,
    ) -> (f64, f64) {
        use std::time::{Duration, Instant};
        const PAYLOAD: usize = 1000;
        const HEADERS: usize = 28;
        let per_s = f64::from(kbit_per_s) * 1000.0 / 8.0 / (PAYLOAD + HEADERS) as f64;
        let tx = std::net::UdpSocket::bind((NetNs::ADDR, 0)).expect("bind sender");
        let targets = [a.local_addr().expect("addr"), b.local_addr().expect("addr")];
        let start = Instant::now();
        let counted_from = start + Duration::from_secs_f64(warmup);
        let count = |rx: &std::net::UdpSocket| {
            let rx = rx.try_clone().expect("clone");
            rx.set_read_timeout(Some(Duration::from_millis(300)))
                .expect("timeout");
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                let mut bytes = 0usize;
                // Ends 300 ms after the last datagram.
                while let Ok((n, _)) = rx.recv_from(&mut buf) {
                    if Instant::now() >= counted_from {
                        bytes += n + HEADERS;
                    }
                }
                bytes
            })
        };
        let (ra, rb) = (count(a), count(b));
        let payload = [0x5a_u8; PAYLOAD];
        let total = (per_s * (warmup + seconds)).round() as u64;
        let mut sent = 0u64;
        while sent < total {
            // Catch up with the clock: the average rate holds even when a sleep runs long.
            let due = ((start.elapsed().as_secs_f64() * per_s) as u64 + 1).min(total);
            while sent < due {
                for target in targets {
                    tx.send_to(&payload, target).expect("send");
                }
                sent += 1;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let measured = counted_from.elapsed().as_secs_f64();
        let kbit = |bytes: usize| bytes as f64 * 8.0 / 1000.0 / measured;
        (
            kbit(ra.join().expect("receiver")),
            kbit(rb.join().expect("receiver")),
        )
    }

    /// Send `n` datagrams to a socket bound on `ip` and count those that arrive.
    fn udp_delivered(ip: Ipv4Addr, n: usize) -> usize {
        let rx = std::net::UdpSocket::bind((ip, 0)).expect("bind receiver");
        rx.set_read_timeout(Some(std::time::Duration::from_millis(200)))
            .expect("timeout");
        let tx = std::net::UdpSocket::bind((ip, 0)).expect("bind sender");
        let to = rx.local_addr().expect("addr");
        for i in 0..n {
            tx.send_to(&[i as u8], to).expect("send");
        }
        let mut got = 0;
        let mut buf = [0u8; 8];
        while rx.recv_from(&mut buf).is_ok() {
            got += 1;
        }
        got
    }
}

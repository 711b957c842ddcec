//! What the profiler does: on or off, its timer and its caps, kept in one
//! atomic word so that a new profile reads them with one load.

use std::sync::atomic::{AtomicU64, Ordering};

use super::timer::Timer;

/// The profiler's settings, for [`configure`](super::configure): made with
/// [`ProfileConfig::builder`] (or [`ProfileConfig::default`]), read back with
/// getters named after each setting.
///
/// ```
/// use dynostats::profile::{ProfileConfig, Timer};
///
/// let config = ProfileConfig::builder()
///     .timer(Timer::CpuTime)
///     .max_depth(16)
///     .build();
/// assert_eq!(config.timer(), Timer::CpuTime);
/// assert_eq!(config.max_depth(), 16);
/// assert_eq!(ProfileConfig::default().max_nodes(), 256);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProfileConfig {
    enabled: bool,
    timer: Timer,
    max_depth: u16,
    max_nodes: u32,
}

impl Default for ProfileConfig {
    /// Enabled, [`Timer::Instructions`], depth 64, 256 nodes: what
    /// `ProfileConfig::builder().build()` makes.
    fn default() -> ProfileConfig {
        ProfileConfig {
            enabled: true,
            timer: Timer::Instructions,
            max_depth: ProfileConfig::DEFAULT_MAX_DEPTH,
            max_nodes: ProfileConfig::DEFAULT_MAX_NODES,
        }
    }
}

/// Builds a [`ProfileConfig`], starting from the defaults; returned by
/// [`ProfileConfig::builder`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct ProfileConfigBuilder {
    config: ProfileConfig,
}

impl ProfileConfigBuilder {
    /// Whether scopes are profiled at all inside sampled regions (default
    /// true). Off, a sampled region installs nothing and scopes cost their
    /// one check.
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.config.enabled = enabled;
        self
    }

    /// The timer scopes are measured in (default [`Timer::Instructions`];
    /// CPU time where it cannot be read).
    pub fn timer(mut self, timer: Timer) -> Self {
        self.config.timer = timer;
        self
    }

    /// The deepest scope stack kept as paths (default
    /// [`ProfileConfig::DEFAULT_MAX_DEPTH`], at least 1): scopes entered
    /// deeper go to the overflow bucket.
    pub fn max_depth(mut self, depth: u16) -> Self {
        self.config.max_depth = depth.max(1);
        self
    }

    /// The most scope nodes in one profile, the root and the overflow
    /// bucket not counted (default [`ProfileConfig::DEFAULT_MAX_NODES`], at
    /// least 1): scopes that would need more go to the overflow bucket.
    pub fn max_nodes(mut self, nodes: u32) -> Self {
        self.config.max_nodes = nodes.max(1);
        self
    }

    /// The settings.
    pub fn build(self) -> ProfileConfig {
        self.config
    }
}

impl ProfileConfig {
    /// Default [`max_depth`](ProfileConfigBuilder::max_depth).
    pub const DEFAULT_MAX_DEPTH: u16 = 64;
    /// Default [`max_nodes`](ProfileConfigBuilder::max_nodes).
    pub const DEFAULT_MAX_NODES: u32 = 256;

    /// A builder starting from the defaults ([`ProfileConfig::default`]).
    pub fn builder() -> ProfileConfigBuilder {
        ProfileConfigBuilder {
            config: ProfileConfig::default(),
        }
    }

    /// Whether scopes are profiled ([`ProfileConfigBuilder::enabled`]).
    pub fn is_enabled(self) -> bool {
        self.enabled
    }

    /// The timer asked for ([`ProfileConfigBuilder::timer`]).
    pub fn timer(self) -> Timer {
        self.timer
    }

    /// The depth cap ([`ProfileConfigBuilder::max_depth`]).
    pub fn max_depth(self) -> u16 {
        self.max_depth
    }

    /// The node cap ([`ProfileConfigBuilder::max_nodes`]).
    pub fn max_nodes(self) -> u32 {
        self.max_nodes
    }

    const fn pack(self) -> u64 {
        (self.enabled as u64)
            | ((self.timer as u64) << 8)
            | ((self.max_depth as u64) << 16)
            | ((self.max_nodes as u64) << 32)
    }

    fn unpack(word: u64) -> ProfileConfig {
        ProfileConfig {
            enabled: word & 1 != 0,
            timer: Timer::from_index((word >> 8) as u8),
            max_depth: (word >> 16) as u16,
            max_nodes: (word >> 32) as u32,
        }
    }
}

static CONFIG: AtomicU64 = AtomicU64::new(
    ProfileConfig {
        enabled: true,
        timer: Timer::Instructions,
        max_depth: ProfileConfig::DEFAULT_MAX_DEPTH,
        max_nodes: ProfileConfig::DEFAULT_MAX_NODES,
    }
    .pack(),
);

/// Sets the profiler's settings; profiles made from now on use them.
pub(crate) fn set(config: ProfileConfig) {
    CONFIG.store(config.pack(), Ordering::Relaxed);
}

/// The settings in force.
pub(crate) fn get() -> ProfileConfig {
    ProfileConfig::unpack(CONFIG.load(Ordering::Relaxed))
}

/// Whether profiling is on: one load.
#[inline]
pub(crate) fn enabled() -> bool {
    CONFIG.load(Ordering::Relaxed) & 1 != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_and_unpacks() {
        let c = ProfileConfig::builder()
            .enabled(false)
            .timer(Timer::Rss)
            .max_depth(0)
            .max_nodes(u32::MAX)
            .build();
        assert_eq!(ProfileConfig::unpack(c.pack()), c);
        assert_eq!(c.max_depth(), 1);
        assert_eq!(
            ProfileConfig::unpack(ProfileConfig::default().pack()),
            ProfileConfig::default()
        );
        assert_eq!(ProfileConfig::builder().build(), ProfileConfig::default());
    }
}

//! The simulated clock (scale and origin) and the log format.

use kmslab_runtime::config::{ConfigError, Parsed};
use kmslab_runtime::logging::LogFormat;

use super::{HostConfig, Names};

pub use kmslab_runtime::config::{Origin, TimeScale};

section! {
    /// Time and logs.
    pub struct Runtime {
        /// Simulated time runs F times faster than real time [1].
        #[arg(long, env = "KMSLAB_TIME_SCALE", value_name = "F")]
        pub time_scale: Option<TimeScale>,
        /// Simulated time origin (RFC 3339) [process start].
        #[arg(long, env = "KMSLAB_TIME_ORIGIN", value_name = "T")]
        pub time_origin: Option<Parsed<Origin>>,
        /// Log format: text or json [text].
        #[arg(long, env = "KMSLAB_LOG_FORMAT", value_name = "FORMAT")]
        pub log_format: Option<Parsed<LogFormat>>,
    }
}

impl Runtime {
    pub(super) fn apply(self, _: &Names, config: &mut HostConfig) -> Result<(), ConfigError> {
        if let Some(scale) = self.time_scale {
            config.time_scale = scale.0;
        }
        config.time_origin = self.time_origin.map(|o| o.0.0);
        if let Some(format) = self.log_format {
            config.log_format = format.0;
        }
        Ok(())
    }
}

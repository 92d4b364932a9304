//! The simulated clock (scale and origin) and the log format.

use std::str::FromStr;

use kmslab_core::Timestamp;
use kmslab_runtime::SimClock;
use kmslab_runtime::config::{ConfigError, Parsed};
use kmslab_runtime::logging::LogFormat;
use serde::de::{Deserialize, Deserializer, Error as _};

use super::{HostConfig, Names};

/// `--time-scale F`: a number the simulated clock accepts (finite, > 0, <= 10000000); a
/// TOML integer or float in the file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeScale(pub f64);

const TIME_SCALE_RANGE: &str = "must be a finite number > 0 and <= 10000000";

impl TimeScale {
    fn check(f: f64) -> Result<Self, &'static str> {
        SimClock::new(f, None).map(|_| TimeScale(f)).map_err(|_| TIME_SCALE_RANGE)
    }
}

impl FromStr for TimeScale {
    type Err = &'static str;

    fn from_str(v: &str) -> Result<Self, Self::Err> {
        TimeScale::check(v.trim().parse().map_err(|_| "expected a number")?)
    }
}

impl clap::builder::ValueParserFactory for TimeScale {
    type Parser = fn(&str) -> Result<TimeScale, &'static str>;

    fn value_parser() -> Self::Parser {
        TimeScale::from_str
    }
}

impl<'de> Deserialize<'de> for TimeScale {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let f = f64::deserialize(deserializer)?;
        TimeScale::check(f).map_err(|e| D::Error::custom(format!("{f}: {e}")))
    }
}

/// `--time-origin T`: an RFC 3339 time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin(pub Timestamp);

impl FromStr for Origin {
    type Err = kmslab_core::time::ParseTimeError;

    fn from_str(v: &str) -> Result<Self, Self::Err> {
        Timestamp::parse_rfc3339(v).map(Origin)
    }
}

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

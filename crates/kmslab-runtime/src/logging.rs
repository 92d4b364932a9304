//! Logging set-up shared by every binary: human-readable by default, JSON on request.
//!
//! Text lines carry peer-supplied strings (machine names, error messages a peer caused):
//! every field value and message is written through [`EscapeControl`], so a newline or a
//! terminal escape sent by a client shows as `\n` or `\x1b` and can neither start a
//! forged log line nor drive the terminal. JSON lines are escaped by the JSON encoder.

use std::str::FromStr;

/// Log output format (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" | "human" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("invalid log format {other:?}: expected text or json")),
        }
    }
}

/// Installs the global subscriber writing to stderr (coloured only when stderr is a
/// terminal); `RUST_LOG` overrides `default_filter`.
/// Calling it twice is harmless (the second call does nothing).
pub fn init(format: LogFormat, default_filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // Colours only on a terminal: a log file or the journal gets plain text (and the
    // escapes cost as much to write as a field).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = match format {
        LogFormat::Text => builder.fmt_fields(escaping_fields()).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The text formatter's fields: `name=value` separated by spaces (the message bare), every
/// value escaped.
fn escaping_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static {
    use std::fmt::Write as _;
    use tracing_subscriber::field::MakeExt as _;
    tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
        let mut out = EscapeControl(writer);
        match field.name() {
            "message" => write!(out, "{value:?}"),
            name => write!(out, "{}={value:?}", name.strip_prefix("r#").unwrap_or(name)),
        }
    })
    .delimited(" ")
}

/// A `fmt::Write` adapter that writes control characters (C0, DEL, C1) as escapes:
/// `\n`, `\r`, `\t`, `\x1b`, `\u{85}` and so on. Everything else passes unchanged.
#[derive(Debug)]
pub struct EscapeControl<W>(pub W);

impl<W: std::fmt::Write> std::fmt::Write for EscapeControl<W> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let mut rest = s;
        while let Some(at) = find_control(rest) {
            self.0.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().expect("found a char there");
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                c if (c as u32) < 0x80 => write!(self.0, "\\x{:02x}", c as u32)?,
                c => write!(self.0, "\\u{{{:x}}}", c as u32)?,
            }
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

/// The byte offset of the first control character in `s` (`char::is_control`: C0, DEL,
/// C1), scanning bytes: in UTF-8 those are the bytes below 0x20, 0x7F, and the two-byte
/// sequences 0xC2 0x80..=0x9F. Every log line's text goes through here.
fn find_control(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            0x00..=0x1F | 0x7F => return Some(i),
            0xC2 if matches!(b.get(i + 1), Some(0x80..=0x9F)) => return Some(i),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;

    #[test]
    fn control_characters_are_escaped_and_the_rest_is_kept() {
        let check = |input: &str, expected: &str| {
            let mut out = String::new();
            EscapeControl(&mut out).write_str(input).unwrap();
            assert_eq!(out, expected, "{input:?}");
        };
        check("WS-0001", "WS-0001");
        check("a\nb\r\tc", "a\\nb\\r\\tc");
        check("\u{1b}[31mred\u{7}", "\\x1b[31mred\\x07");
        check("\u{7f}\u{85}\u{9b}", "\\x7f\\u{85}\\u{9b}");
        check("Ünïcødé ✓", "Ünïcødé ✓");
        check("\u{a0}\u{c2}\u{9f}\u{80}x", "\u{a0}\u{c2}\\u{9f}\\u{80}x");
    }

    #[test]
    fn the_byte_scan_finds_what_is_control_finds() {
        // Every char of the first two planes' interesting ranges, alone and between others.
        for c in (0u32..0x3000).filter_map(char::from_u32) {
            for s in [c.to_string(), format!("ab{c}é"), format!("\u{a0}{c}")] {
                assert_eq!(find_control(&s), s.find(|c: char| c.is_control()), "{s:?}");
            }
        }
    }
}

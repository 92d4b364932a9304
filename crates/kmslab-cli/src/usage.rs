//! Bad command lines, the same way in every binary: clap's error as one line on stderr,
//! keeping its tip ("a similar argument exists: '--clients'"), and exit status 2.

use std::process::ExitCode;

/// Prints `BIN: REASON` for a usage error and returns exit status 2; `--help` and
/// `--version` are printed by clap as usual (exit 0).
pub fn exit_on_clap_error(bin: &str, error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(error.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand) {
        let _ = error.print();
        return ExitCode::SUCCESS;
    }
    eprintln!("{bin}: {}", one_line(&error.to_string()));
    ExitCode::from(2)
}

/// clap's rendered error as one line: the reason, the names of missing arguments that clap
/// puts on the following lines, and each `tip:` in brackets; the usage block is dropped.
pub fn one_line(rendered: &str) -> String {
    let mut lines = rendered.lines().map(str::trim).take_while(|l| !l.starts_with("Usage:"));
    let mut out = lines.next().unwrap_or("bad usage").trim_start_matches("error: ").to_owned();
    let mut tips = Vec::new();
    for line in lines.filter(|l| !l.is_empty() && !l.starts_with("For more information")) {
        match line.strip_prefix("tip: ") {
            Some(tip) => tips.push(tip.to_owned()),
            None => {
                out.push(' ');
                out.push_str(line);
            }
        }
    }
    for tip in tips {
        out.push_str(&format!(" (tip: {tip})"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn keeps_the_tip_and_drops_the_usage() {
        let clap = "error: unexpected argument '--clinets' found\n\n  tip: a similar argument exists: '--clients'\n\nUsage: kmslab up --clients <CLIENTS>\n\nFor more information, try '--help'.\n";
        assert_eq!(one_line(clap), "unexpected argument '--clinets' found (tip: a similar argument exists: '--clients')");
    }

    #[test]
    fn drops_the_pointer_to_help() {
        let clap = "error: invalid value '5' for '--minutes <MIN>': 5 is not in 15..=43200\n\nFor more information, try '--help'.\n";
        assert_eq!(one_line(clap), "invalid value '5' for '--minutes <MIN>': 5 is not in 15..=43200");
    }

    #[test]
    fn joins_the_names_of_missing_arguments() {
        let clap = "error: the following required arguments were not provided:\n  --target <ADDR>\n\nUsage: kmslab bench --target <ADDR>\n";
        assert_eq!(one_line(clap), "the following required arguments were not provided: --target <ADDR>");
    }
}

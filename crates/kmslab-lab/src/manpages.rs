//! `kmslab completions SHELL` and `kmslab man`: shell completions and man pages for every
//! kmslab binary, generated from the same clap definitions the binaries parse with.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Command, CommandFactory};
use clap_complete::Shell;

/// Flags of `kmslab completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: Shell,
    /// Write one file per binary into this directory instead of printing them all.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// Flags of `kmslab man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Directory for the pages (`kms-host.1`, `kms-client.1`, `slmgr.1`, `kmslab.1`, ...).
    #[arg(long, value_name = "DIR", default_value = "man")]
    pub out_dir: PathBuf,
}

/// Every binary's command line, `kmslab` given by the caller (its `Cli` lives in main.rs).
fn commands(kmslab: Command) -> Vec<Command> {
    vec![kmslab_host::config::Cli::command(), kmslab_client::Args::command(), kmslab_slmgr::command(), kmslab]
}

/// Prints or writes completion scripts.
pub fn completions(args: CompletionsArgs, kmslab: Command) -> anyhow::Result<ExitCode> {
    for mut cmd in commands(kmslab) {
        let name = cmd.get_name().to_owned();
        match &args.out_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
                let path = clap_complete::generate_to(args.shell, &mut cmd, name, dir)?;
                eprintln!("wrote {}", path.display());
            }
            None => {
                let mut out = std::io::stdout().lock();
                clap_complete::generate(args.shell, &mut cmd, name, &mut out);
                out.flush()?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a man page per binary and per `kmslab` subcommand.
pub fn man(args: ManArgs, kmslab: Command) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.out_dir).with_context(|| format!("creating {}", args.out_dir.display()))?;
    for cmd in commands(kmslab) {
        let cmd = cmd.version(kmslab_runtime::VERSION);
        // generate_to writes the page of the command and one per subcommand (kmslab-sim.1, ...).
        clap_mangen::generate_to(cmd, &args.out_dir).with_context(|| format!("writing man pages to {}", args.out_dir.display()))?;
    }
    for entry in std::fs::read_dir(&args.out_dir)? {
        eprintln!("wrote {}", entry?.path().display());
    }
    Ok(ExitCode::SUCCESS)
}

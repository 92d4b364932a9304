//! slmgr's verb tables and its command-line description, shared by the `slmgr` binary and
//! by `kmslab completions` / `kmslab man` (which generate shell completions and man pages
//! from clap definitions).
#![forbid(unsafe_code)]

use clap::{Arg, ArgAction, Command};

/// Client verbs, without the leading `/`.
pub const CLIENT_VERBS: &[&str] =
    &["dli", "dlv", "xpr", "ato", "ipk", "upk", "skms", "ckms", "skms-domain", "ckms-domain", "skhc", "ckhc", "rearm"];
/// Host verbs, without the leading `/`.
pub const HOST_VERBS: &[&str] = &["dli", "dlv", "sai", "sri", "sprt", "sdns", "cdns", "spri", "cpri"];

/// The verb nearest to a mistyped one (`dlii` -> `dli`, `skmsdomain` -> `skms-domain`),
/// when one is close enough to be what was meant.
pub fn nearest_verb(typed: &str) -> Option<&'static str> {
    let typed = typed.trim_start_matches(['/', '-']).to_ascii_lowercase();
    CLIENT_VERBS
        .iter()
        .chain(HOST_VERBS)
        .chain(&["explain"])
        .map(|v| (strsim::damerau_levenshtein(&typed, v), *v))
        .filter(|(distance, verb)| *distance <= (verb.len() / 3).max(1))
        .min()
        .map(|(_, verb)| verb)
}

/// The machine slmgr.vbs takes before the verb: `slmgr HOST /dli` or
/// `slmgr HOST USER PASSWORD /dli`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// The admin address: `HOST:PORT`, or `HOST` with the client daemon's port 8689.
    pub target: String,
    /// slmgr.vbs's password, used as the admin token (the user name is not needed).
    pub token: Option<String>,
}

/// Splits slmgr.vbs's machine arguments off the front of `args` (everything before the
/// first word that starts with `/` or `-`): none, `HOST`, or `HOST USER PASSWORD`.
pub fn split_machine(args: &[String]) -> Result<(Option<Machine>, &[String]), String> {
    let n = args.iter().position(|a| a.starts_with(['/', '-'])).unwrap_or(args.len());
    let (machine, rest) = args.split_at(n);
    let with_port = |host: &str| if host.contains(':') { host.to_owned() } else { format!("{host}:8689") };
    match machine {
        [] => Ok((None, rest)),
        [host] => Ok((Some(Machine { target: with_port(host), token: None }), rest)),
        [host, _user, password] => Ok((Some(Machine { target: with_port(host), token: Some(password.clone()) }), rest)),
        _ => Err(format!(
            "{:?} before the verb: give the machine as HOST or HOST USER PASSWORD (as slmgr.vbs takes it), or use --target",
            machine.join(" ")
        )),
    }
}

/// The usage text slmgr prints.
pub const USAGE: &str = "usage: slmgr [--target ADDR] [--json] [--admin-token TOKEN] VERB [ARGS]
       slmgr HOST[:PORT] [USER PASSWORD] VERB [ARGS]   (slmgr.vbs's machine form; PASSWORD is the admin token)
client verbs: /dli /dlv /xpr /ato /ipk KEY /upk /skms HOST[:PORT] /ckms /skms-domain FQDN /ckms-domain /skhc /ckhc /rearm
host verbs:   /dli /dlv /sai MIN /sri MIN /sprt PORT /sdns /cdns /spri /cpri
anywhere:     /explain CODE   (e.g. slmgr /explain 0xC004F074)";

/// slmgr's command line as a clap `Command`, for completions and the man page. slmgr
/// itself parses its arguments by hand because verbs are written `/dli`, `-dli` or `--dli`.
pub fn command() -> Command {
    let mut verbs: Vec<&'static str> = CLIENT_VERBS.iter().chain(HOST_VERBS).chain(&["explain"]).copied().collect();
    verbs.sort_unstable();
    verbs.dedup();
    // clap wants 'static names; this description is built once per process.
    let verbs: Vec<&'static str> = verbs.into_iter().map(|v| &*Box::leak(format!("/{v}").into_boxed_str())).collect();
    Command::new("slmgr")
        .version(kmslab_runtime::VERSION)
        .about("Manage kmslab KMS hosts and clients with the verbs of Windows' slmgr.vbs")
        .long_about(
            "slmgr talks to a kmslab daemon's admin API: the local client daemon by default \
             (127.0.0.1:8689), or any host or client given with --target. It asks the daemon \
             whether it is a host or a client and runs the verb accordingly. Verbs may be \
             written /dli, -dli or --dli. `slmgr /explain CODE` needs no daemon.",
        )
        .after_help(USAGE)
        .arg(
            Arg::new("target")
                .long("target")
                .value_name("ADDR")
                .help("Admin address of the daemon [127.0.0.1:8689]; env KMSLAB_SLMGR_TARGET"),
        )
        .arg(Arg::new("json").long("json").action(ArgAction::SetTrue).help("Print JSON instead of slmgr's text"))
        .arg(
            Arg::new("admin-token")
                .long("admin-token")
                .value_name("TOKEN")
                .help("Bearer token for changes on a non-loopback admin address; env KMSLAB_ADMIN_TOKEN"),
        )
        .arg(
            Arg::new("verb")
                .value_name("VERB")
                .required(true)
                .value_parser(clap::builder::PossibleValuesParser::new(verbs))
                .help("The slmgr verb"),
        )
        .arg(Arg::new("args").value_name("ARGS").num_args(0..).help("The verb's arguments (a key, a host, minutes, a code)"))
}

#[cfg(test)]
mod tests {
    use super::nearest_verb;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn the_machine_form_of_slmgr_vbs() {
        use super::{Machine, split_machine};
        let args = words("/dli");
        assert_eq!(split_machine(&args).unwrap(), (None, &args[..]));
        let args = words("kms1 /dli");
        assert_eq!(split_machine(&args).unwrap(), (Some(Machine { target: "kms1:8689".into(), token: None }), &args[1..]));
        let args = words("10.0.0.5:8688 admin s3cret /sai 60");
        let machine = Machine { target: "10.0.0.5:8688".into(), token: Some("s3cret".into()) };
        assert_eq!(split_machine(&args).unwrap(), (Some(machine), &args[3..]));
        assert!(split_machine(&words("kms1 admin /dli")).unwrap_err().contains("HOST USER PASSWORD"));
    }

    #[test]
    fn mistyped_verbs_get_the_nearest_one() {
        for (typed, meant) in
            [("/dlii", "dli"), ("-dvl", "dlv"), ("/skmsdomain", "skms-domain"), ("/REARM", "rearm"), ("/explian", "explain")]
        {
            assert_eq!(nearest_verb(typed), Some(meant), "{typed}");
        }
        for far in ["/hello", "/x", "/activate"] {
            assert_eq!(nearest_verb(far), None, "{far}");
        }
    }
}

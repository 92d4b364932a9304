//! slmgr's command line, one description for everything: the verb tables, the clap
//! [`command`] that `slmgr` parses its arguments with and that `kmslab completions` /
//! `kmslab man` generate shell completions and man pages from, and [`parse`], which first
//! rewrites a verb written `/dli`, `-dli` or `--dli` to the one form clap knows (`dli`).
#![forbid(unsafe_code)]

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};

/// Client verbs, without the leading `/`.
pub const CLIENT_VERBS: &[&str] =
    &["dli", "dlv", "xpr", "ato", "ipk", "upk", "skms", "ckms", "skms-domain", "ckms-domain", "skhc", "ckhc", "rearm", "dti", "atp"];
/// Host verbs, without the leading `/`.
pub const HOST_VERBS: &[&str] = &["dli", "dlv", "ipk", "ato", "sai", "sri", "sprt", "sdns", "cdns", "spri", "cpri"];

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

/// The usage text slmgr prints after a usage error (and at the end of `--help`).
pub const USAGE: &str = "usage: slmgr [--target ADDR] [--machine NAME] [--json] [--admin-token TOKEN | --admin-token-file FILE] VERB [ARGS]
       slmgr HOST[:PORT] [USER PASSWORD] VERB [ARGS]   (slmgr.vbs's machine form; PASSWORD is the admin token)
client verbs: /dli [all] /dlv [all] /xpr /ato /ipk KEY /upk /skms HOST[:PORT] /ckms /skms-domain FQDN /ckms-domain /skhc /ckhc /rearm /dti /atp CID
host verbs:   /dli [all] /dlv [all] /sai MIN /sri MIN /sprt PORT /sdns /cdns /spri /cpri
anywhere:     /explain CODE   (e.g. slmgr /explain 0xC004F074)";

/// The admin address slmgr talks to when neither `--target`, `KMSLAB_SLMGR_TARGET` nor a
/// machine is given: the local client daemon.
pub const DEFAULT_TARGET: &str = "127.0.0.1:8689";

/// What a verb takes after its name.
#[derive(Debug, Clone, Copy)]
enum Takes {
    /// Nothing.
    Nothing,
    /// slmgr.vbs's optional `all` (`/dli all`, `/dlv all`).
    All,
    /// One required value: its name in the usage and its help.
    One(&'static str, &'static str),
    /// `/explain`'s code, optional so that its absence gets slmgr's own message.
    Code,
}

/// Every verb: name (without the `/`), what it does, what it takes.
const VERB_SPECS: &[(&str, &str, Takes)] = &[
    ("dli", "/dli [all]: display license information (host or client)", Takes::All),
    ("dlv", "/dlv [all]: display detailed license information (host or client)", Takes::All),
    ("xpr", "/xpr: show when the activation expires (client)", Takes::Nothing),
    ("ato", "/ato: activate now (client); on a host: validate its host key with the activation service", Takes::Nothing),
    (
        "ipk",
        "/ipk KEY: install a product key (client; on a host: a new KMS host key)",
        Takes::One("KEY", "The product key, XXXXX-XXXXX-XXXXX-XXXXX-XXXXX"),
    ),
    ("upk", "/upk: uninstall the product key (client)", Takes::Nothing),
    ("skms", "/skms HOST[:PORT]: use this KMS host (client)", Takes::One("HOST[:PORT]", "The KMS host, port 1688 when none is given")),
    ("ckms", "/ckms: clear the KMS host, back to DNS discovery (client)", Takes::Nothing),
    ("skms-domain", "/skms-domain FQDN: look for KMS SRV records in this domain (client)", Takes::One("FQDN", "The DNS domain")),
    ("ckms-domain", "/ckms-domain: clear the lookup domain, back to the search list (client)", Takes::Nothing),
    ("skhc", "/skhc: enable KMS host caching (client)", Takes::Nothing),
    ("ckhc", "/ckhc: disable KMS host caching (client)", Takes::Nothing),
    ("rearm", "/rearm: reset the grace period (client)", Takes::Nothing),
    ("dti", "/dti: display the installation ID for phone activation (client)", Takes::Nothing),
    ("atp", "/atp CID: activate with a confirmation ID (client)", Takes::One("CID", "The confirmation ID")),
    ("sai", "/sai MIN: set the activation interval its clients use (host)", Takes::One("MIN", "Minutes, 15..43200")),
    ("sri", "/sri MIN: set the renewal interval its clients use (host)", Takes::One("MIN", "Minutes, 15..43200")),
    ("sprt", "/sprt PORT: set the KMS port, used from the next start (host)", Takes::One("PORT", "TCP port, 1..65535")),
    ("sdns", "/sdns: enable DNS publishing (host)", Takes::Nothing),
    ("cdns", "/cdns: disable DNS publishing (host)", Takes::Nothing),
    ("spri", "/spri: normal priority (host)", Takes::Nothing),
    ("cpri", "/cpri: low priority (host)", Takes::Nothing),
    ("explain", "/explain CODE: what an error code means and the usual fix (no daemon needed)", Takes::Code),
];

/// Options that take their value in the next word.
const VALUE_OPTIONS: &[&str] = &["--target", "--admin-token", "--admin-token-file", "--machine"];

/// The one form clap parses: the verb a word names when written `/dli`, `-dli` or `--dli`
/// (any case), `/?` and `-?` as `--help`, everything else as it is. A word before the verb
/// that starts with `/` or `-` but is neither a verb nor an option is a mistyped verb: the
/// error names the nearest one (`unknown verb "/dlii" (did you mean /dli?)`). Mistyped
/// `--options` are left to clap, which names the nearest option.
pub fn normalise(args: impl IntoIterator<Item = String>) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut verb_seen = false;
    let mut words = args.into_iter();
    while let Some(word) = words.next() {
        if VALUE_OPTIONS.contains(&word.as_str()) {
            out.push(word);
            out.extend(words.next());
            continue;
        }
        if word == "/?" || word == "-?" {
            out.push("--help".into());
            continue;
        }
        let is_option =
            word.starts_with("--") && word.contains('=') || ["-h", "--help", "-V", "--version", "--json"].contains(&word.as_str());
        if is_option || verb_seen || !word.starts_with(['/', '-']) {
            out.push(word);
            continue;
        }
        let name = word.trim_start_matches(['/', '-']).to_ascii_lowercase();
        if VERB_SPECS.iter().any(|(verb, _, _)| *verb == name) {
            out.push(name);
            verb_seen = true;
            continue;
        }
        match nearest_verb(&word) {
            Some(meant) => return Err(format!("unknown verb {word:?} (did you mean /{meant}?)")),
            None if word.starts_with("--") => out.push(word),
            None => return Err(format!("unknown verb {word:?}")),
        }
    }
    Ok(out)
}

fn verb_command(name: &'static str, about: &'static str, takes: Takes) -> Command {
    let cmd = Command::new(name).about(about);
    match takes {
        Takes::Nothing => cmd,
        Takes::All => cmd.arg(
            Arg::new("value")
                .value_name("all")
                .value_parser(["all"])
                .help("Every installed product, not only the Windows edition (as slmgr.vbs's `all`)"),
        ),
        Takes::One(value_name, help) => cmd.arg(Arg::new("value").value_name(value_name).required(true).help(help)),
        Takes::Code => cmd.arg(Arg::new("value").value_name("CODE").help("An HRESULT such as 0xC004F074, or `all` for the table")),
    }
}

/// slmgr's command line as a clap `Command`: what `slmgr` parses (after [`normalise`]) and
/// what its completions and man pages are generated from.
pub fn command() -> Command {
    let cmd = Command::new("slmgr")
        .version(kmslab_cli::VERSION)
        .about("Manage kmslab KMS hosts and clients with the verbs of Windows' slmgr.vbs")
        .long_about(
            "slmgr talks to a kmslab daemon's admin API: the local client daemon by default \
             (127.0.0.1:8689), or any host or client given with --target. It asks the daemon \
             whether it is a host or a client and runs the verb accordingly. Verbs may be \
             written /dli, -dli or --dli. `slmgr /explain CODE` needs no daemon. With \
             --machine NAME, --target is a lab's control plane and the verb runs on that \
             lab machine.",
        )
        .after_help(USAGE)
        .disable_help_subcommand(true)
        // `slmgr kms1 /dli`: the verb ends the machine words.
        .subcommand_precedence_over_arg(true)
        .subcommand_value_name("VERB")
        .subcommand_help_heading("Verbs")
        .arg(Arg::new("machine").value_name("MACHINE").num_args(1..=3).help(
            "slmgr.vbs's machine form, before the verb: HOST[:PORT] (port 8689 when none is given) \
             or HOST USER PASSWORD (PASSWORD is the admin token, USER is ignored)",
        ))
        .arg(
            Arg::new("target")
                .long("target")
                .value_name("ADDR")
                .global(true)
                .help("Admin address of the daemon [127.0.0.1:8689]; env KMSLAB_SLMGR_TARGET"),
        )
        .arg(
            Arg::new("lab-machine")
                .long("machine")
                .value_name("NAME")
                .global(true)
                .help("Run the verb on this machine of the lab whose control plane is --target (client verbs)"),
        )
        .arg(Arg::new("json").long("json").action(ArgAction::SetTrue).global(true).help("Print JSON instead of slmgr's text"))
        .arg(
            Arg::new("admin-token")
                .long("admin-token")
                .value_name("TOKEN")
                .global(true)
                .help("Bearer token for a daemon reached from outside its --admin-local-network; env KMSLAB_ADMIN_TOKEN"),
        )
        .arg(
            Arg::new("admin-token-file")
                .long("admin-token-file")
                .value_name("FILE")
                .global(true)
                .help("File holding the bearer token on one line (keeps it out of `ps`); env KMSLAB_ADMIN_TOKEN_FILE"),
        );
    VERB_SPECS.iter().fold(cmd, |cmd, &(name, about, takes)| cmd.subcommand(verb_command(name, about, takes)))
}

/// What one slmgr run was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// `HOST:PORT` of the admin API (or of the lab's control plane with `machine`).
    pub target: String,
    /// `--json`.
    pub json: bool,
    /// The bearer token, if any.
    pub token: Option<String>,
    /// `--machine NAME`: the lab machine the verb runs on.
    pub machine: Option<String>,
    /// The verb, without the `/`.
    pub verb: String,
    /// Its arguments.
    pub args: Vec<String>,
}

/// Why [`parse`] gave no [`Invocation`].
#[derive(Debug)]
pub enum ParseError {
    /// `--help` or `--version`: clap's text, to print on stdout (exit 0).
    Display(clap::Error),
    /// A bad command line: the reason on one line (exit 2).
    Usage(String),
}

/// Parses slmgr's arguments (without the program name); `env` reads an environment
/// variable (`KMSLAB_SLMGR_TARGET`, `KMSLAB_ADMIN_TOKEN`, `KMSLAB_ADMIN_TOKEN_FILE`).
pub fn parse(args: impl IntoIterator<Item = String>, env: impl Fn(&str) -> Option<String>) -> Result<Invocation, ParseError> {
    let words = normalise(args).map_err(ParseError::Usage)?;
    let matches = command().try_get_matches_from(std::iter::once("slmgr".to_owned()).chain(words)).map_err(clap_error)?;
    let Some((verb, sub)) = matches.subcommand() else {
        return Err(ParseError::Usage("no verb given".into()));
    };
    let machine_words: Vec<String> = matches.get_many::<String>("machine").into_iter().flatten().cloned().collect();
    let (machine, _) = split_machine(&machine_words).map_err(ParseError::Usage)?;
    let lab_machine = given(sub, "lab-machine");
    if let Some(name) = &lab_machine
        && (name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(ParseError::Usage(format!("--machine {name:?}: a lab machine name is letters, digits, '-', '_' and '.'")));
    }
    let target = match &machine {
        Some(m) => m.target.clone(),
        None => match given(sub, "target").or_else(|| env("KMSLAB_SLMGR_TARGET")) {
            Some(t) => t,
            // `--machine` without a target: the running lab's control plane, from the lab
            // address file `kmslab up` writes.
            None if lab_machine.is_some() => {
                let file = kmslab_cli::labaddr::path_from(env("XDG_RUNTIME_DIR"), env("USER"));
                kmslab_cli::labaddr::read_at(&file).map_err(ParseError::Usage)?.to_string()
            }
            None => DEFAULT_TARGET.to_owned(),
        },
    };
    let token = match (given(sub, "admin-token"), given(sub, "admin-token-file")) {
        (Some(token), _) => Some(token),
        (None, Some(file)) => Some(read_token_file(&file).map_err(ParseError::Usage)?),
        (None, None) => match (env("KMSLAB_ADMIN_TOKEN"), env("KMSLAB_ADMIN_TOKEN_FILE")) {
            (Some(token), _) => Some(token),
            (None, Some(file)) => Some(read_token_file(&file).map_err(|e| ParseError::Usage(format!("KMSLAB_ADMIN_TOKEN_FILE: {e}")))?),
            (None, None) => None,
        },
    };
    Ok(Invocation {
        target,
        json: sub.get_flag("json"),
        token: machine.and_then(|m| m.token).or(token),
        machine: lab_machine,
        verb: verb.to_owned(),
        args: sub.try_get_many::<String>("value").ok().flatten().into_iter().flatten().cloned().collect(),
    })
}

/// A global option's value, given before or after the verb.
fn given(sub: &ArgMatches, id: &str) -> Option<String> {
    sub.get_one::<String>(id).filter(|_| sub.value_source(id) == Some(ValueSource::CommandLine)).cloned()
}

fn clap_error(error: clap::Error) -> ParseError {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            ParseError::Display(error)
        }
        // `--target` at the end: "--target needs ADDR" rather than clap's longer sentence.
        ErrorKind::InvalidValue if matches!(error.get(ContextKind::InvalidValue), Some(ContextValue::String(v)) if v.is_empty()) => {
            match error.get(ContextKind::InvalidArg) {
                Some(ContextValue::String(arg)) => {
                    let (flag, value) = arg.split_once(' ').unwrap_or((arg, "a value"));
                    ParseError::Usage(format!("{flag} needs {value}"))
                }
                _ => ParseError::Usage(kmslab_cli::usage::one_line(&error.to_string())),
            }
        }
        _ => ParseError::Usage(kmslab_cli::usage::one_line(&error.to_string())),
    }
}

/// The token of an `--admin-token-file`: its one line (the daemons read the same format).
pub fn read_token_file(path: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let line = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
    if line.is_empty() || line.contains(['\n', ' ', '\t']) {
        return Err(format!("{path} must hold the token alone, on one line"));
    }
    Ok(line.to_owned())
}

#[cfg(test)]
mod tests {
    use super::{Invocation, ParseError, nearest_verb, parse};

    fn parsed(line: &str) -> Result<Invocation, String> {
        parse(words(line), |_| None).map_err(|e| match e {
            ParseError::Usage(reason) => reason,
            ParseError::Display(text) => format!("display: {text}"),
        })
    }

    fn verb_and_args(line: &str) -> (String, Vec<String>) {
        let inv = parsed(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        (inv.verb, inv.args)
    }

    #[test]
    fn verbs_in_every_spelling_parse_alike() {
        for line in ["/dli", "-dli", "--dli", "/DLI", "--json /dli", "/dli --json"] {
            assert_eq!(verb_and_args(line), ("dli".to_owned(), vec![]), "{line}");
        }
        assert_eq!(verb_and_args("/dli all"), ("dli".to_owned(), vec!["all".to_owned()]));
        assert_eq!(verb_and_args("-dlv all"), ("dlv".to_owned(), vec!["all".to_owned()]));
        assert_eq!(verb_and_args("/ipk AAAAA-BBBBB-CCCCC-DDDDD-EEEEE").1, vec!["AAAAA-BBBBB-CCCCC-DDDDD-EEEEE".to_owned()]);
        assert_eq!(verb_and_args("/atp 123456-123456"), ("atp".to_owned(), vec!["123456-123456".to_owned()]));
        assert_eq!(verb_and_args("/dti"), ("dti".to_owned(), vec![]));
        assert_eq!(verb_and_args("/explain"), ("explain".to_owned(), vec![]));
        assert!(parsed("/dli --json").unwrap().json);
    }

    #[test]
    fn options_before_or_after_the_verb_and_with_equals() {
        let inv = parsed("--target=10.0.0.5:8688 /sai 60").unwrap();
        assert_eq!((inv.target.as_str(), inv.verb.as_str(), inv.args.as_slice()), ("10.0.0.5:8688", "sai", &["60".to_owned()][..]));
        assert_eq!(parsed("/dli --target 10.0.0.5:8688").unwrap().target, "10.0.0.5:8688");
        assert_eq!(parsed("/dli").unwrap().target, "127.0.0.1:8689");
        let from_env = parse(words("/dli"), |k| (k == "KMSLAB_SLMGR_TARGET").then(|| "kms9:1".to_owned())).unwrap();
        assert_eq!(from_env.target, "kms9:1");
        assert_eq!(parsed("--admin-token t0k /ckhc").unwrap().token.as_deref(), Some("t0k"));
        let env_token = parse(words("/ckhc"), |k| (k == "KMSLAB_ADMIN_TOKEN").then(|| "e".to_owned())).unwrap();
        assert_eq!(env_token.token.as_deref(), Some("e"));
        let inv = parsed("--target 127.0.0.1:9000 --machine FLEET-3 /ato").unwrap();
        assert_eq!((inv.machine.as_deref(), inv.verb.as_str()), (Some("FLEET-3"), "ato"));
        assert!(parsed("--machine a/b /dli").unwrap_err().contains("--machine"));
    }

    #[test]
    fn the_machine_form_goes_through_clap() {
        let inv = parsed("kms1 /dli").unwrap();
        assert_eq!((inv.target.as_str(), inv.token), ("kms1:8689", None));
        let inv = parsed("10.0.0.5:8688 admin s3cret /sai 60").unwrap();
        assert_eq!((inv.target.as_str(), inv.token.as_deref(), inv.verb.as_str()), ("10.0.0.5:8688", Some("s3cret"), "sai"));
        assert!(parsed("kms1 admin /dli").unwrap_err().contains("HOST USER PASSWORD"));
    }

    #[test]
    fn bad_command_lines_name_what_is_wrong() {
        assert_eq!(parsed("/dlii").unwrap_err(), "unknown verb \"/dlii\" (did you mean /dli?)");
        assert_eq!(parsed("/bogus").unwrap_err(), "unknown verb \"/bogus\"");
        assert_eq!(parsed("").unwrap_err(), "no verb given");
        assert_eq!(parsed("kms1").unwrap_err(), "no verb given");
        assert!(parsed("--target").unwrap_err().starts_with("--target needs"), "{:?}", parsed("--target"));
        assert!(parsed("/ipk").unwrap_err().contains("<KEY>"));
        assert!(parsed("/atp").unwrap_err().contains("<CID>"));
        assert!(parsed("/dli extra").unwrap_err().contains("extra"));
        assert!(parsed("--targt x /dli").unwrap_err().contains("--target"), "{:?}", parsed("--targt x /dli"));
        for help in ["/?", "-?", "--help", "-h", "--version"] {
            assert!(parsed(help).unwrap_err().starts_with("display: "), "{help}");
        }
    }

    #[test]
    fn the_help_lists_every_verb_with_its_slash() {
        let help = super::command().render_long_help().to_string();
        for (verb, _, _) in super::VERB_SPECS {
            assert!(help.contains(&format!("/{verb}")), "--help lacks /{verb}");
        }
    }

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

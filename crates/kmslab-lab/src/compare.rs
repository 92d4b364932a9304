//! `kmslab compare SIM.csv REAL.csv`: reads two per-day timelines in the CSV format
//! `kmslab sim --timeline` writes and says, day by day, where the machines per license
//! state or the hosts' counts disagree by more than the tolerance. Exit 0 when they agree,
//! 1 when they do not, 2 on bad input (the file, line and column named).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

/// The license-state columns, compared on every day.
const STATES: [&str; 5] = ["licensed", "initial_grace", "additional_grace", "notification", "unlicensed"];

/// Flags of `kmslab compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The simulated timeline (`kmslab sim --timeline FILE.csv`).
    #[arg(value_name = "SIM.csv")]
    pub sim: PathBuf,
    /// The timeline to check against it, same columns.
    #[arg(value_name = "REAL.csv")]
    pub real: PathBuf,
    /// Largest difference allowed in a column on one day: `N` machines, `P%` of that day's
    /// clients (the larger of the two files' state totals), or `N,P%`, the larger of both.
    #[arg(long, value_name = "N|P%|N,P%", default_value = "2,5%", value_parser = parse_tolerance)]
    pub tolerance: Tolerance,
    /// Days a change may come early or late: a value of REAL.csv agrees when it lies within
    /// the tolerance of the range SIM.csv's values span from this many days before to this
    /// many days after (a real lab's renewals drift by the real time of its exchanges).
    #[arg(long, value_name = "DAYS", default_value_t = 0)]
    pub shift: u32,
}

/// How far two counts may be apart on one day.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Machines.
    pub absolute: u64,
    /// Percent of the day's clients.
    pub percent: f64,
}

impl Tolerance {
    /// The allowed difference on a day with `clients` machines.
    fn allowed(&self, clients: u64) -> u64 {
        self.absolute.max((clients as f64 * self.percent / 100.0).floor() as u64)
    }
}

fn parse_tolerance(s: &str) -> Result<Tolerance, String> {
    let mut t = Tolerance { absolute: 0, percent: 0.0 };
    let mut any = false;
    for part in s.split(',').map(str::trim) {
        if let Some(p) = part.strip_suffix('%') {
            t.percent = p
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|p| p.is_finite() && *p >= 0.0)
                .ok_or_else(|| format!("{part:?} is not a percentage >= 0"))?;
        } else {
            t.absolute =
                part.parse::<u64>().map_err(|_| format!("{part:?} is neither a whole number of machines nor a percentage like 5%"))?;
        }
        any = true;
    }
    if !any {
        return Err("empty tolerance".into());
    }
    Ok(t)
}

/// One timeline: the compared columns' names, then each day's values in that order.
struct Timeline {
    columns: Vec<String>,
    days: BTreeMap<i64, Vec<u64>>,
}

/// Whether a column is read: the compared ones (states and hosts' counts) and the hosts'
/// up flags (a host's count is compared only on days it is up in both files).
fn compared(name: &str) -> bool {
    STATES.contains(&name) || name.contains("_count_") || name.ends_with("_up")
}

fn read(path: &Path) -> Result<Timeline, String> {
    let file = path.display();
    let mut reader = csv::ReaderBuilder::new().from_path(path).map_err(|e| format!("{file}: {e}"))?;
    let headers = reader.headers().map_err(|e| format!("{file}: line 1: {e}"))?.clone();
    let day_col = headers.iter().position(|h| h == "day").ok_or_else(|| format!("{file}: line 1: no \"day\" column"))?;
    for state in STATES {
        if !headers.iter().any(|h| h == state) {
            return Err(format!("{file}: line 1: no {state:?} column"));
        }
    }
    let picked: Vec<(usize, String)> = headers.iter().enumerate().filter(|(_, h)| compared(h)).map(|(i, h)| (i, h.to_owned())).collect();
    let mut days = BTreeMap::new();
    for record in reader.records() {
        let record = record.map_err(|e| match e.kind() {
            csv::ErrorKind::UnequalLengths { pos: Some(pos), expected_len, len } => {
                format!("{file}: line {}: {len} columns where the header line has {expected_len}", pos.line())
            }
            _ => match e.position() {
                Some(pos) => format!("{file}: line {}: {e}", pos.line()),
                None => format!("{file}: {e}"),
            },
        })?;
        let line = record.position().map_or(0, csv::Position::line);
        let field = |i: usize| -> Result<u64, String> {
            let text = record.get(i).unwrap_or("");
            text.trim()
                .parse::<u64>()
                .map_err(|_| format!("{file}: line {line}, column {} ({}): {text:?} is not a whole number", i + 1, &headers[i]))
        };
        let day_text = record.get(day_col).unwrap_or("");
        let day = day_text
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("{file}: line {line}, column {} (day): {day_text:?} is not a day number", day_col + 1))?;
        let values = picked.iter().map(|(i, _)| field(*i)).collect::<Result<Vec<_>, _>>()?;
        if days.insert(day, values).is_some() {
            return Err(format!("{file}: line {line}, column {} (day): day {day} appears twice", day_col + 1));
        }
    }
    if days.is_empty() {
        return Err(format!("{file}: no days (only a header line)"));
    }
    Ok(Timeline { columns: picked.into_iter().map(|(_, h)| h).collect(), days })
}

/// One column of one day out of tolerance.
#[derive(Debug, PartialEq)]
pub struct Disagreement {
    /// Simulated day.
    pub day: i64,
    /// Column name.
    pub column: String,
    /// Value in the first file.
    pub sim: u64,
    /// Value in the second file.
    pub real: u64,
    /// Largest difference allowed that day.
    pub allowed: u64,
}

/// Runs the comparison.
pub fn run(args: CompareArgs) -> anyhow::Result<ExitCode> {
    let (sim, real) = match (read(&args.sim), read(&args.real)) {
        (Ok(s), Ok(r)) => (s, r),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("kmslab compare: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if sim.columns != real.columns {
        let only = |a: &Timeline, b: &Timeline| a.columns.iter().filter(|c| !b.columns.contains(c)).cloned().collect::<Vec<_>>().join(", ");
        eprintln!(
            "kmslab compare: the files count different things: only in {}: [{}]; only in {}: [{}]",
            args.sim.display(),
            only(&sim, &real),
            args.real.display(),
            only(&real, &sim)
        );
        return Ok(ExitCode::from(2));
    }
    let state_idx: Vec<usize> = STATES.iter().map(|s| sim.columns.iter().position(|c| c == s).expect("checked on reading")).collect();
    let total = |v: &[u64]| state_idx.iter().fold(0u64, |t, &i| t.saturating_add(v[i]));
    // For each count column `HOST_count_GROUP`, the column of `HOST_up` (if any).
    let up_of: Vec<Option<usize>> = sim
        .columns
        .iter()
        .map(|c| c.split_once("_count_").and_then(|(host, _)| sim.columns.iter().position(|u| *u == format!("{host}_up"))))
        .collect();
    let mut out = Vec::new();
    let mut compared_days = 0;
    for (day, s) in &sim.days {
        let Some(r) = real.days.get(day) else { continue };
        compared_days += 1;
        let allowed = args.tolerance.allowed(total(s).max(total(r)));
        for (i, column) in sim.columns.iter().enumerate() {
            if column.ends_with("_up") && !column.contains("_count_") {
                continue;
            }
            // A host down in either timeline is not asked its count: a real lab cannot read
            // a stopped host's, the simulator still holds it.
            if up_of[i].is_some_and(|u| s[u] == 0 || r[u] == 0) {
                continue;
            }
            // Within the tolerance of the range SIM.csv spans over the days within `--shift`
            // (a step of the counts that came earlier or later lies between its values).
            let shift = i64::from(args.shift);
            let window = (day - shift..=day + shift).filter_map(|d| sim.days.get(&d).map(|v| v[i]));
            let (low, high) = window.fold((s[i], s[i]), |(lo, hi), v| (lo.min(v), hi.max(v)));
            if r[i] + allowed < low || r[i] > high.saturating_add(allowed) {
                out.push(Disagreement { day: *day, column: column.clone(), sim: s[i], real: r[i], allowed });
            }
        }
    }
    let missing = |a: &Timeline, b: &Timeline| a.days.keys().filter(|d| !b.days.contains_key(d)).count();
    let (only_sim, only_real) = (missing(&sim, &real), missing(&real, &sim));
    if compared_days == 0 {
        eprintln!("kmslab compare: {} and {} have no day in common", args.sim.display(), args.real.display());
        return Ok(ExitCode::from(2));
    }
    for d in &out {
        println!(
            "day {}: {} {} in {}, {} in {} (differs by {}, tolerance {})",
            d.day,
            d.column,
            d.sim,
            args.sim.display(),
            d.real,
            args.real.display(),
            d.sim.abs_diff(d.real),
            d.allowed
        );
    }
    if only_sim + only_real > 0 {
        println!("not compared: {only_sim} days only in {}, {only_real} days only in {}", args.sim.display(), args.real.display());
    }
    let t = args.tolerance;
    let shifted = if args.shift > 0 { format!(", shift {} days", args.shift) } else { String::new() };
    let days_off = out.iter().map(|d| d.day).collect::<std::collections::BTreeSet<_>>().len();
    if out.is_empty() {
        println!("agree: {compared_days} days compared, tolerance max({}, {}% of clients){shifted}", t.absolute, t.percent);
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "disagree on {days_off} of {compared_days} days ({} values), tolerance max({}, {}% of clients){shifted}",
            out.len(),
            t.absolute,
            t.percent
        );
        Ok(ExitCode::from(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerance_forms() {
        assert_eq!(parse_tolerance("3"), Ok(Tolerance { absolute: 3, percent: 0.0 }));
        assert_eq!(parse_tolerance("10%"), Ok(Tolerance { absolute: 0, percent: 10.0 }));
        assert_eq!(parse_tolerance("2,5%"), Ok(Tolerance { absolute: 2, percent: 5.0 }));
        assert!(parse_tolerance("five").is_err());
        assert!(parse_tolerance("-1%").is_err());
        let t = parse_tolerance("2,5%").unwrap();
        assert_eq!((t.allowed(10), t.allowed(100), t.allowed(1000)), (2, 5, 50));
    }
}

//! `slmgr /explain CODE`: the equivalent of `slui 0x2a CODE`, from the core's HRESULT table.

use std::process::ExitCode;

use kmslab_core::hresult::{HResult, TABLE};
use serde_json::json;

/// Prints what `code` means; exit 2 when the code is not a number, 1 when it is unknown.
pub fn run(code: Option<&str>, json_out: bool) -> ExitCode {
    let Some(text) = code else {
        eprintln!("slmgr: /explain needs an error code, e.g. slmgr /explain 0xC004F074 (or /explain all)");
        return ExitCode::from(2);
    };
    if text.eq_ignore_ascii_case("all") {
        for info in TABLE {
            println!("{}  {}  {}", info.code, info.name, info.meaning);
        }
        return ExitCode::SUCCESS;
    }
    let Some(code) = HResult::parse(text) else {
        eprintln!("slmgr: /explain: {text:?} is not an error code (expected e.g. 0xC004F074)");
        return ExitCode::from(2);
    };
    match code.info() {
        Some(info) if json_out => {
            println!("{}", json!({"code": code.to_string(), "name": info.name, "meaning": info.meaning, "fix": info.fix}));
            ExitCode::SUCCESS
        }
        Some(info) => {
            println!("Error: {}  {}", info.code, info.name);
            println!("Meaning: {}", info.meaning);
            println!("Usual fix: {}", info.fix);
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("slmgr: {code} is not a code kmslab produces (slmgr /explain all lists them)");
            ExitCode::from(1)
        }
    }
}

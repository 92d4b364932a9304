//! `GET /api/v1/events?format=csv`: the events as CSV (RFC 4180, by the `csv` crate), one
//! column per event field (docs/interfaces.md lists them), so a spreadsheet sorts and
//! filters them as they are. A field that has no column of its own (those of 8208 and 8209
//! besides `result`) is kept in the last column, `other_fields`, as JSON: nothing in the
//! registry is left out.

use kmslab_core::Timestamp;
use kmslab_store::EventRow;
use serde_json::{Map, Value};

/// The columns taken from an event's fields, after `seq`, `event_id` and `time`: those of
/// 12290 (request received), then those of 12293/12294 (DNS publishing) not already there.
pub const FIELD_COLUMNS: [&str; 16] = [
    "result",
    "machine_name",
    "cmid",
    "client_time",
    "vm",
    "license_status",
    "minutes_to_expiry",
    "n_policy",
    "activation_id",
    "domain",
    "priority",
    "weight",
    "port",
    "target",
    "server",
    "error",
];

/// The header row.
pub fn header() -> Vec<&'static str> {
    let mut columns = vec!["seq", "event_id", "time"];
    columns.extend(FIELD_COLUMNS);
    columns.push("other_fields");
    columns
}

/// A field's value as a cell: text as it is, numbers and booleans as JSON writes them,
/// nothing (absent or null) as an empty cell.
fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The CSV text of `rows`, header first.
pub fn render(rows: &[EventRow]) -> String {
    let mut out = csv::Writer::from_writer(Vec::new());
    // Writing to a Vec fails only on a record of another length, which cannot happen here.
    out.write_record(header()).expect("csv to memory");
    for r in rows {
        let mut fields = match serde_json::from_str::<Value>(&r.fields_json) {
            Ok(Value::Object(map)) => map,
            // A row whose fields are not a JSON object (none is written so) is kept whole.
            _ => Map::from_iter([("fields".to_owned(), Value::String(r.fields_json.clone()))]),
        };
        let mut record = vec![r.seq.to_string(), r.event_id.to_string(), Timestamp::from_unix_ms(r.time_ms).to_string()];
        record.extend(FIELD_COLUMNS.iter().map(|c| cell(fields.remove(*c).as_ref())));
        record.push(if fields.is_empty() { String::new() } else { Value::Object(fields).to_string() });
        out.write_record(&record).expect("csv to memory");
    }
    String::from_utf8(out.into_inner().expect("csv to memory")).expect("csv of UTF-8 cells is UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64, event_id: u32, fields: &str) -> EventRow {
        EventRow { seq, event_id, time_ms: 1_767_225_600_000, fields_json: fields.to_owned() }
    }

    #[test]
    fn each_field_has_its_column_and_cells_are_quoted_when_needed() {
        let text = render(&[
            row(
                1,
                12290,
                r#"{"result":"0x00000000","n_policy":25,"machine_name":"pc, \"one\"","cmid":"c","client_time":"t","vm":false,"license_status":"licensed","minutes_to_expiry":43200,"activation_id":"a"}"#,
            ),
            row(
                2,
                12293,
                r#"{"result":"0xC004F074","domain":"lab.test","error":"refused\nby the server","server":"127.0.0.1:53","later":1}"#,
            ),
        ]);
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(reader.headers().unwrap().iter().collect::<Vec<_>>(), header());
        let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        let get = |r: &csv::StringRecord, c: &str| r.get(header().iter().position(|h| *h == c).unwrap()).unwrap().to_owned();
        assert_eq!(get(&records[0], "time"), "2026-01-01T00:00:00Z");
        assert_eq!(get(&records[0], "machine_name"), "pc, \"one\"");
        assert_eq!((get(&records[0], "n_policy"), get(&records[0], "vm")), ("25".into(), "false".into()));
        assert_eq!((get(&records[0], "domain"), get(&records[0], "other_fields")), (String::new(), String::new()));
        assert_eq!(get(&records[1], "error"), "refused\nby the server");
        assert_eq!(get(&records[1], "other_fields"), r#"{"later":1}"#);
        assert!(text.contains("\"pc, \"\"one\"\"\""), "{text}");
    }
}

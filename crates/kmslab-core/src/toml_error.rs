//! TOML errors on one readable line: where (line, column, and the key when the error is
//! about a value), then what was wrong, instead of the TOML crate's multi-line caret snippet.

/// `line 3, column 10, key listen: invalid type: string "127.0.0.1:1", expected a sequence`.
pub fn describe(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim().replace('\n', " ");
    let Some(span) = error.span() else { return message };
    let start = span.start.min(text.len());
    let before = &text[..start];
    let line_no = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let line = text[line_start..].lines().next().unwrap_or("");
    // The error points into the value of `key = value` on this line: name the key.
    let key = line
        .split_once('=')
        .filter(|(k, _)| line_start + k.len() < start)
        .map(|(k, _)| k.trim().trim_matches('"'))
        .filter(|k| !k.is_empty() && !k.starts_with('['));
    match key {
        Some(key) => format!("line {line_no}, column {column}, key {key}: {message}"),
        None => format!("line {line_no}, column {column}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct File {
        listen: Option<Vec<String>>,
        seed: Option<u64>,
    }

    fn check(text: &str, expected: &str) {
        let error = toml::from_str::<File>(text).unwrap_err();
        assert_eq!(describe(text, &error), expected);
    }

    #[test]
    fn a_wrong_type_names_the_key_and_where_it_is() {
        check(
            "seed = 1\nlisten = \"127.0.0.1:1\"\n",
            "line 2, column 10, key listen: invalid type: string \"127.0.0.1:1\", expected a sequence",
        );
    }

    #[test]
    fn an_unknown_key_says_where_and_what_is_expected() {
        check("[hosts]\n", "line 1, column 2: unknown field `hosts`, expected `listen` or `seed`");
    }

    #[test]
    fn a_syntax_error_is_one_line() {
        let text = "seed = \n";
        let error = toml::from_str::<File>(text).unwrap_err();
        let line = describe(text, &error);
        assert!(line.starts_with("line 1, column 8") && !line.contains('\n'), "{line}");
    }
}

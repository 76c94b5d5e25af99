//! How the CLI prints: one readable human format for every command (`key: value`
//! lines, lists one item per line), or the JSON as the API sent it with `--json`.
//! Errors are one line on stderr (`error: <status> <code>: <detail>` for API
//! answers); a backtrace only with `MERIDIAN_BACKTRACE=1`.

use serde_json::Value;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

/// Prints `value`: pretty JSON, or `human(value)` for a person.
pub fn print(format: Format, value: &Value, human: impl FnOnce(&Value) -> String) {
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
        ),
        Format::Human => {
            let text = human(value);
            println!("{}", text.trim_end());
        }
    }
}

/// The generic human form: `key: value` per line, nested objects indented, a list
/// of objects as one line per item with its scalar fields.
pub fn human(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, 0);
    out
}

fn write_value(out: &mut String, value: &Value, indent: usize) {
    let pad = "  ".repeat(indent);
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                match item {
                    Value::Object(_) => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        write_value(out, item, indent + 1);
                    }
                    Value::Array(items) if items.is_empty() => {
                        out.push_str(&format!("{pad}{key}: (none)\n"));
                    }
                    Value::Array(_) => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        write_value(out, item, indent + 1);
                    }
                    other => out.push_str(&format!("{pad}{key}: {}\n", scalar(other))),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                out.push_str(&format!("{pad}- {}\n", one_line(item)));
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
}

/// An item of a list on one line: `key=value` for its fields.
pub fn one_line(value: &Value) -> String {
    match value {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}={}", one_line(v)))
            .collect::<Vec<_>>()
            .join(" "),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(one_line).collect::<Vec<_>>().join(",")
        ),
        other => scalar(other),
    }
}

/// A scalar without JSON quoting; `null` as `-`.
pub fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn human_form_has_no_json_quoting() {
        let text = human(&json!({
            "id": "t1", "residency": null, "limits": {"rps": 5},
            "items": [{"slug": "acme", "n": 1}], "refused": []
        }));
        assert_eq!(
            text,
            "id: t1\nitems:\n  - n=1 slug=acme\nlimits:\n  rps: 5\nrefused: (none)\nresidency: -\n"
        );
    }
}

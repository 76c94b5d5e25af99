//! Input validation shared by the API modules: every rule answers a clear 400
//! (`validation_failed`) naming the field, before anything touches the database.

use crate::error::ApiError;

/// A required, trimmed text field of at most `max_chars` characters, without NUL
/// or other control characters but newline and tab (PostgreSQL rejects NUL).
pub fn text(field: &str, value: &str, max_chars: usize) -> Result<String, ApiError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ApiError::validation(format!("`{field}` must not be empty")));
    }
    if trimmed.chars().count() > max_chars {
        return Err(ApiError::validation(format!(
            "`{field}` must be at most {max_chars} characters"
        )));
    }
    no_control_chars(field, trimmed)?;
    Ok(trimmed.to_owned())
}

pub fn no_control_chars(field: &str, value: &str) -> Result<(), ApiError> {
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(ApiError::validation(format!(
            "`{field}` contains control characters"
        )));
    }
    Ok(())
}

/// A plausible email address (one `@`, a dot in the domain, no spaces); stored lowercased.
pub fn email(value: &str) -> Result<String, ApiError> {
    let value = value.trim().to_lowercase();
    let valid = value.len() <= 254
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.contains('@')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if valid {
        Ok(value)
    } else {
        Err(ApiError::validation("`email` is not a valid email address"))
    }
}

/// Tenant slugs: 2–63 lowercase letters, digits and dashes, starting with a letter or digit.
pub fn slug(value: &str) -> Result<String, ApiError> {
    let valid = (2..=63).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        // `/v1/auth/platform/…` is the platform's sign-in, not a tenant's.
        && value != "platform";
    if valid {
        Ok(value.to_owned())
    } else {
        Err(ApiError::validation(
            "`slug` must be 2–63 lowercase letters, digits or dashes, not starting with a dash \
             (and not `platform`)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_accept_and_refuse_what_they_say() {
        assert_eq!(text("name", "  general ", 80).unwrap(), "general");
        assert!(text("name", "   ", 80).is_err());
        assert!(text("name", "a\u{0}b", 80).is_err());
        assert!(text("name", &"x".repeat(81), 80).is_err());
        assert_eq!(email(" Ada@Example.COM ").unwrap(), "ada@example.com");
        for bad in ["ada", "@x.io", "ada@x", "a da@x.io", "ada@.io"] {
            assert!(email(bad).is_err(), "{bad}");
        }
        assert!(slug("acme-eu").is_ok());
        for bad in ["A", "-acme", "acme_eu", "a"] {
            assert!(slug(bad).is_err(), "{bad}");
        }
    }
}

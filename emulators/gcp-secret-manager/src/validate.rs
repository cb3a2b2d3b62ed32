//! Input rules from the Secret Manager v1 reference for secret IDs, labels, annotations and
//! version aliases. Each check returns `INVALID_ARGUMENT` with the offending value.

use std::collections::BTreeMap;

use crate::error::ApiError;

const MAX_SECRET_ID_CHARS: usize = 255;
const MAX_LABELS: usize = 64;
const MAX_LABEL_CHARS: usize = 63;
const MAX_LABEL_BYTES: usize = 128;
const MAX_ANNOTATION_KEY_CHARS: usize = 63;
/// Annotation keys and values together must be smaller than 16 KiB.
const MAX_ANNOTATIONS_BYTES: usize = 16 * 1024;
const MAX_VERSION_ALIASES: usize = 50;
const MAX_ALIAS_CHARS: usize = 63;

/// Checks a secret ID: 1 to 255 ASCII letters, digits, `-` and `_`.
pub fn secret_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() {
        return Err(ApiError::invalid_argument(
            "secretId is required: pass it as the secretId query parameter",
        ));
    }
    let valid_chars = id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_chars || id.len() > MAX_SECRET_ID_CHARS {
        return Err(ApiError::invalid_argument(format!(
            "invalid secretId {id:?}: a secret ID has 1 to {MAX_SECRET_ID_CHARS} characters, \
             each an ASCII letter, digit, hyphen or underscore"
        )));
    }
    Ok(())
}

/// Checks labels against `[\p{Ll}\p{Lo}][\p{Ll}\p{Lo}\p{N}_-]{0,62}` for keys and
/// `[\p{Ll}\p{Lo}\p{N}_-]{0,63}` for values, at most 128 bytes each, at most 64 labels.
pub fn labels(labels: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if labels.len() > MAX_LABELS {
        return Err(ApiError::invalid_argument(format!(
            "too many labels: {} given, at most {MAX_LABELS} are allowed",
            labels.len()
        )));
    }
    for (key, value) in labels {
        let first_is_letter = key.chars().next().is_some_and(is_label_letter);
        if !first_is_letter || !is_label_text(key) || key.chars().count() > MAX_LABEL_CHARS {
            return Err(ApiError::invalid_argument(format!(
                "invalid label key {key:?}: a key has 1 to {MAX_LABEL_CHARS} characters, starts with a \
                 lowercase letter and contains only lowercase letters, digits, hyphens and underscores"
            )));
        }
        if !is_label_text(value) || value.chars().count() > MAX_LABEL_CHARS {
            return Err(ApiError::invalid_argument(format!(
                "invalid value {value:?} for label {key:?}: a value has 0 to {MAX_LABEL_CHARS} characters, \
                 each a lowercase letter, digit, hyphen or underscore"
            )));
        }
        if key.len() > MAX_LABEL_BYTES || value.len() > MAX_LABEL_BYTES {
            return Err(ApiError::invalid_argument(format!(
                "label {key:?} is too long: keys and values are at most {MAX_LABEL_BYTES} bytes of UTF-8"
            )));
        }
    }
    Ok(())
}

/// Approximates `\p{Ll}|\p{Lo}`: lowercase letters and letters that have no case.
// NOTE: Rust's `char` has no general-category lookup, so titlecase (Lt) and modifier (Lm)
// letters pass this check although Google's pattern excludes them. ASCII input is checked exactly.
fn is_label_letter(c: char) -> bool {
    c.is_lowercase() || (c.is_alphabetic() && !c.is_uppercase())
}

fn is_label_text(text: &str) -> bool {
    text.chars()
        .all(|c| is_label_letter(c) || c.is_numeric() || c == '_' || c == '-')
}

/// Checks annotations: keys of 1 to 63 characters that begin and end with an ASCII letter or
/// digit and contain only those, `-`, `_` and `.`, and keys plus values below 16 KiB in total.
pub fn annotations(annotations: &BTreeMap<String, String>) -> Result<(), ApiError> {
    let mut total_bytes = 0;
    for (key, value) in annotations {
        let inner_valid = key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        let ends_valid =
            key.starts_with(|c: char| c.is_ascii_alphanumeric()) && key.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !inner_valid || !ends_valid || key.len() > MAX_ANNOTATION_KEY_CHARS {
            return Err(ApiError::invalid_argument(format!(
                "invalid annotation key {key:?}: a key has 1 to {MAX_ANNOTATION_KEY_CHARS} characters, begins \
                 and ends with an ASCII letter or digit, and contains only those, hyphens, underscores and dots"
            )));
        }
        total_bytes += key.len() + value.len();
    }
    if total_bytes >= MAX_ANNOTATIONS_BYTES {
        return Err(ApiError::invalid_argument(format!(
            "annotations are too large: keys and values total {total_bytes} bytes, \
             the limit is less than {MAX_ANNOTATIONS_BYTES}"
        )));
    }
    Ok(())
}

/// Checks version aliases: at most 50, each of 1 to 63 ASCII letters, digits, `-` and `_`,
/// starting with a letter, neither `latest` nor `new` in any case, and mapped to a version
/// number of at least 1.
pub fn version_aliases(aliases: &BTreeMap<String, i64>) -> Result<(), ApiError> {
    if aliases.len() > MAX_VERSION_ALIASES {
        return Err(ApiError::invalid_argument(format!(
            "too many version aliases: {} given, at most {MAX_VERSION_ALIASES} are allowed",
            aliases.len()
        )));
    }
    for (alias, version) in aliases {
        let starts_with_letter = alias.starts_with(|c: char| c.is_ascii_alphabetic());
        let valid_chars = alias.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !starts_with_letter || !valid_chars || alias.len() > MAX_ALIAS_CHARS {
            return Err(ApiError::invalid_argument(format!(
                "invalid version alias {alias:?}: an alias has 1 to {MAX_ALIAS_CHARS} characters, starts with \
                 an ASCII letter and contains only ASCII letters, digits, hyphens and underscores"
            )));
        }
        if alias.eq_ignore_ascii_case("latest") || alias.eq_ignore_ascii_case("new") {
            return Err(ApiError::invalid_argument(format!(
                "invalid version alias {alias:?}: \"latest\" and \"new\" are reserved in any letter case"
            )));
        }
        if *version < 1 {
            return Err(ApiError::invalid_argument(format!(
                "invalid version {version} for alias {alias:?}: version numbers start at 1"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map<V: Clone + Into<W>, W>(entries: &[(&str, V)]) -> BTreeMap<String, W> {
        entries.iter().map(|(k, v)| (k.to_string(), v.clone().into())).collect()
    }

    #[test]
    fn secret_id_accepts_allowed_characters() {
        assert!(secret_id("db-password_2").is_ok());
        assert!(secret_id(&"a".repeat(255)).is_ok());
    }

    #[test]
    fn secret_id_rejects_bad_values() {
        for id in ["", "has space", "slash/inside", "dot.inside", &"a".repeat(256)] {
            assert!(secret_id(id).is_err(), "{id:?} was accepted");
        }
    }

    #[test]
    fn labels_follow_google_pattern() {
        assert!(labels(&map(&[("env", "prod"), ("team-a_1", ""), ("ключ", "значение")])).is_ok());
        assert!(labels(&map(&[("Env", "prod")])).is_err(), "uppercase key");
        assert!(labels(&map(&[("1env", "prod")])).is_err(), "key starting with a digit");
        assert!(labels(&map(&[("", "prod")])).is_err(), "empty key");
        assert!(labels(&map(&[("env", "Prod")])).is_err(), "uppercase value");
        assert!(labels(&map(&[("env", "a.b")])).is_err(), "dot in value");
        assert!(
            labels(&map(&[(&"k".repeat(64) as &str, "v")])).is_err(),
            "key of 64 characters"
        );
    }

    #[test]
    fn labels_limit_count() {
        let many: BTreeMap<String, String> = (0..65).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(labels(&many).is_err());
    }

    #[test]
    fn annotations_follow_google_pattern() {
        assert!(annotations(&map(&[("rotor.dev/owner", "x")])).is_err(), "slash in key");
        assert!(annotations(&map(&[("Rotor.Dev_owner-1", "any value / at all")])).is_ok());
        assert!(annotations(&map(&[(".hidden", "x")])).is_err(), "leading dot");
        assert!(annotations(&map(&[("trailing-", "x")])).is_err(), "trailing hyphen");
    }

    #[test]
    fn annotations_limit_total_size() {
        let big = map(&[("k", "v".repeat(MAX_ANNOTATIONS_BYTES))]);
        assert!(annotations(&big).is_err());
    }

    #[test]
    fn version_aliases_follow_google_rules() {
        assert!(version_aliases(&map(&[("current", 1), ("Previous-2", 7)])).is_ok());
        assert!(version_aliases(&map(&[("latest", 1)])).is_err());
        assert!(version_aliases(&map(&[("LATEST", 1)])).is_err());
        assert!(version_aliases(&map(&[("New", 1)])).is_err());
        assert!(version_aliases(&map(&[("1st", 1)])).is_err());
        assert!(version_aliases(&map(&[("has.dot", 1)])).is_err());
        assert!(version_aliases(&map(&[("zero", 0)])).is_err());
    }
}

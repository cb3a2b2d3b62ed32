//! Value generators: turn a `spec.generator` into a new [`SecretValue`]. Uses the operating
//! system's random number generator; no other IO.

use rand::Rng;
use rand::seq::{IndexedRandom, SliceRandom};

use super::SecretValue;
use crate::api::{GeneratorSpec, PasswordGenerator};

const LOWERCASE: &str = "abcdefghijklmnopqrstuvwxyz";
const UPPERCASE: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &str = "0123456789";
const SYMBOLS: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// Errors of value generation: settings that admission cannot reject.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GeneratorError {
    #[error("spec.generator sets no generator")]
    Missing,

    #[error("spec.generator.password leaves no characters to draw from after excludeCharacters")]
    EmptyAlphabet,

    #[error("spec.generator.password.length {length} is shorter than the {classes} enabled character classes")]
    TooShort { length: u32, classes: usize },
}

/// Checks that `spec` can produce a value, without producing one.
pub fn validate(spec: &GeneratorSpec) -> Result<(), GeneratorError> {
    let password = spec.password.as_ref().ok_or(GeneratorError::Missing)?;
    let classes = character_classes(password)?;
    if (password.length as usize) < classes.len() {
        return Err(GeneratorError::TooShort {
            length: password.length,
            classes: classes.len(),
        });
    }
    Ok(())
}

/// Generates a new value.
pub fn generate(spec: &GeneratorSpec) -> Result<SecretValue, GeneratorError> {
    let password = spec.password.as_ref().ok_or(GeneratorError::Missing)?;
    generate_password(password, &mut rand::rng())
}

/// Draws a password with at least one character of each enabled class, then shuffles it
/// so that those characters are not at fixed positions.
fn generate_password<R: Rng + ?Sized>(spec: &PasswordGenerator, rng: &mut R) -> Result<SecretValue, GeneratorError> {
    let classes = character_classes(spec)?;
    let length = spec.length as usize;
    if length < classes.len() {
        return Err(GeneratorError::TooShort {
            length: spec.length,
            classes: classes.len(),
        });
    }
    let alphabet: Vec<char> = classes.iter().flatten().copied().collect();

    let mut chars: Vec<char> = Vec::with_capacity(length);
    for class in &classes {
        chars.extend(class.choose(rng));
    }
    while chars.len() < length {
        chars.extend(alphabet.choose(rng));
    }
    chars.shuffle(rng);
    Ok(SecretValue::new(chars.into_iter().collect()))
}

/// Returns the enabled character classes, each without the excluded characters. Empty
/// classes are dropped.
fn character_classes(spec: &PasswordGenerator) -> Result<Vec<Vec<char>>, GeneratorError> {
    let excluded = spec.exclude_characters.as_deref().unwrap_or_default();
    let classes: Vec<Vec<char>> = [
        (spec.lowercase, LOWERCASE),
        (spec.uppercase, UPPERCASE),
        (spec.digits, DIGITS),
        (spec.symbols, SYMBOLS),
    ]
    .into_iter()
    .filter(|(enabled, _)| enabled.unwrap_or(true))
    .map(|(_, class)| class.chars().filter(|c| !excluded.contains(*c)).collect::<Vec<char>>())
    .filter(|class| !class.is_empty())
    .collect();
    if classes.is_empty() {
        return Err(GeneratorError::EmptyAlphabet);
    }
    Ok(classes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn password(length: u32) -> PasswordGenerator {
        PasswordGenerator {
            length,
            lowercase: None,
            uppercase: None,
            digits: None,
            symbols: None,
            exclude_characters: None,
        }
    }

    #[test]
    fn password_has_requested_length() {
        let value = generate_password(&password(57), &mut rand::rng()).expect("generates");
        assert_eq!(value.expose().chars().count(), 57);
    }

    #[test]
    fn password_contains_every_enabled_class() {
        for _ in 0..200 {
            let value = generate_password(&password(8), &mut rand::rng()).expect("generates");
            let text = value.expose();
            assert!(text.chars().any(|c| c.is_ascii_lowercase()), "no lowercase");
            assert!(text.chars().any(|c| c.is_ascii_uppercase()), "no uppercase");
            assert!(text.chars().any(|c| c.is_ascii_digit()), "no digit");
            assert!(text.chars().any(|c| c.is_ascii_punctuation()), "no symbol");
        }
    }

    #[test]
    fn password_skips_disabled_and_excluded() {
        let spec = PasswordGenerator {
            symbols: Some(false),
            uppercase: Some(false),
            exclude_characters: Some("abc012".to_owned()),
            ..password(300)
        };
        let value = generate_password(&spec, &mut rand::rng()).expect("generates");
        for c in value.expose().chars() {
            assert!(c.is_ascii_lowercase() || c.is_ascii_digit(), "unexpected class: {c:?}");
            assert!(!"abc012".contains(c), "excluded character {c:?} present");
        }
    }

    #[test]
    fn password_without_alphabet_is_rejected() {
        let spec = PasswordGenerator {
            lowercase: Some(false),
            uppercase: Some(false),
            symbols: Some(false),
            exclude_characters: Some(DIGITS.to_owned()),
            ..password(16)
        };
        assert_eq!(
            generate_password(&spec, &mut rand::rng()),
            Err(GeneratorError::EmptyAlphabet)
        );
    }

    #[test]
    fn two_passwords_differ() {
        let first = generate_password(&password(32), &mut rand::rng()).expect("generates");
        let second = generate_password(&password(32), &mut rand::rng()).expect("generates");
        assert_ne!(first, second);
    }

    #[test]
    fn value_debug_is_redacted() {
        let value = SecretValue::new("hunter2-very-secret".to_owned());
        let printed = format!("{value:?} {:?}", Some(&value));
        assert!(!printed.contains("hunter2"), "{printed}");
    }
}

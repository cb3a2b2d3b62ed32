//! The list filter language of Secret Manager, a subset of AIP-160
//! (<https://google.aip.dev/160>).
//!
//! Supported: restrictions `FIELD OP VALUE` with `:`, `=`, `!=`, `<`, `<=`, `>`, `>=`; `AND`,
//! `OR`, `NOT`, a leading `-` for negation, parentheses, and juxtaposition as `AND`. As in
//! AIP-160, `OR` binds tighter than `AND`. Values are bare words or double-quoted strings, and
//! `*` in a text value matches any run of characters. On text fields `:` matches a substring
//! (`name:prod` matches `projects/p/secrets/my-prod-db`) and `=` matches the whole value.

use jiff::Timestamp;

use crate::store::VersionState;

/// Which resource a filter applies to, which decides the fields it may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Secret,
    SecretVersion,
}

/// A field that a filter can name, resolved from its dotted path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Name,
    CreateTime,
    DestroyTime,
    State,
    Labels,
    Label(String),
    Annotations,
    Annotation(String),
    ReplicationAutomatic,
    ReplicaLocation,
}

/// The value of one field of a resource, in the form that filter tests compare.
#[derive(Debug)]
pub enum FieldValue<'a> {
    /// Zero or more strings: one for `name` or a present map entry, none for a missing entry,
    /// one per replica for replica locations.
    Texts(Vec<&'a str>),
    Time(Option<Timestamp>),
    State(VersionState),
    /// The keys of a map field, for `labels:KEY`.
    Keys(Vec<&'a str>),
    Presence(bool),
}

/// A resource that a compiled filter can test.
pub trait Filterable {
    fn field_value(&self, field: &Field) -> FieldValue<'_>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    Has,
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

impl Operator {
    fn symbol(self) -> &'static str {
        match self {
            Operator::Has => ":",
            Operator::Equal => "=",
            Operator::NotEqual => "!=",
            Operator::Less => "<",
            Operator::LessOrEqual => "<=",
            Operator::Greater => ">",
            Operator::GreaterOrEqual => ">=",
        }
    }
}

/// A restriction after its field and value have been checked and converted.
#[derive(Debug, Clone)]
enum Test {
    /// `FIELD:*`: the field is set.
    Present(Field),
    Text {
        field: Field,
        operator: Operator,
        pattern: String,
    },
    Time {
        field: Field,
        operator: Operator,
        value: Timestamp,
    },
    State {
        operator: Operator,
        value: VersionState,
    },
    HasKey {
        field: Field,
        key: String,
    },
}

#[derive(Debug, Clone)]
enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Test(Test),
}

/// A parsed and checked filter.
#[derive(Debug, Clone)]
pub struct Filter {
    expr: Expr,
}

impl Filter {
    /// Parses `text` for resources of `kind`. Returns `Ok(None)` for an empty filter and a
    /// message naming the problem for invalid syntax, an unknown field or an unsupported
    /// operator.
    pub fn parse(text: &str, kind: ResourceKind) -> Result<Option<Filter>, String> {
        let mut parser = Parser {
            chars: text.chars().collect(),
            position: 0,
            kind,
        };
        parser.skip_whitespace();
        if parser.at_end() {
            return Ok(None);
        }
        let expr = parser.expression()?;
        parser.skip_whitespace();
        if !parser.at_end() {
            return Err(format!(
                "unexpected {:?} at character {}",
                parser.rest(),
                parser.position + 1
            ));
        }
        Ok(Some(Filter { expr }))
    }

    /// Returns whether `resource` matches the filter.
    pub fn matches(&self, resource: &dyn Filterable) -> bool {
        evaluate(&self.expr, resource)
    }
}

fn evaluate(expr: &Expr, resource: &dyn Filterable) -> bool {
    match expr {
        Expr::And(left, right) => evaluate(left, resource) && evaluate(right, resource),
        Expr::Or(left, right) => evaluate(left, resource) || evaluate(right, resource),
        Expr::Not(inner) => !evaluate(inner, resource),
        Expr::Test(test) => evaluate_test(test, resource),
    }
}

fn evaluate_test(test: &Test, resource: &dyn Filterable) -> bool {
    match test {
        Test::Present(field) => match resource.field_value(field) {
            FieldValue::Texts(values) => !values.is_empty(),
            FieldValue::Time(time) => time.is_some(),
            FieldValue::State(_) => true,
            FieldValue::Keys(keys) => !keys.is_empty(),
            FieldValue::Presence(present) => present,
        },
        Test::Text {
            field,
            operator,
            pattern,
        } => {
            let FieldValue::Texts(values) = resource.field_value(field) else {
                return false;
            };
            let any_match = |whole: bool| values.iter().any(|value| glob_match(pattern, value, whole));
            match operator {
                Operator::Has => any_match(false),
                Operator::Equal => any_match(true),
                Operator::NotEqual => !any_match(true),
                _ => false,
            }
        }
        Test::Time { field, operator, value } => {
            let FieldValue::Time(time) = resource.field_value(field) else {
                return false;
            };
            let Some(time) = time else {
                return *operator == Operator::NotEqual;
            };
            match operator {
                Operator::Has | Operator::Equal => time == *value,
                Operator::NotEqual => time != *value,
                Operator::Less => time < *value,
                Operator::LessOrEqual => time <= *value,
                Operator::Greater => time > *value,
                Operator::GreaterOrEqual => time >= *value,
            }
        }
        Test::State { operator, value } => {
            let FieldValue::State(state) = resource.field_value(&Field::State) else {
                return false;
            };
            match operator {
                Operator::NotEqual => state != *value,
                _ => state == *value,
            }
        }
        Test::HasKey { field, key } => {
            let FieldValue::Keys(keys) = resource.field_value(field) else {
                return false;
            };
            keys.iter().any(|candidate| glob_match(key, candidate, true))
        }
    }
}

/// Matches `text` against `pattern`, where `*` matches any run of characters. With `whole`
/// false the pattern may match anywhere inside `text`.
fn glob_match(pattern: &str, text: &str, whole: bool) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();

    let mut remaining = text;
    if whole {
        let Some(after) = remaining.strip_prefix(first) else {
            return false;
        };
        remaining = after;
    } else {
        let Some(index) = remaining.find(first) else {
            return false;
        };
        remaining = &remaining[index + first.len()..];
    }
    if rest.is_empty() {
        return !whole || remaining.is_empty();
    }

    let (last, middle) = rest.split_last().unwrap_or((&"", &[]));
    for part in middle {
        let Some(index) = remaining.find(part) else {
            return false;
        };
        remaining = &remaining[index + part.len()..];
    }
    if whole {
        remaining.ends_with(last)
    } else {
        remaining.contains(last)
    }
}

struct Parser {
    chars: Vec<char>,
    position: usize,
    kind: ResourceKind,
}

impl Parser {
    fn at_end(&self) -> bool {
        self.position >= self.chars.len()
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.position).copied()
    }

    fn rest(&self) -> String {
        self.chars[self.position..].iter().collect()
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.position += 1;
        }
    }

    /// Consumes `keyword` when it is a whole word at the current position.
    fn eat_keyword(&mut self, keyword: &str) -> bool {
        let end = self.position + keyword.len();
        if end > self.chars.len() {
            return false;
        }
        let word: String = self.chars[self.position..end].iter().collect();
        let boundary = self.chars.get(end).is_none_or(|c| c.is_whitespace() || *c == '(');
        if word == keyword && boundary {
            self.position = end;
            true
        } else {
            false
        }
    }

    fn expression(&mut self) -> Result<Expr, String> {
        let mut expr = self.sequence()?;
        loop {
            self.skip_whitespace();
            if !self.eat_keyword("AND") {
                return Ok(expr);
            }
            let right = self.sequence()?;
            expr = Expr::And(Box::new(expr), Box::new(right));
        }
    }

    /// Parses factors written one after another, which AIP-160 reads as `AND`.
    fn sequence(&mut self) -> Result<Expr, String> {
        let mut expr = self.factor()?;
        loop {
            self.skip_whitespace();
            let save = self.position;
            let ends_sequence = self.at_end() || self.peek() == Some(')') || self.eat_keyword("AND");
            self.position = save;
            if ends_sequence {
                return Ok(expr);
            }
            let right = self.factor()?;
            expr = Expr::And(Box::new(expr), Box::new(right));
        }
    }

    fn factor(&mut self) -> Result<Expr, String> {
        let mut expr = self.term()?;
        loop {
            self.skip_whitespace();
            if !self.eat_keyword("OR") {
                return Ok(expr);
            }
            let right = self.term()?;
            expr = Expr::Or(Box::new(expr), Box::new(right));
        }
    }

    fn term(&mut self) -> Result<Expr, String> {
        self.skip_whitespace();
        if self.eat_keyword("NOT") {
            return Ok(Expr::Not(Box::new(self.term()?)));
        }
        if self.peek() == Some('-') {
            self.position += 1;
            return Ok(Expr::Not(Box::new(self.simple()?)));
        }
        self.simple()
    }

    fn simple(&mut self) -> Result<Expr, String> {
        self.skip_whitespace();
        if self.peek() == Some('(') {
            self.position += 1;
            let expr = self.expression()?;
            self.skip_whitespace();
            if self.peek() != Some(')') {
                return Err(format!("missing ')' at character {}", self.position + 1));
            }
            self.position += 1;
            return Ok(expr);
        }
        self.restriction()
    }

    fn restriction(&mut self) -> Result<Expr, String> {
        let start = self.position;
        while self
            .peek()
            .is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            self.position += 1;
        }
        let path: String = self.chars[start..self.position].iter().collect();
        if path.is_empty() {
            return match self.peek() {
                Some(c) => Err(format!(
                    "expected a field name at character {}, found {c:?}",
                    self.position + 1
                )),
                None => Err("the filter ends where a field name is expected".to_string()),
            };
        }

        self.skip_whitespace();
        let operator = self.operator().ok_or_else(|| {
            format!(
                "expected an operator (:, =, !=, <, <=, >, >=) after {path:?}, because bare values are not supported"
            )
        })?;
        self.skip_whitespace();
        let value = self.value()?;
        let test = compile(self.kind, &path, operator, value)?;
        Ok(Expr::Test(test))
    }

    fn operator(&mut self) -> Option<Operator> {
        let two: String = self.chars.iter().skip(self.position).take(2).collect();
        let (operator, width) = match two.as_str() {
            "!=" => (Operator::NotEqual, 2),
            "<=" => (Operator::LessOrEqual, 2),
            ">=" => (Operator::GreaterOrEqual, 2),
            _ => match self.peek()? {
                ':' => (Operator::Has, 1),
                '=' => (Operator::Equal, 1),
                '<' => (Operator::Less, 1),
                '>' => (Operator::Greater, 1),
                _ => return None,
            },
        };
        self.position += width;
        Some(operator)
    }

    fn value(&mut self) -> Result<String, String> {
        if self.peek() == Some('"') {
            self.position += 1;
            let mut value = String::new();
            loop {
                match self.peek() {
                    None => return Err("a quoted value has no closing '\"'".to_string()),
                    Some('"') => {
                        self.position += 1;
                        return Ok(value);
                    }
                    Some('\\') => {
                        self.position += 1;
                        let escaped = self.peek().ok_or("a quoted value ends with '\\'")?;
                        value.push(escaped);
                        self.position += 1;
                    }
                    Some(c) => {
                        value.push(c);
                        self.position += 1;
                    }
                }
            }
        }
        let start = self.position;
        while self.peek().is_some_and(|c| !c.is_whitespace() && c != ')' && c != '(') {
            self.position += 1;
        }
        if start == self.position {
            return Err(format!("expected a value at character {}", self.position + 1));
        }
        Ok(self.chars[start..self.position].iter().collect())
    }
}

/// Converts `camelCase` path segments to `snake_case`, so `createTime` and `create_time`
/// name the same field.
fn snake_case(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 4);
    for c in path.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn resolve_field(kind: ResourceKind, path: &str) -> Option<Field> {
    if kind == ResourceKind::Secret {
        // Map keys keep their spelling, so only the part before the key is normalized.
        if let Some(key) = path.strip_prefix("labels.") {
            return Some(Field::Label(key.to_string()));
        }
        if let Some(key) = path.strip_prefix("annotations.") {
            return Some(Field::Annotation(key.to_string()));
        }
    }
    let field = match (kind, snake_case(path).as_str()) {
        (_, "name") => Field::Name,
        (_, "create_time") => Field::CreateTime,
        (ResourceKind::SecretVersion, "destroy_time") => Field::DestroyTime,
        (ResourceKind::SecretVersion, "state") => Field::State,
        (ResourceKind::Secret, "labels") => Field::Labels,
        (ResourceKind::Secret, "annotations") => Field::Annotations,
        (ResourceKind::Secret, "replication.automatic") => Field::ReplicationAutomatic,
        (ResourceKind::Secret, "replication.user_managed.replicas.location") => Field::ReplicaLocation,
        _ => return None,
    };
    Some(field)
}

fn compile(kind: ResourceKind, path: &str, operator: Operator, value: String) -> Result<Test, String> {
    let field = resolve_field(kind, path).ok_or_else(|| {
        let known = match kind {
            ResourceKind::Secret => {
                "name, create_time, labels, labels.KEY, annotations, annotations.KEY, replication.automatic, \
                 replication.user_managed.replicas.location"
            }
            ResourceKind::SecretVersion => "name, create_time, destroy_time, state",
        };
        format!("unknown filter field {path:?}. This emulator supports {known}.")
    })?;
    let unsupported = || format!("operator {} is not supported for field {path:?}", operator.symbol());

    if operator == Operator::Has && value == "*" {
        return Ok(Test::Present(field));
    }
    match field {
        Field::Name | Field::Label(_) | Field::Annotation(_) | Field::ReplicaLocation => {
            if !matches!(operator, Operator::Has | Operator::Equal | Operator::NotEqual) {
                return Err(unsupported());
            }
            Ok(Test::Text {
                field,
                operator,
                pattern: value,
            })
        }
        Field::CreateTime | Field::DestroyTime => {
            let time: Timestamp = value.parse().map_err(|error| {
                format!(
                    "invalid timestamp {value:?} for {path:?}: {error}. Use RFC 3339, for example 2021-01-01T06:00:00Z."
                )
            })?;
            Ok(Test::Time {
                field,
                operator,
                value: time,
            })
        }
        Field::State => {
            if !matches!(operator, Operator::Has | Operator::Equal | Operator::NotEqual) {
                return Err(unsupported());
            }
            let state = VersionState::from_name(&value.to_ascii_uppercase())
                .ok_or_else(|| format!("invalid state {value:?}. Use ENABLED, DISABLED or DESTROYED."))?;
            Ok(Test::State { operator, value: state })
        }
        Field::Labels | Field::Annotations => {
            if operator != Operator::Has {
                return Err(format!(
                    "use {path}:KEY to test for a key, or {path}.KEY=VALUE to test a value"
                ));
            }
            Ok(Test::HasKey { field, key: value })
        }
        Field::ReplicationAutomatic => Err(format!("only {path}:* is supported for {path:?}")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    struct FakeSecret {
        name: &'static str,
        create_time: Timestamp,
        labels: BTreeMap<&'static str, &'static str>,
        automatic: bool,
        locations: Vec<&'static str>,
    }

    impl Filterable for FakeSecret {
        fn field_value(&self, field: &Field) -> FieldValue<'_> {
            match field {
                Field::Name => FieldValue::Texts(vec![self.name]),
                Field::CreateTime => FieldValue::Time(Some(self.create_time)),
                Field::Labels => FieldValue::Keys(self.labels.keys().copied().collect()),
                Field::Label(key) => FieldValue::Texts(self.labels.get(key.as_str()).copied().into_iter().collect()),
                Field::ReplicationAutomatic => FieldValue::Presence(self.automatic),
                Field::ReplicaLocation => FieldValue::Texts(self.locations.clone()),
                _ => FieldValue::Texts(Vec::new()),
            }
        }
    }

    struct FakeVersion(VersionState);

    impl Filterable for FakeVersion {
        fn field_value(&self, field: &Field) -> FieldValue<'_> {
            match field {
                Field::State => FieldValue::State(self.0),
                Field::DestroyTime => FieldValue::Time(None),
                _ => FieldValue::Texts(Vec::new()),
            }
        }
    }

    fn secret() -> FakeSecret {
        FakeSecret {
            name: "projects/p/secrets/APIKEY-for-production",
            create_time: "2021-01-01T09:00:00Z".parse().expect("valid timestamp"),
            labels: BTreeMap::from([("environment", "production"), ("team", "payments")]),
            automatic: false,
            locations: vec!["us-east1", "europe-west1"],
        }
    }

    fn secret_matches(filter: &str) -> bool {
        let filter = Filter::parse(filter, ResourceKind::Secret)
            .expect("valid filter")
            .expect("non-empty filter");
        filter.matches(&secret())
    }

    fn version_matches(filter: &str, state: VersionState) -> bool {
        let filter = Filter::parse(filter, ResourceKind::SecretVersion)
            .expect("valid filter")
            .expect("non-empty filter");
        filter.matches(&FakeVersion(state))
    }

    #[test]
    fn empty_filter_is_none() {
        assert!(Filter::parse("   ", ResourceKind::Secret).expect("valid").is_none());
    }

    #[test]
    fn name_has_matches_substring_and_wildcard() {
        assert!(secret_matches("name:production"));
        assert!(secret_matches("name:APIKEY*production"));
        assert!(!secret_matches("name:staging"));
        assert!(!secret_matches("name=APIKEY-for-production"));
        assert!(secret_matches("name=projects/p/secrets/APIKEY*"));
    }

    #[test]
    fn labels_match_values_and_keys() {
        assert!(secret_matches("labels.environment=production"));
        assert!(secret_matches("labels.environment:prod"));
        assert!(!secret_matches("labels.environment=prod"));
        assert!(secret_matches("labels:team"));
        assert!(!secret_matches("labels:owner"));
        assert!(secret_matches("labels.team:*"));
        assert!(!secret_matches("labels.owner:*"));
        assert!(secret_matches("labels.owner!=x"));
    }

    #[test]
    fn create_time_compares_timestamps() {
        assert!(secret_matches(
            "create_time>2021-01-01T06:00:00Z AND create_time<2021-01-01T12:00:00Z"
        ));
        assert!(!secret_matches("createTime<2021-01-01T06:00:00Z"));
        assert!(secret_matches("create_time >= \"2021-01-01T09:00:00Z\""));
    }

    #[test]
    fn logic_operators_combine() {
        assert!(secret_matches("name:staging OR name:production"));
        assert!(secret_matches("NOT name:staging"));
        assert!(secret_matches("-name:staging labels:team"));
        assert!(!secret_matches("-(name:production)"));
        // OR binds tighter than AND, so this reads as `team AND (staging OR production)`.
        assert!(secret_matches("labels:team AND name:staging OR name:production"));
        assert!(!secret_matches("labels:owner name:production"));
    }

    #[test]
    fn replication_fields_match() {
        assert!(!secret_matches("replication.automatic:*"));
        assert!(secret_matches("replication.user_managed.replicas.location:*"));
        assert!(!secret_matches(
            "replication.user_managed.replicas.location:* AND NOT replication.user_managed.replicas.location:us-east1"
        ));
    }

    #[test]
    fn state_matches_enum_names() {
        assert!(version_matches("state:ENABLED", VersionState::Enabled));
        assert!(version_matches("state=disabled", VersionState::Disabled));
        assert!(!version_matches("state:ENABLED", VersionState::Destroyed));
        assert!(version_matches("state!=DESTROYED", VersionState::Enabled));
        assert!(version_matches("NOT destroy_time:*", VersionState::Enabled));
    }

    #[test]
    fn invalid_filters_are_rejected() {
        let cases = [
            ("owner:me", ResourceKind::Secret),
            ("state:ENABLED", ResourceKind::Secret),
            ("labels.env:prod", ResourceKind::SecretVersion),
            ("state:ON", ResourceKind::SecretVersion),
            ("state<ENABLED", ResourceKind::SecretVersion),
            ("name<x", ResourceKind::Secret),
            ("create_time>yesterday", ResourceKind::Secret),
            ("(name:x", ResourceKind::Secret),
            ("name:\"x", ResourceKind::Secret),
            ("production", ResourceKind::Secret),
            ("name:", ResourceKind::Secret),
            ("replication.automatic=x", ResourceKind::Secret),
        ];
        for (filter, kind) in cases {
            assert!(Filter::parse(filter, kind).is_err(), "{filter:?} was accepted");
        }
    }

    #[test]
    fn glob_matches_anchored_and_free() {
        assert!(glob_match("a*c", "abc", true));
        assert!(glob_match("a*c", "xxabcxx", false));
        assert!(!glob_match("a*c", "xxabcxx", true));
        assert!(glob_match("*", "", true));
        assert!(glob_match("a*b*c", "a-b-c", true));
        assert!(!glob_match("a*b*c", "a-c-b", true));
        assert!(glob_match("", "anything", false));
        assert!(!glob_match("", "anything", true));
    }
}

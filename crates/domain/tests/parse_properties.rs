//! Property tests for the job parser: no body, however hostile, makes `EmailJob::parse` or
//! `EmailJob::peek_id` panic; every refusal carries a known reason code; every accepted job has a
//! dot-atom id and line-break-free text, and survives `parse(to_json())` unchanged.

use std::path::{Path, PathBuf};

use herald_domain::{EmailJob, EnrollmentFactor, JobError, JobKind};
use herald_testkit::hostile::{config, fragment, hostile};
use proptest::prelude::*;
use serde_json::{Map, Number, Value};

/// The worker's body limit.
const LIMIT: usize = 64 * 1024;

/// Every reason code a refusal may carry (the `x-herald-reason` dead-letter header).
const REASONS: [&str; 4] = [
    "body_too_large",
    "malformed_json",
    "unknown_type",
    "invalid_job",
];

// ----------------------------------------------------------------------------------------------
// Oracles
// ----------------------------------------------------------------------------------------------

/// RFC 5322 `atext`.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

/// RFC 5322 `dot-atom-text`: one or more atext runs joined by single dots.
fn is_dot_atom(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|run| !run.is_empty() && run.chars().all(is_atext))
}

fn has_line_break(s: &str) -> bool {
    s.contains(['\r', '\n'])
}

/// Everything an accepted job promises, whatever body it came from.
fn check_accepted(job: &EmailJob, body: &[u8]) -> Result<(), TestCaseError> {
    let id = job.id.as_str();
    prop_assert!(is_dot_atom(id), "id {id:?} is not a dot-atom");
    let mut texts: Vec<(&str, String)> = vec![
        ("id", id.to_string()),
        ("user.user_id", job.user.user_id.to_string()),
        ("user.email", job.user.email.to_string()),
    ];
    let optional = [
        ("user.name", job.user.name.clone()),
        ("user.locale", job.user.locale.clone()),
        ("client_id", job.client_id.as_ref().map(ToString::to_string)),
        (
            "organization_id",
            job.organization_id.as_ref().map(ToString::to_string),
        ),
        ("email_locale", job.email_locale.clone()),
        ("custom_domain", job.custom_domain.clone()),
        (
            "result_url",
            job.ticket()
                .and_then(|t| t.result_url.as_ref().map(ToString::to_string)),
        ),
    ];
    texts.extend(
        optional
            .into_iter()
            .filter_map(|(field, value)| value.map(|v| (field, v))),
    );
    for (field, value) in &texts {
        prop_assert!(!has_line_break(value), "{field} {value:?} holds CR or LF");
        prop_assert!(
            !value.chars().any(char::is_control),
            "{field} {value:?} holds a control character"
        );
    }
    if let Some(ticket) = job.ticket() {
        prop_assert!(ticket.ttl_sec > 0 && ticket.ttl_sec <= herald_domain::MAX_TTL_SEC);
    }
    // The wire form is a fixed point, and peek_id finds the same id in the accepted body.
    let again = EmailJob::parse(&job.to_json(), usize::MAX);
    prop_assert_eq!(again, Ok(job.clone()), "parse(to_json()) differs");
    prop_assert_eq!(EmailJob::peek_id(body), Some(job.id.clone()));
    Ok(())
}

/// Parses `body` and checks the outcome: a known reason, the right reason for size and syntax,
/// and the accepted-job invariants. `peek_id` is exercised on the same body.
fn check_body(body: &[u8], max: usize) -> Result<(), TestCaseError> {
    let peeked = EmailJob::peek_id(body);
    if let Some(id) = &peeked {
        prop_assert!(is_dot_atom(id.as_str()), "peek_id gave {id:?}");
    }
    match EmailJob::parse(body, max) {
        Ok(job) => {
            prop_assert!(body.len() <= max);
            check_accepted(&job, body)?;
        }
        Err(e) => {
            let reason = e.reason();
            prop_assert!(REASONS.contains(&reason), "unknown reason {reason:?}");
            prop_assert!(!e.to_string().is_empty());
            let too_large = body.len() > max;
            prop_assert_eq!(
                matches!(e, JobError::TooLarge { .. }),
                too_large,
                "{} bytes, limit {}: {}",
                body.len(),
                max,
                e
            );
            if !too_large {
                let is_json = serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok();
                // Valid JSON is never called malformed.
                prop_assert!(!(is_json && reason == "malformed_json"), "{}", e);
                // `malformed_json` means exactly "the body is not JSON".
                prop_assert_eq!(reason == "malformed_json", !is_json, "{}", e);
            }
        }
    }
    Ok(())
}

// ----------------------------------------------------------------------------------------------
// Strategies
// ----------------------------------------------------------------------------------------------

fn job_id() -> impl Strategy<Value = String> {
    prop_oneof![
        16 => "[A-Za-z0-9_-]{1,20}(\\.[A-Za-z0-9_-]{1,10}){0,3}",
        1 => "[a-z.]{0,6}",
        1 => "[a-z]{1,5}[ :<>@\"+!#]{1,2}[a-z]{0,5}",
        1 => (1usize..260).prop_map(|n| "x".repeat(n)),
        1 => hostile(),
    ]
}

fn email() -> impl Strategy<Value = String> {
    prop_oneof![
        20 => "[a-zA-Z0-9+_-]{1,10}(\\.[a-z0-9+_-]{1,6}){0,2}@[a-z0-9]{1,10}(-[a-z0-9]{1,4})?(\\.[a-z]{2,6}){1,2}",
        1 => "[a-z]{1,8}@\\[[0-9.]{7,15}\\]",
        1 => "\"[a-z <>]{1,8}\"@[a-z]{1,8}\\.test",
        1 => "[A-Z][a-z]{1,6} <[a-z]{1,6}@[a-z]{1,6}\\.test>",
        1 => (hostile(), "[a-z]{1,8}\\.test").prop_map(|(l, d)| format!("{l}@{d}")),
        1 => hostile(),
    ]
}

fn plain_id() -> impl Strategy<Value = String> {
    prop_oneof![
        16 => "[A-Za-z0-9|_-]{1,40}",
        1 => (200usize..300).prop_map(|n| "u".repeat(n)),
        1 => hostile(),
    ]
}

fn locale_tag() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(vec!["en", "fr", "fr-CA", "pt_BR", "pt-BR", "ja", "ar", "zz", "de-AT"])
            .prop_map(str::to_string),
        1 => "[a-zA-Z_-]{0,70}",
        1 => hostile(),
    ]
}

fn url() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => "https?://[a-z0-9-]{1,12}(\\.[a-z]{2,5}){1,2}(:[0-9]{1,5})?(/[a-zA-Z0-9%._~-]{0,12}){0,3}(\\?[a-z]{1,5}=[a-zA-Z0-9%]{0,8})?(#[a-z]{0,5})?",
        1 => prop::sample::select(vec![
            "javascript:alert(1)",
            "/relative",
            "//host.test/x",
            "https://",
            "http://[::1]/",
            "HTTPS://EXAMPLE.COM/%2e%2e/",
            "https://example.com/\r\nBcc: x",
            "https://exa mple.com",
            "https://user:pass@host.test:65535/",
            "https://xn--nxasmq6b.test/",
            "https://例え.テスト/パス",
            "data:text/html,<script>alert(1)</script>",
            "ftp://host.test/",
            "http://host.test:99999/",
        ])
        .prop_map(str::to_string),
        1 => hostile(),
    ]
}

fn domain() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => "[A-Za-z0-9-]{1,12}(\\.[A-Za-z0-9-]{1,12}){1,3}",
        1 => " ?[a-z]{1,8}\\.[A-Z]{2,4} ?",
        1 => hostile(),
    ]
}

/// A display name: usually free of control characters (so it can be accepted), sometimes hostile.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::collection::vec(any::<char>().prop_filter("no control", |c| !c.is_control()), 0..40)
            .prop_map(String::from_iter),
        2 => prop::collection::vec(fragment(), 0..6)
            .prop_map(|v| v.concat().chars().filter(|c| !c.is_control()).collect()),
        1 => (301usize..320).prop_map(|n| "n".repeat(n)),
        2 => hostile(),
    ]
}

fn factor() -> impl Strategy<Value = EnrollmentFactor> {
    prop::sample::select(vec![
        EnrollmentFactor::PushNotification,
        EnrollmentFactor::Phone,
        EnrollmentFactor::Email,
        EnrollmentFactor::Otp,
        EnrollmentFactor::WebauthnRoaming,
        EnrollmentFactor::WebauthnPlatform,
    ])
}

fn kind() -> impl Strategy<Value = JobKind> {
    prop::sample::select(JobKind::ALL.to_vec())
}

/// A one-time code: usually six digits, sometimes a near miss.
fn code() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[0-9]{6}",
        1 => "[0-9]{0,8}",
        1 => "[0-9a-z ]{6}",
    ]
}

fn ttl() -> impl Strategy<Value = u64> {
    prop_oneof![
        2 => Just(0u64),
        8 => 1u64..=herald_domain::MAX_TTL_SEC,
        1 => Just(herald_domain::MAX_TTL_SEC + 1),
        1 => any::<u64>(),
    ]
}

/// Any JSON value, up to a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        hostile().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(any_key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const TOP_FIELDS: [&str; 15] = [
    "version",
    "id",
    "type",
    "user",
    "client_id",
    "organization_id",
    "email_locale",
    "result_url",
    "ttl_sec",
    "includeEmailInRedirect",
    "custom_domain",
    "factor",
    "allow_multiple_enrollments",
    "mark_email_as_verified",
    "code",
];
const USER_FIELDS: [&str; 4] = ["user_id", "email", "name", "locale"];

fn any_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(TOP_FIELDS.iter().chain(&USER_FIELDS).copied().collect::<Vec<_>>())
            .prop_map(str::to_string),
        1 => "[a-zA-Z_]{0,12}",
    ]
}

/// A value for a real field: usually of the right type (and often valid), sometimes anything.
fn field_value(field: &'static str) -> BoxedStrategy<Value> {
    let right: BoxedStrategy<Value> = match field {
        "version" => prop_oneof![Just(1u64), any::<u64>()]
            .prop_map(Value::from)
            .boxed(),
        "id" => job_id().prop_map(Value::String).boxed(),
        "type" => prop_oneof![
            4 => kind().prop_map(|k| k.type_name().to_string()),
            1 => hostile(),
        ]
        .prop_map(Value::String)
        .boxed(),
        "user" => user_object().boxed(),
        "client_id" | "organization_id" | "user_id" => plain_id().prop_map(Value::String).boxed(),
        "email" => email().prop_map(Value::String).boxed(),
        "email_locale" | "locale" => locale_tag().prop_map(Value::String).boxed(),
        "name" => name().prop_map(Value::String).boxed(),
        "result_url" => url().prop_map(Value::String).boxed(),
        "ttl_sec" => prop_oneof![
            4 => ttl().prop_map(Value::from),
            1 => any::<i64>().prop_map(Value::from),
            1 => any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ]
        .boxed(),
        "custom_domain" => domain().prop_map(Value::String).boxed(),
        "code" => prop_oneof![4 => code(), 1 => hostile()]
            .prop_map(Value::String)
            .boxed(),
        "factor" => prop_oneof![
            4 => factor().prop_map(|f| f.as_str().to_string()),
            1 => hostile(),
        ]
        .prop_map(Value::String)
        .boxed(),
        _ => any::<bool>().prop_map(Value::Bool).boxed(),
    };
    prop_oneof![30 => right, 1 => any_json()].boxed()
}

/// An object with a random subset of `fields` (each value from [`field_value`]) and, rarely, an
/// unknown field.
fn object_of(fields: &'static [&'static str], required: usize) -> BoxedStrategy<Value> {
    let entries: Vec<BoxedStrategy<Option<(String, Value)>>> = fields
        .iter()
        .enumerate()
        .map(|(i, &f)| {
            let present = if i < required { 0.99 } else { 0.15 };
            prop::option::weighted(
                present,
                field_value(f).prop_map(move |v| (f.to_string(), v)),
            )
            .boxed()
        })
        .collect();
    (
        entries,
        prop::option::weighted(0.05, ("[a-zA-Z_]{1,10}", any_json())),
    )
        .prop_map(|(entries, extra)| {
            let mut map: Map<String, Value> = entries.into_iter().flatten().collect();
            if let Some((k, v)) = extra {
                map.insert(k, v);
            }
            Value::Object(map)
        })
        .boxed()
}

fn user_object() -> BoxedStrategy<Value> {
    object_of(&USER_FIELDS, 2)
}

/// A job-shaped object: `id`, `type` and `user` nearly always there, the rest now and then.
fn job_object() -> BoxedStrategy<Value> {
    // TOP_FIELDS minus "version" up front so the three required ones come first.
    const ORDERED: [&str; 15] = [
        "id",
        "type",
        "user",
        "version",
        "client_id",
        "organization_id",
        "email_locale",
        "result_url",
        "ttl_sec",
        "includeEmailInRedirect",
        "custom_domain",
        "factor",
        "allow_multiple_enrollments",
        "mark_email_as_verified",
        "code",
    ];
    object_of(&ORDERED, 3)
}

/// Byte soup that looks like JSON often enough to get past the tokenizer.
fn json_ish_bytes() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        prop::sample::select(vec![
            "{",
            "}",
            "[",
            "]",
            ":",
            ",",
            "\"",
            "\"id\"",
            "\"type\"",
            "\"user\"",
            "\"email\"",
            "\"welcome_email\"",
            "null",
            "true",
            "1e400",
            "-0",
            "18446744073709551616",
            "\\u0000",
            "\\ud800",
            "\\udc00\\ud800",
            "\\\"",
            "\r\n",
            " ",
            "\u{feff}",
            "\u{0}",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        any::<u8>().prop_map(|b| vec![b]),
    ];
    prop::collection::vec(token, 0..64).prop_map(|v| v.concat())
}

/// Every builder setter's argument; `None` leaves the setter uncalled.
#[derive(Debug, Clone)]
struct BuilderInput {
    kind: JobKind,
    user_id: String,
    email: String,
    id: Option<String>,
    name: Option<String>,
    user_locale: Option<String>,
    email_locale: Option<String>,
    client_id: Option<String>,
    organization_id: Option<String>,
    result_url: Option<String>,
    ttl_sec: Option<u64>,
    include_email: Option<bool>,
    custom_domain: Option<String>,
    factor: Option<EnrollmentFactor>,
    allow_multiple: Option<bool>,
    mark_verified: Option<bool>,
    code: Option<String>,
    /// Leave out what the kind or the cross-field rules forbid, so most inputs build.
    tidy: bool,
}

impl BuilderInput {
    fn build(mut self) -> Result<EmailJob, JobError> {
        if self.tidy {
            if self.kind != JobKind::Enrollment {
                self.factor = None;
                self.allow_multiple = None;
            }
            if self.kind != JobKind::PasswordChange {
                self.mark_verified = None;
            }
            if self.kind == JobKind::Welcome {
                self.result_url = None;
                self.ttl_sec = None;
                self.include_email = None;
            }
            if self.kind == JobKind::MfaCode {
                self.result_url = None;
                self.include_email = None;
                self.ttl_sec = self
                    .ttl_sec
                    .map(|t| t.clamp(1, herald_domain::MAX_CODE_TTL_SEC));
                self.code.get_or_insert_with(|| "123456".into());
            } else {
                self.code = None;
            }
            if self.organization_id.is_some()
                || (self.client_id.is_some() && self.kind != JobKind::PasswordChange)
            {
                self.result_url = None;
            }
        }
        let mut b = EmailJob::builder(self.kind, self.user_id, self.email);
        if let Some(v) = self.id {
            b = b.id(v);
        }
        if let Some(v) = self.name {
            b = b.name(v);
        }
        if let Some(v) = self.user_locale {
            b = b.user_locale(v);
        }
        if let Some(v) = self.email_locale {
            b = b.email_locale(v);
        }
        if let Some(v) = self.client_id {
            b = b.client_id(v);
        }
        if let Some(v) = self.organization_id {
            b = b.organization_id(v);
        }
        if let Some(v) = self.result_url {
            b = b.result_url(v);
        }
        if let Some(v) = self.ttl_sec {
            b = b.ttl_sec(v);
        }
        if let Some(v) = self.include_email {
            b = b.include_email_in_redirect(v);
        }
        if let Some(v) = self.custom_domain {
            b = b.custom_domain(v);
        }
        if let Some(v) = self.factor {
            b = b.factor(v);
        }
        if let Some(v) = self.allow_multiple {
            b = b.allow_multiple_enrollments(v);
        }
        if let Some(v) = self.mark_verified {
            b = b.mark_email_as_verified(v);
        }
        if let Some(v) = self.code {
            b = b.code(v);
        }
        b.build()
    }
}

/// Boxed in groups: one flat 16-tuple of strategies overflows the test thread's stack in debug.
fn builder_input() -> BoxedStrategy<BuilderInput> {
    let who = (
        kind(),
        plain_id(),
        email(),
        prop::option::of(job_id()),
        prop::option::of(name()),
        prop::option::of(locale_tag()),
        prop::option::of(locale_tag()),
    )
        .boxed();
    let ids = (
        prop::option::weighted(0.25, plain_id()),
        prop::option::weighted(0.25, plain_id()),
        prop::option::weighted(0.3, domain()),
        prop::option::weighted(0.3, code()),
    )
        .boxed();
    let ticket = (
        prop::option::weighted(0.3, url()),
        prop::option::of(ttl()),
        prop::option::of(any::<bool>()),
        prop::option::weighted(0.2, factor()),
        prop::option::weighted(0.2, any::<bool>()),
        prop::option::weighted(0.2, any::<bool>()),
    )
        .boxed();
    (who, ids, ticket, prop::bool::weighted(0.8))
        .prop_map(
            |(
                (kind, user_id, email, id, name, user_locale, email_locale),
                (client_id, organization_id, custom_domain, code),
                (result_url, ttl_sec, include_email, factor, allow_multiple, mark_verified),
                tidy,
            )| BuilderInput {
                kind,
                user_id,
                email,
                id,
                name,
                user_locale,
                email_locale,
                client_id,
                organization_id,
                result_url,
                ttl_sec,
                include_email,
                custom_domain,
                factor,
                allow_multiple,
                mark_verified,
                code,
                tidy,
            },
        )
        .boxed()
}

// ----------------------------------------------------------------------------------------------
// Example bodies and their mutations
// ----------------------------------------------------------------------------------------------

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples")
}

/// The valid examples (top level) and the invalid ones (`invalid/`), parsed.
fn examples() -> &'static [Value] {
    static EXAMPLES: std::sync::OnceLock<Vec<Value>> = std::sync::OnceLock::new();
    EXAMPLES.get_or_init(|| {
        let mut out = Vec::new();
        for dir in [examples_dir(), examples_dir().join("invalid")] {
            let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .map(|e| e.expect("a directory entry").path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect();
            paths.sort();
            for path in paths {
                let text = std::fs::read_to_string(&path).expect("readable example");
                out.push(serde_json::from_str(&text).expect("example is JSON"));
            }
        }
        assert!(out.len() >= 5, "too few examples: {}", out.len());
        out
    })
}

/// One edit of an example. Indexes pick among what is there, modulo its size.
#[derive(Debug, Clone)]
enum Mutation {
    Drop(usize),
    Replace(usize, Value),
    Insert(String, Value),
    AppendToString(usize, String),
    Huge(usize, char, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => any::<usize>().prop_map(Mutation::Drop),
        3 => (any::<usize>(), any_json()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        1 => (any_key(), any_json()).prop_map(|(k, v)| Mutation::Insert(k, v)),
        3 => (any::<usize>(), hostile()).prop_map(|(i, s)| Mutation::AppendToString(i, s)),
        1 => (any::<usize>(), any::<char>(), 1usize..80_000)
            .prop_map(|(i, c, n)| Mutation::Huge(i, c, n)),
    ]
}

/// The JSON pointers of every field in `value` (top level and `user`).
fn field_pointers(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(map) = value.as_object() {
        for (k, v) in map {
            out.push(format!("/{k}"));
            if let Some(inner) = v.as_object() {
                out.extend(inner.keys().map(|ik| format!("/{k}/{ik}")));
            }
        }
    }
    out
}

fn apply(value: &mut Value, m: &Mutation) {
    let pointers = field_pointers(value);
    let pick = |i: usize| pointers.get(i % pointers.len().max(1)).cloned();
    let split = |p: &str| {
        let (parent, key) = p.rsplit_once('/').expect("a pointer has a slash");
        (parent.to_string(), key.to_string())
    };
    match m {
        Mutation::Drop(i) => {
            if let Some(p) = pick(*i) {
                let (parent, key) = split(&p);
                if let Some(obj) = value.pointer_mut(&parent).and_then(Value::as_object_mut) {
                    obj.remove(&key);
                }
            }
        }
        Mutation::Replace(i, v) => {
            if let Some(slot) = pick(*i).and_then(|p| value.pointer_mut(&p)) {
                *slot = v.clone();
            }
        }
        Mutation::Insert(k, v) => {
            if let Some(obj) = value.as_object_mut() {
                obj.insert(k.clone(), v.clone());
            }
        }
        Mutation::AppendToString(i, s) => {
            if let Some(slot) = pick(*i).and_then(|p| value.pointer_mut(&p)) {
                match slot {
                    Value::String(old) => old.push_str(s),
                    other => *other = Value::String(s.clone()),
                }
            }
        }
        Mutation::Huge(i, c, n) => {
            if let Some(slot) = pick(*i).and_then(|p| value.pointer_mut(&p)) {
                *slot = Value::String(c.to_string().repeat(*n));
            }
        }
    }
}

/// A byte-level edit of a serialized body.
#[derive(Debug, Clone)]
enum ByteEdit {
    Truncate(usize),
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
}

fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    prop_oneof![
        any::<usize>().prop_map(ByteEdit::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| ByteEdit::Flip(i, b)),
        (any::<usize>(), json_ish_bytes()).prop_map(|(i, b)| ByteEdit::Insert(i, b)),
    ]
}

fn edit_bytes(bytes: &mut Vec<u8>, edit: &ByteEdit) {
    let len = bytes.len();
    match edit {
        ByteEdit::Truncate(i) => bytes.truncate(i % (len + 1)),
        ByteEdit::Flip(i, b) => {
            if len > 0 {
                bytes[i % len] ^= b;
            }
        }
        ByteEdit::Insert(i, ins) => {
            let at = i % (len + 1);
            bytes.splice(at..at, ins.iter().copied());
        }
    }
}

// ----------------------------------------------------------------------------------------------
// Properties
// ----------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(512))]

    /// Arbitrary bytes, under the real limit and under tiny ones.
    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512), max in prop_oneof![Just(LIMIT), 0usize..64]) {
        check_body(&body, max)?;
    }

    #[test]
    fn json_ish_bytes_never_panic(body in json_ish_bytes()) {
        check_body(&body, LIMIT)?;
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Any JSON value: valid JSON is never called malformed, and deep validation is reached.
    #[test]
    fn arbitrary_json_never_panics(value in any_json()) {
        let body = serde_json::to_vec(&value).expect("a Value serializes");
        check_body(&body, LIMIT)?;
    }

    /// Job-shaped objects, biased toward the real field names and types.
    #[test]
    fn job_shaped_json_never_panics(value in job_object()) {
        let body = serde_json::to_vec(&value).expect("a Value serializes");
        check_body(&body, LIMIT)?;
    }

    /// Whatever the builder accepts, the wire form gives back unchanged.
    #[test]
    fn built_jobs_round_trip(input in builder_input()) {
        match input.build() {
            Ok(job) => {
                let body = job.to_json();
                prop_assert_eq!(EmailJob::parse(&body, LIMIT), Ok(job.clone()));
                check_accepted(&job, &body)?;
            }
            Err(e) => prop_assert!(REASONS.contains(&e.reason()), "{}", e),
        }
    }

    /// The documented examples, valid and invalid, edited a few times at the JSON level.
    #[test]
    fn mutated_examples_never_panic(
        which in any::<usize>(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let all = examples();
        let mut value = all[which % all.len()].clone();
        for m in &mutations {
            apply(&mut value, m);
        }
        let body = serde_json::to_vec(&value).expect("a Value serializes");
        check_body(&body, LIMIT)?;
    }

    /// The documented examples, serialized and then edited at the byte level.
    #[test]
    fn byte_edited_examples_never_panic(
        which in any::<usize>(),
        pretty in any::<bool>(),
        edits in prop::collection::vec(byte_edit(), 1..4),
    ) {
        let all = examples();
        let value = &all[which % all.len()];
        let mut body = if pretty {
            serde_json::to_vec_pretty(value)
        } else {
            serde_json::to_vec(value)
        }
        .expect("a Value serializes");
        for e in &edits {
            edit_bytes(&mut body, e);
        }
        check_body(&body, LIMIT)?;
    }
}

/// The valid examples are accepted, so the mutation properties start from accepted bodies.
#[test]
fn valid_examples_are_accepted_and_satisfy_the_invariants() {
    let dir = examples_dir();
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("docs/examples") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let body = std::fs::read(&path).expect("readable");
        let job = EmailJob::parse(&body, LIMIT)
            .unwrap_or_else(|e| panic!("{} is refused: {e}", path.display()));
        check_accepted(&job, &body).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        seen += 1;
    }
    assert!(seen >= 5);
}

/// serde_json's recursion limit turns very deep nesting into an error, not a stack overflow.
#[test]
fn deep_nesting_is_refused_not_a_crash() {
    for open in ["[", "{\"id\":", "{\"user\":"] {
        let body = open.repeat(LIMIT / open.len());
        let err = EmailJob::parse(body.as_bytes(), LIMIT).expect_err("not a job");
        assert!(REASONS.contains(&err.reason()), "{err}");
        assert_eq!(EmailJob::peek_id(body.as_bytes()), None);
    }
}

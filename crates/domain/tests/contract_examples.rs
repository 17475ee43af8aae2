//! Contract v1 has three statements of the same rules: the Rust parser (`EmailJob::parse`), the JSON
//! Schema in `schemas/email-job.v1.json`, and the examples in `docs/examples/`. These tests keep them
//! in step: every valid example must pass both validators, every invalid example must be refused by
//! both (for the reason it was written for), and a corpus of edge cases must get the same verdict
//! from both, except for the divergences listed in `edge_cases_agree`, which JSON Schema cannot
//! express.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use herald_domain::{EmailJob, JobError, JobKind};
use jsonschema::Validator;
use serde_json::{Value, json};

const LIMIT: usize = 64 * 1024;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn examples_dir() -> PathBuf {
    repo_root().join("docs/examples")
}

fn schema() -> Value {
    let path = repo_root().join("schemas/email-job.v1.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The schema as most validators apply it: `format` is an annotation only.
fn validator() -> Validator {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&schema())
        .expect("the schema compiles")
}

/// The schema with `format` asserted, as strict validators may apply it.
fn format_asserting_validator() -> Validator {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema())
        .expect("the schema compiles")
}

fn schema_errors(validator: &Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{} (at {:?})", e, e.instance_path.as_str()))
        .collect()
}

/// The `.json` files directly in `dir`, sorted.
fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no examples in {}", dir.display());
    files
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

fn read(path: &Path) -> (Vec<u8>, Value) {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    (bytes, value)
}

fn report(failures: &[String]) {
    if !failures.is_empty() {
        panic!(
            "{} disagreement(s):\n  - {}",
            failures.len(),
            failures.join("\n  - ")
        );
    }
}

#[test]
fn the_schema_is_a_documented_draft_2020_12_schema() {
    let schema = schema();
    jsonschema::meta::validate(&schema).expect("the schema is valid against its meta-schema");
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert!(schema["$id"].is_string() && schema["title"].is_string());
    assert!(schema["examples"].as_array().is_some_and(|e| !e.is_empty()));

    // Every object is closed, and every property carries a description.
    let objects = [&schema, &schema["$defs"]["user"]];
    let mut undocumented = Vec::new();
    for object in objects {
        assert_eq!(object["additionalProperties"], json!(false), "{object}");
        for (name, property) in object["properties"].as_object().expect("properties") {
            if !property["description"].is_string() {
                undocumented.push(name.clone());
            }
        }
    }
    assert!(
        undocumented.is_empty(),
        "properties without a description: {undocumented:?}"
    );

    // The schema names exactly the wire fields the parser knows.
    let fields: BTreeSet<&str> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let wire = serde_json::to_value(herald_domain::WireJob {
        version: Some(1),
        client_id: Some(String::new()),
        organization_id: Some(String::new()),
        email_locale: Some(String::new()),
        result_url: Some(String::new()),
        ttl_sec: Some(0),
        include_email_in_redirect: Some(false),
        custom_domain: Some(String::new()),
        factor: Some(herald_domain::EnrollmentFactor::Otp),
        allow_multiple_enrollments: Some(false),
        mark_email_as_verified: Some(false),
        code: Some(herald_domain::WireCode::new("000000")),
        ..Default::default()
    })
    .unwrap();
    let wire_fields: BTreeSet<&str> = wire
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(fields, wire_fields);
}

#[test]
fn valid_examples_pass_the_parser_and_the_schema() {
    let validator = validator();
    let strict = format_asserting_validator();
    let mut failures = Vec::new();
    let mut kinds = BTreeSet::new();

    for path in json_files(&examples_dir()) {
        let name = file_name(&path);
        let (bytes, value) = read(&path);
        let schema_errs = schema_errors(&validator, &value);
        let strict_errs = schema_errors(&strict, &value);
        match EmailJob::parse(&bytes, LIMIT) {
            Err(e) => failures.push(format!(
                "{name}: the Rust parser refuses it ({}: {e}); the schema {}",
                e.reason(),
                if schema_errs.is_empty() {
                    "accepts it".to_string()
                } else {
                    format!("refuses it too: {schema_errs:?}")
                }
            )),
            Ok(job) => {
                kinds.insert(job.kind());
                if !schema_errs.is_empty() {
                    failures.push(format!(
                        "{name}: the parser accepts it but the schema refuses it: {schema_errs:?}"
                    ));
                } else if !strict_errs.is_empty() {
                    failures.push(format!(
                        "{name}: the schema with format assertion refuses it: {strict_errs:?}"
                    ));
                }
                // What Herald itself writes (producers, the CLI) is valid under the schema too.
                let written = job.to_json();
                let written_value: Value = serde_json::from_slice(&written).unwrap();
                let written_errs = schema_errors(&strict, &written_value);
                if !written_errs.is_empty() {
                    failures.push(format!(
                        "{name}: EmailJob::to_json() gives {} which the schema refuses: {written_errs:?}",
                        String::from_utf8_lossy(&written)
                    ));
                }
                match EmailJob::parse(&written, LIMIT) {
                    Ok(again) if again == job => {}
                    other => failures.push(format!(
                        "{name}: to_json() does not parse back to the same job: {other:?}"
                    )),
                }
            }
        }
    }
    report(&failures);
    let missing: Vec<_> = JobKind::ALL.iter().filter(|k| !kinds.contains(k)).collect();
    assert!(missing.is_empty(), "no valid example for {missing:?}");
}

/// Each invalid example, the `x-herald-reason` the parser must give it, and a fragment of the
/// message: this proves it is refused for the rule it illustrates, not for a typo.
const INVALID: &[(&str, &str, &str)] = &[
    ("bad-id-chars.json", "invalid_job", "id may only contain"),
    ("bad-type.json", "unknown_type", "unknown job type \"sms\""),
    (
        "blank-user-id.json",
        "invalid_job",
        "user.user_id must not be empty",
    ),
    (
        "client-id-not-a-string.json",
        "invalid_job",
        "invalid type: integer `42`, expected a string",
    ),
    (
        "code-on-welcome.json",
        "invalid_job",
        "code is only allowed on mfa_code_email jobs, not on welcome_email",
    ),
    (
        "custom-domain-with-scheme.json",
        "invalid_job",
        "custom_domain",
    ),
    (
        "email-not-an-address.json",
        "invalid_job",
        "user.email is not a valid email address",
    ),
    (
        "email-with-display-name.json",
        "invalid_job",
        "user.email is not a valid email address",
    ),
    (
        "enrollment-result-url-with-organization-id.json",
        "invalid_job",
        "result_url cannot be specified when using organization_id",
    ),
    (
        "factor-on-welcome.json",
        "invalid_job",
        "factor is only allowed on enrollment_email",
    ),
    ("id-too-long.json", "invalid_job", "id must be at most 200"),
    (
        "include-email-in-redirect-snake-case.json",
        "invalid_job",
        "unknown field `include_email_in_redirect`",
    ),
    (
        "javascript-result-url.json",
        "invalid_job",
        "result_url must be an absolute http or https URL",
    ),
    (
        "mark-email-as-verified-on-verification.json",
        "invalid_job",
        "mark_email_as_verified is only allowed on password_change_email",
    ),
    (
        "mfa-code-as-number.json",
        "invalid_job",
        "code must be a JSON string of six ASCII digits",
    ),
    (
        "mfa-code-five-digits.json",
        "invalid_job",
        "code must be exactly 6 ASCII digits",
    ),
    (
        "mfa-code-missing.json",
        "invalid_job",
        "code is required on mfa_code_email jobs",
    ),
    (
        "mfa-code-ttl-too-large.json",
        "invalid_job",
        "ttl_sec must be from 1 to 3600 seconds on mfa_code_email jobs",
    ),
    (
        "mfa-code-with-result-url.json",
        "invalid_job",
        "result_url is not allowed on mfa_code_email jobs",
    ),
    ("missing-email.json", "invalid_job", "missing field `email`"),
    ("missing-id.json", "invalid_job", "missing field `id`"),
    (
        "password-change-result-url-with-organization-id.json",
        "invalid_job",
        "result_url cannot be specified when using organization_id",
    ),
    (
        "relative-result-url.json",
        "invalid_job",
        "result_url is not a valid URL",
    ),
    (
        "ttl-as-string.json",
        "invalid_job",
        "invalid type: string \"3600\"",
    ),
    (
        "ttl-negative.json",
        "invalid_job",
        "invalid value: integer `-1`",
    ),
    (
        "ttl-on-welcome.json",
        "invalid_job",
        "ttl_sec is not allowed on welcome_email",
    ),
    (
        "ttl-too-large.json",
        "invalid_job",
        "ttl_sec must be at most 31536000",
    ),
    (
        "unknown-factor.json",
        "invalid_job",
        "unknown variant `sms`",
    ),
    ("unknown-field.json", "invalid_job", "unknown field `ttl`"),
    (
        "unknown-user-field.json",
        "invalid_job",
        "unknown field `email_verified`",
    ),
    (
        "unsupported-version.json",
        "invalid_job",
        "version 2 is not supported",
    ),
    (
        "verification-result-url-with-client-id.json",
        "invalid_job",
        "result_url cannot be specified when using client_id",
    ),
];

#[test]
fn invalid_examples_are_refused_by_the_parser_and_the_schema() {
    let validator = validator();
    let mut failures = Vec::new();
    let files = json_files(&examples_dir().join("invalid"));

    let on_disk: BTreeSet<String> = files.iter().map(|p| file_name(p)).collect();
    let listed: BTreeSet<String> = INVALID.iter().map(|(f, _, _)| f.to_string()).collect();
    for f in on_disk.difference(&listed) {
        failures.push(format!(
            "{f}: not listed in INVALID (add its expected reason)"
        ));
    }
    for f in listed.difference(&on_disk) {
        failures.push(format!(
            "{f}: listed in INVALID but missing from docs/examples/invalid"
        ));
    }

    for path in &files {
        let name = file_name(path);
        let (bytes, value) = read(path);
        let schema_errs = schema_errors(&validator, &value);
        let rust = EmailJob::parse(&bytes, LIMIT);
        match (&rust, schema_errs.is_empty()) {
            (Ok(_), true) => {
                failures.push(format!("{name}: both the parser and the schema accept it"))
            }
            (Ok(_), false) => failures.push(format!(
                "{name}: the schema refuses it ({schema_errs:?}) but the Rust parser accepts it"
            )),
            (Err(e), true) => failures.push(format!(
                "{name}: the Rust parser refuses it ({}: {e}) but the schema accepts it",
                e.reason()
            )),
            (Err(_), false) => {}
        }
        if let (Err(e), Some((_, reason, fragment))) =
            (&rust, INVALID.iter().find(|(f, _, _)| *f == name))
            && (e.reason() != *reason || !e.to_string().contains(fragment))
        {
            failures.push(format!(
                "{name}: refused as {}: {e:?}, expected {reason} with {fragment:?}",
                e.reason()
            ));
        }
    }
    report(&failures);
}

#[test]
fn the_schema_examples_are_valid_jobs() {
    let schema = schema();
    let validator = format_asserting_validator();
    for (i, example) in schema["examples"].as_array().unwrap().iter().enumerate() {
        let errs = schema_errors(&validator, example);
        assert!(
            errs.is_empty(),
            "schema example {i} fails the schema: {errs:?}"
        );
        let bytes = serde_json::to_vec(example).unwrap();
        if let Err(e) = EmailJob::parse(&bytes, LIMIT) {
            panic!("schema example {i} is refused by the parser: {e}");
        }
    }
}

/// Sets (or, with `None`, removes) the field at `pointer` (`/a/b`) in a copy of `job`.
fn with(job: &Value, pointer: &str, value: Option<Value>) -> Value {
    let mut job = job.clone();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let target = job.pointer_mut(parent).unwrap().as_object_mut().unwrap();
    match value {
        Some(v) => target.insert(key.to_string(), v),
        None => target.remove(key),
    };
    job
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Both accept.
    Valid,
    /// Both refuse.
    Invalid,
    /// Only the Rust parser accepts: the schema is stricter than Herald (safe for producers).
    RustOnly,
    /// Only the schema accepts: a job that validates can still be dead-lettered.
    SchemaOnly,
}

struct Case {
    what: String,
    body: Vec<u8>,
    expect: Expect,
}

fn case(what: impl Into<String>, job: Value, expect: Expect) -> Case {
    Case {
        what: what.into(),
        body: serde_json::to_vec(&job).unwrap(),
        expect,
    }
}

fn field_cases(cases: &mut Vec<Case>, base: &Value, pointer: &str, values: Vec<(Value, Expect)>) {
    for (value, expect) in values {
        let what = format!("{pointer} = {value}");
        cases.push(case(what, with(base, pointer, Some(value)), expect));
    }
}

fn repeat(s: &str, n: usize) -> Value {
    Value::String(s.repeat(n))
}

#[test]
fn edge_cases_agree() {
    use Expect::*;
    let user = json!({"user_id": "auth0|123", "email": "ana@example.com"});
    let verify = json!({"id": "j1", "type": "verification_email", "user": user});
    let enroll = json!({"id": "j1", "type": "enrollment_email", "user": user});
    let reset = json!({"id": "j1", "type": "password_change_email", "user": user});
    let welcome = json!({"id": "j1", "type": "welcome_email", "user": user});
    let mut cases = Vec::new();

    field_cases(
        &mut cases,
        &welcome,
        "/id",
        vec![
            (json!("a"), Valid),
            (json!("A-Z_0.9-x"), Valid),
            (json!("a:b"), Invalid),
            (json!(".a"), Invalid),
            (json!("a..b"), Invalid),
            (repeat("x", 200), Valid),
            (repeat("x", 201), Invalid),
            (json!(""), Invalid),
            (json!("a b"), Invalid),
            (json!("a>b"), Invalid),
            (json!("a/b"), Invalid),
            (json!("a@b"), Invalid),
            (json!("caf\u{e9}"), Invalid),
            (json!("a\n"), Invalid),
            (json!(7), Invalid),
        ],
    );
    field_cases(
        &mut cases,
        &welcome,
        "/type",
        vec![
            (json!("Welcome_Email"), Invalid),
            (json!("welcome-email"), Invalid),
            (json!(""), Invalid),
            (json!(null), Invalid),
        ],
    );
    field_cases(
        &mut cases,
        &welcome,
        "/version",
        vec![
            (json!(1), Valid),
            (json!(0), Invalid),
            (json!(2), Invalid),
            (json!("1"), Invalid),
            (json!(true), Invalid),
            // JSON Schema compares numbers by value; serde refuses a float where it wants an integer.
            (json!(1.0), SchemaOnly),
            (json!(null), Invalid),
        ],
    );
    cases.push(case(
        "/user removed",
        with(&welcome, "/user", None),
        Invalid,
    ));
    cases.push(case(
        "/user = string",
        with(&welcome, "/user", Some(json!("u1"))),
        Invalid,
    ));
    cases.push(case(
        "/user/user_id removed",
        with(&welcome, "/user/user_id", None),
        Invalid,
    ));

    field_cases(
        &mut cases,
        &welcome,
        "/user/user_id",
        vec![
            (json!("google-oauth2|1234"), Valid),
            (json!("a"), Valid),
            (json!(" padded "), Valid),
            (repeat("x", 255), Valid),
            (repeat("x", 256), Invalid),
            (json!(""), Invalid),
            (json!("   "), Invalid),
            (json!("\u{a0}\u{3000}"), Invalid),
            (json!("u\n1"), Invalid),
            (json!("u\u{7f}"), Invalid),
            (json!("u\u{85}"), Invalid),
            (json!(123), Invalid),
            // Rust counts UTF-8 bytes (255), JSON Schema counts characters: 128 'é' are 256 bytes.
            (repeat("\u{e9}", 128), SchemaOnly),
        ],
    );
    field_cases(
        &mut cases,
        &welcome,
        "/user/email",
        vec![
            (json!("a@example.com"), Valid),
            (json!("first.last+tag@mail.example.co.uk"), Valid),
            (json!("o'brien@example.ie"), Valid),
            (json!("a@localhost"), Valid),
            (json!("x@xn--caf-dma.example"), Valid),
            (json!("not-an-email"), Invalid),
            (json!("a@"), Invalid),
            (json!("@example.com"), Invalid),
            (json!("a@@example.com"), Invalid),
            (json!("a b@example.com"), Invalid),
            (json!("a..b@example.com"), Invalid),
            (json!(".a@example.com"), Invalid),
            (json!("a@example..com"), Invalid),
            (json!("a@-example.com"), Invalid),
            (json!("a@example.com."), Invalid),
            (json!("Ana <a@example.com>"), Invalid),
            (json!("<a@example.com>"), Invalid),
            (json!("a@[127.0.0.1]"), Invalid),
            (json!("a@example.com\r\nBcc: b@example.com"), Invalid),
            (
                Value::String(format!("{}@example.com", "x".repeat(65))),
                Invalid,
            ),
            (Value::String(format!("a@{}.com", "x".repeat(64))), Invalid),
            (
                Value::String(format!("{}@{}.com", "x".repeat(64), "y".repeat(63))),
                Valid,
            ),
            (
                Value::String(format!("a@{}.com", vec!["y".repeat(63); 4].join("."))),
                Invalid,
            ),
            // Forms Herald accepts that the schema's dot-atom ASCII pattern does not.
            (json!("\"quoted local\"@example.com"), RustOnly),
            (json!("jos\u{e9}@example.com"), RustOnly),
            (json!("a@exa_mple.com"), RustOnly),
        ],
    );
    field_cases(
        &mut cases,
        &welcome,
        "/user/name",
        vec![
            (json!("Ana Souza"), Valid),
            (json!(""), Valid),
            (json!("   "), Valid),
            (json!("<script>alert(1)</script>"), Valid),
            (json!("Zo\u{eb} \u{1f600}"), Valid),
            (repeat("x", 300), Valid),
            (repeat("x", 301), Invalid),
            // Cleaned into one line, not refused: a display name never withholds an email.
            (json!("Eve\r\nBcc: x@evil.test"), Valid),
            (json!("tab\there"), Valid),
            (json!(null), Invalid),
            (repeat("\u{e9}", 151), SchemaOnly),
        ],
    );
    for pointer in ["/user/locale", "/email_locale"] {
        field_cases(
            &mut cases,
            &welcome,
            pointer,
            vec![
                (json!("fr-CA"), Valid),
                (json!("pt_BR"), Valid),
                (json!("!!not a tag!!"), Valid),
                (json!(""), Valid),
                (repeat("x", 64), Valid),
                (repeat("x", 65), Invalid),
                (json!("fr\n"), Invalid),
                (json!(["fr"]), Invalid),
                (json!(null), Invalid),
                (repeat("\u{e9}", 33), SchemaOnly),
            ],
        );
    }
    for pointer in ["/client_id", "/organization_id"] {
        field_cases(
            &mut cases,
            &welcome,
            pointer,
            vec![
                (json!("c1"), Valid),
                (repeat("x", 128), Valid),
                (repeat("x", 129), Invalid),
                (json!(""), Invalid),
                (json!(" "), Invalid),
                (json!("c\n1"), Invalid),
                (json!(null), Invalid),
                (repeat("\u{e9}", 65), SchemaOnly),
            ],
        );
    }
    // result_url on the one kind that takes it without conditions.
    field_cases(
        &mut cases,
        &reset,
        "/result_url",
        vec![
            (json!("https://app.example.com/done"), Valid),
            (json!("http://app.example.com"), Valid),
            (json!("HTTPS://APP.EXAMPLE.COM/Done"), Valid),
            (json!("https://localhost:3000/cb"), Valid),
            (json!("https://app.example.com:65535/"), Valid),
            (json!("https://app.example.com:/"), RustOnly),
            (json!("https://203.0.113.7/cb"), Valid),
            (json!("https://user:pw@app.example.com/"), Valid),
            (json!("https://my_app.example.com/"), Valid),
            (
                json!("https://app.example.com/p/a;b@c?q=a%20b&r=/x?#frag/?"),
                Valid,
            ),
            (json!("https://app.example.com/?q=%zz"), RustOnly),
            (json!("https://app.example.com/caf\u{e9}"), RustOnly),
            (json!("https://app.example.com/a\\b"), RustOnly),
            (json!("https://app.example.com/a#b#c"), RustOnly),
            (json!("https://us%zz@app.example.com/"), RustOnly),
            (json!("https://app.example.com:65536/"), Invalid),
            (json!("https://1.2.3.256/"), Invalid),
            (json!("https://app.123/"), Invalid),
            (json!("ftp://app.example.com/"), Invalid),
            (json!("javascript:alert(1)"), Invalid),
            (json!("mailto:a@example.com"), Invalid),
            (json!("https://"), Invalid),
            (json!("https:///path"), RustOnly),
            (json!("//app.example.com/"), Invalid),
            (json!("/done"), Invalid),
            (json!(""), Invalid),
            (json!("https://app example.com/"), Invalid),
            // The WHATWG parser Rust uses is lenient where the schema is not.
            (json!("https:app.example.com"), RustOnly),
            (json!(" https://app.example.com/"), RustOnly),
            (json!("https://app.example.com/a b"), RustOnly),
            (json!("https://app.example.com/a\nb"), Invalid),
            (json!("https://[::1]:8080/"), RustOnly),
            (json!("https://-app.example.com/"), RustOnly),
            (json!("https://app..example.com/"), RustOnly),
            (json!(null), Invalid),
        ],
    );
    field_cases(
        &mut cases,
        &verify,
        "/ttl_sec",
        vec![
            (json!(0), Valid),
            (json!(1), Valid),
            (json!(31_536_000), Valid),
            (json!(31_536_001), Invalid),
            (json!(-1), Invalid),
            (json!(1.5), Invalid),
            (json!("60"), Invalid),
            (json!(true), Invalid),
            (json!(u64::MAX), Invalid),
            (json!(60.0), SchemaOnly),
            (json!(null), Invalid),
        ],
    );
    field_cases(
        &mut cases,
        &verify,
        "/includeEmailInRedirect",
        vec![
            (json!(true), Valid),
            (json!(false), Valid),
            (json!("true"), Invalid),
            (json!(1), Invalid),
            (json!(null), Invalid),
        ],
    );
    field_cases(
        &mut cases,
        &verify,
        "/custom_domain",
        vec![
            (json!("login.acme.test"), Valid),
            (json!("Login.Acme.Test"), Valid),
            (json!("a.b"), Valid),
            (json!("127.0.0.1"), Valid),
            (json!("xn--caf-dma.example"), Valid),
            (Value::String(format!("{}.test", "x".repeat(63))), Valid),
            (Value::String(format!("{}.test", "x".repeat(64))), Invalid),
            (Value::String(vec!["x".repeat(63); 4].join(".")), Valid),
            (
                Value::String(format!(
                    "{}.{}.a",
                    vec!["x".repeat(63); 3].join("."),
                    "x".repeat(62)
                )),
                Invalid,
            ),
            (json!("ab"), Invalid),
            (json!("acme"), Invalid),
            (json!("acme.test."), Invalid),
            (json!(".acme.test"), Invalid),
            (json!("-a.test"), Invalid),
            (json!("a-.test"), Invalid),
            (json!("a_b.test"), Invalid),
            (json!("acme.test:443"), Invalid),
            (json!("https://acme.test"), Invalid),
            (json!("acme.test/path"), Invalid),
            (json!("caf\u{e9}.test"), Invalid),
            (json!("a b.test"), Invalid),
            // Rust trims surrounding whitespace before checking; the schema wants the bare name.
            (json!(" acme.test "), RustOnly),
            (json!(null), Invalid),
        ],
    );
    for factor in [
        "push-notification",
        "phone",
        "email",
        "otp",
        "webauthn-roaming",
        "webauthn-platform",
    ] {
        cases.push(case(
            format!("enrollment factor {factor}"),
            with(&enroll, "/factor", Some(json!(factor))),
            Valid,
        ));
    }
    field_cases(
        &mut cases,
        &enroll,
        "/factor",
        vec![
            (json!("OTP"), Invalid),
            (json!("push_notification"), Invalid),
            (json!(""), Invalid),
            (json!(null), Invalid),
        ],
    );
    field_cases(
        &mut cases,
        &enroll,
        "/allow_multiple_enrollments",
        vec![
            (json!(true), Valid),
            (json!("yes"), Invalid),
            (json!(null), Invalid),
        ],
    );
    field_cases(
        &mut cases,
        &reset,
        "/mark_email_as_verified",
        vec![
            (json!(false), Valid),
            (json!(0), Invalid),
            (json!(null), Invalid),
        ],
    );

    // Kind-specific fields, and the result_url conflicts, on every kind.
    let url = json!("https://app.example.com/done");
    for (base, kind) in [
        (&verify, "verification"),
        (&enroll, "enrollment"),
        (&reset, "password_change"),
        (&welcome, "welcome"),
    ] {
        let on = |field: &str| if kind == field { Valid } else { Invalid };
        cases.push(case(
            format!("{kind}: factor"),
            with(base, "/factor", Some(json!("otp"))),
            on("enrollment"),
        ));
        cases.push(case(
            format!("{kind}: allow_multiple_enrollments"),
            with(base, "/allow_multiple_enrollments", Some(json!(false))),
            on("enrollment"),
        ));
        cases.push(case(
            format!("{kind}: mark_email_as_verified"),
            with(base, "/mark_email_as_verified", Some(json!(false))),
            on("password_change"),
        ));
        let ticket = if kind == "welcome" { Invalid } else { Valid };
        cases.push(case(
            format!("{kind}: ttl_sec 0"),
            with(base, "/ttl_sec", Some(json!(0))),
            ticket,
        ));
        cases.push(case(
            format!("{kind}: includeEmailInRedirect"),
            with(base, "/includeEmailInRedirect", Some(json!(false))),
            ticket,
        ));
        cases.push(case(
            format!("{kind}: result_url"),
            with(base, "/result_url", Some(url.clone())),
            ticket,
        ));
        cases.push(case(
            format!("{kind}: client_id"),
            with(base, "/client_id", Some(json!("c1"))),
            Valid,
        ));
        cases.push(case(
            format!("{kind}: organization_id"),
            with(base, "/organization_id", Some(json!("o1"))),
            Valid,
        ));
        let with_url = with(base, "/result_url", Some(url.clone()));
        let client_conflict = if matches!(kind, "verification" | "enrollment" | "welcome") {
            Invalid
        } else {
            Valid
        };
        cases.push(case(
            format!("{kind}: result_url + client_id"),
            with(&with_url, "/client_id", Some(json!("c1"))),
            client_conflict,
        ));
        cases.push(case(
            format!("{kind}: result_url + organization_id"),
            with(&with_url, "/organization_id", Some(json!("o1"))),
            Invalid,
        ));
        // An explicit null is refused by both, so it cannot dodge the kind rules.
        cases.push(case(
            format!("{kind}: factor null"),
            with(base, "/factor", Some(Value::Null)),
            Invalid,
        ));
        cases.push(case(
            format!("{kind}: ttl_sec null"),
            with(base, "/ttl_sec", Some(Value::Null)),
            Invalid,
        ));
    }

    // Raw bodies: what a serde_json::Value cannot show the schema.
    cases.push(Case {
        what: "duplicate key".into(),
        body: br#"{"id":"j1","id":"j2","type":"welcome_email","user":{"user_id":"u1","email":"a@example.com"}}"#.to_vec(),
        expect: SchemaOnly,
    });
    cases.push(Case {
        what: "ttl_sec written with an exponent".into(),
        body: br#"{"id":"j1","type":"verification_email","ttl_sec":1e3,"user":{"user_id":"u1","email":"a@example.com"}}"#.to_vec(),
        expect: SchemaOnly,
    });

    let validator = validator();
    let strict = format_asserting_validator();
    let mut failures = Vec::new();
    for c in &cases {
        let value: Value = serde_json::from_slice(&c.body).unwrap();
        let rust: Result<EmailJob, JobError> = EmailJob::parse(&c.body, LIMIT);
        let schema_errs = schema_errors(&validator, &value);
        let got = match (rust.is_ok(), schema_errs.is_empty()) {
            (true, true) => Expect::Valid,
            (false, false) => Expect::Invalid,
            (true, false) => Expect::RustOnly,
            (false, true) => Expect::SchemaOnly,
        };
        if got != c.expect {
            let rust_says = match &rust {
                Ok(_) => "accepts".to_string(),
                Err(e) => format!("refuses ({e})"),
            };
            let schema_says = if schema_errs.is_empty() {
                "accepts".to_string()
            } else {
                format!("refuses {schema_errs:?}")
            };
            failures.push(format!(
                "{}: expected {:?}, got {got:?}; Rust {rust_says}; schema {schema_says}",
                c.what, c.expect
            ));
        }
        if got == Expect::Valid && !strict.is_valid(&value) {
            failures.push(format!(
                "{}: refused by the schema with format assertion: {:?}",
                c.what,
                schema_errors(&strict, &value)
            ));
        }
    }
    report(&failures);
}

/// A display name with a line break is no reason to withhold the email: the job is valid under
/// the parser and the schema, and the name reaches the worker on one line.
#[test]
fn a_name_with_a_line_break_is_valid_and_arrives_on_one_line() {
    let path = examples_dir().join("verification-email-name-with-line-break.json");
    let (bytes, value) = read(&path);
    assert!(schema_errors(&validator(), &value).is_empty());
    let job = herald_domain::EmailJob::parse(&bytes, 64 * 1024).expect("a valid job");
    assert_eq!(job.user.name.as_deref(), Some("Ana Bcc: x@evil.example"));
}

//! The registry against a real PostgreSQL: connecting, migrations, organizations, clients,
//! template overrides and error classification. Each test has its own database.

use std::sync::OnceLock;

use herald_domain::TemplateName;
use herald_render::{CheckedOverride, Renderer, TemplateSources};
use herald_store::{Branding, Client, Organization, OverrideScope, Store, StoreError};
use herald_testkit::db::TestDb;
use sqlx::AssertSqlSafe;

fn acme() -> Organization {
    Organization {
        id: "org_acme".into(),
        name: "acme".into(),
        display_name: "Acme Corporation".into(),
        branding: Branding {
            logo_url: Some("https://acme.example/logo.png".into()),
            primary_color: Some("#0059d6".into()),
            page_background: Some("#f4f4f4".into()),
        },
        default_locale: Some("fr".into()),
        from_address: Some("Acme <no-reply@acme.example>".into()),
    }
}

fn app() -> Client {
    Client {
        id: "app_web".into(),
        name: "Acme Web".into(),
        login_uri: Some("https://app.acme.example/login".into()),
    }
}

fn renderer() -> &'static Renderer {
    static RENDERER: OnceLock<Renderer> = OnceLock::new();
    RENDERER.get_or_init(|| Renderer::embedded().expect("the built-in templates load"))
}

/// A verify_email override that only sets the subject, checked by the renderer.
fn subject_override(subject: &str) -> CheckedOverride {
    renderer()
        .check_override(
            TemplateName::VerifyEmail,
            TemplateSources {
                subject: Some(subject.into()),
                ..TemplateSources::default()
            },
        )
        .expect("a plain subject passes the check")
}

fn org_scope() -> OverrideScope {
    OverrideScope::Organization("org_acme".into())
}

fn client_scope() -> OverrideScope {
    OverrideScope::Client("app_web".into())
}

/// The subject of the override that wins, or "default" when none does.
async fn winner(db: &TestDb, org: Option<&str>, client: Option<&str>, locale: &str) -> String {
    db.store
        .resolve_template_override(TemplateName::VerifyEmail, org, client, locale)
        .await
        .unwrap()
        .and_then(|o| o.subject)
        .unwrap_or_else(|| "default".into())
}

#[tokio::test]
async fn connect_creates_a_missing_database() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");

    let store = Store::connect(&url).await?;
    store.ping().await?;
    store.close().await;
    // Connecting again finds the database instead of creating it.
    let again = Store::connect(&url).await?;
    again.ping().await?;
    again.close().await;

    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(db.store.pool())
            .await?;
    assert!(exists);
    sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE \"{name}\" WITH (FORCE)"
    )))
    .execute(db.store.pool())
    .await?;
    Ok(())
}

#[tokio::test]
async fn migrating_twice_is_idempotent() -> anyhow::Result<()> {
    let db = TestDb::new().await?; // already migrated once
    db.store.migrate().await?;
    db.store.migrate().await?;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(db.store.pool())
        .await?;
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations"))?
        .filter(|f| {
            f.as_ref()
                .is_ok_and(|f| f.path().extension().is_some_and(|e| e == "sql"))
        })
        .count();
    assert_eq!(applied, i64::try_from(files)?);
    Ok(())
}

#[tokio::test]
async fn organizations_round_trip_through_upsert_get_list_and_delete() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let s = &db.store;
    assert_eq!(s.get_organization("org_acme").await?, None);

    s.upsert_organization(&acme()).await?;
    assert_eq!(s.get_organization("org_acme").await?, Some(acme()));

    let changed = Organization {
        display_name: "Acme Inc.".into(),
        branding: Branding::default(),
        default_locale: None,
        from_address: None,
        ..acme()
    };
    s.upsert_organization(&changed).await?;
    assert_eq!(s.get_organization("org_acme").await?, Some(changed.clone()));

    let globex = Organization {
        id: "org_globex".into(),
        name: "globex".into(),
        ..acme()
    };
    s.upsert_organization(&globex).await?;
    assert_eq!(s.list_organizations().await?, vec![changed, globex]);

    assert!(s.delete_organization("org_acme").await?);
    assert!(!s.delete_organization("org_acme").await?);
    assert_eq!(s.get_organization("org_acme").await?, None);
    Ok(())
}

#[tokio::test]
async fn clients_round_trip_through_upsert_get_list_and_delete() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let s = &db.store;
    s.upsert_client(&app()).await?;
    assert_eq!(s.get_client("app_web").await?, Some(app()));

    let changed = Client {
        name: "Acme Web (beta)".into(),
        login_uri: None,
        ..app()
    };
    s.upsert_client(&changed).await?;
    assert_eq!(s.list_clients().await?, vec![changed]);

    assert!(s.delete_client("app_web").await?);
    assert!(!s.delete_client("app_web").await?);
    assert_eq!(s.get_client("app_web").await?, None);
    Ok(())
}

#[tokio::test]
async fn validation_rejects_bad_values_with_a_sentence_naming_the_field() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let mut bad_colour = acme();
    bad_colour.branding.primary_color = Some("blue".into());
    let mut bad_url = acme();
    bad_url.branding.logo_url = Some("logo.png".into());
    let mut bad_locale = acme();
    bad_locale.default_locale = Some("not a locale!".into());

    for (org, field) in [
        (bad_colour, "primary_color"),
        (bad_url, "logo_url"),
        (bad_locale, "default_locale"),
    ] {
        match db.store.upsert_organization(&org).await {
            Err(StoreError::Invalid(sentence)) => {
                assert!(sentence.contains(field), "{sentence:?} should name {field}");
            }
            other => panic!("expected Invalid naming {field}, got {other:?}"),
        }
    }
    assert!(
        db.store.list_organizations().await?.is_empty(),
        "nothing invalid was written"
    );

    let bad_client = Client {
        login_uri: Some("not a url".into()),
        ..app()
    };
    let err = db.store.upsert_client(&bad_client).await.unwrap_err();
    assert!(err.to_string().contains("login_uri"), "{err}");
    Ok(())
}

#[tokio::test]
async fn a_second_organization_with_the_same_name_is_a_conflict() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    db.store.upsert_organization(&acme()).await?;
    let twin = Organization {
        id: "org_twin".into(),
        ..acme()
    };
    let err = db.store.upsert_organization(&twin).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(err.to_string().contains("\"acme\""), "{err}");
    Ok(())
}

#[tokio::test]
async fn overrides_resolve_organization_then_client_then_default() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let s = &db.store;
    s.upsert_organization(&acme()).await?;
    s.upsert_client(&app()).await?;
    let (org, client) = (Some("org_acme"), Some("app_web"));

    assert_eq!(winner(&db, org, client, "fr").await, "default");

    s.set_template_override(&client_scope(), None, &subject_override("client all"))
        .await?;
    assert_eq!(winner(&db, org, client, "fr").await, "client all");

    s.set_template_override(&client_scope(), Some("fr"), &subject_override("client fr"))
        .await?;
    assert_eq!(winner(&db, org, client, "fr").await, "client fr");
    assert_eq!(winner(&db, org, client, "de").await, "client all");

    s.set_template_override(&org_scope(), None, &subject_override("org all"))
        .await?;
    assert_eq!(
        winner(&db, org, client, "fr").await,
        "org all",
        "org beats client"
    );
    assert_eq!(
        winner(&db, None, client, "fr").await,
        "client fr",
        "no org, client applies"
    );

    s.set_template_override(&org_scope(), Some("fr"), &subject_override("org fr"))
        .await?;
    assert_eq!(
        winner(&db, org, client, "fr").await,
        "org fr",
        "exact beats all-locales"
    );
    assert_eq!(winner(&db, org, client, "de").await, "org all");
    assert_eq!(
        winner(&db, Some("org_other"), Some("app_other"), "fr").await,
        "default"
    );
    assert_eq!(winner(&db, None, None, "fr").await, "default");

    let other_template = s
        .resolve_template_override(TemplateName::ResetEmail, org, client, "fr")
        .await?;
    assert_eq!(other_template, None, "overrides are per template");

    // Setting the same scope, template and locale again replaces the override.
    s.set_template_override(&org_scope(), Some("fr"), &subject_override("org fr v2"))
        .await?;
    assert_eq!(winner(&db, org, client, "fr").await, "org fr v2");
    assert_eq!(
        s.list_template_overrides(Some(&org_scope())).await?.len(),
        2
    );
    assert_eq!(
        s.list_template_overrides(Some(&client_scope()))
            .await?
            .len(),
        2
    );
    assert_eq!(s.list_template_overrides(None).await?.len(), 4);

    assert!(
        s.delete_template_override(&org_scope(), TemplateName::VerifyEmail, Some("fr"))
            .await?
    );
    assert!(
        !s.delete_template_override(&org_scope(), TemplateName::VerifyEmail, Some("fr"))
            .await?
    );
    assert_eq!(winner(&db, org, client, "fr").await, "org all");
    Ok(())
}

#[tokio::test]
async fn override_locales_are_canonical_so_pt_br_spellings_match() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    db.store.upsert_client(&app()).await?;
    db.store
        .set_template_override(&client_scope(), Some("pt_BR"), &subject_override("olá"))
        .await?;
    assert_eq!(winner(&db, None, Some("app_web"), "pt-BR").await, "olá");
    let listed = db
        .store
        .list_template_overrides(Some(&client_scope()))
        .await?;
    assert_eq!(listed[0].locale.as_deref(), Some("pt-BR"));
    Ok(())
}

#[tokio::test]
async fn an_override_for_an_unknown_organization_is_not_found() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let err = db
        .store
        .set_template_override(&org_scope(), None, &subject_override("hello"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    assert!(
        err.to_string().contains("organization \"org_acme\""),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn deleting_an_organization_deletes_its_overrides() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    db.store.upsert_organization(&acme()).await?;
    db.store.upsert_client(&app()).await?;
    db.store
        .set_template_override(&org_scope(), None, &subject_override("org"))
        .await?;
    db.store
        .set_template_override(&client_scope(), None, &subject_override("client"))
        .await?;

    assert!(db.store.delete_organization("org_acme").await?);
    let left = db.store.list_template_overrides(None).await?;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].scope, client_scope());
    assert_eq!(left[0].subject.as_deref(), Some("client"));
    Ok(())
}

#[tokio::test]
async fn a_refused_connection_is_transient_and_says_how_to_start_postgres() {
    let err = Store::connect("postgres://postgres:hunter2@127.0.0.1:1/herald")
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let sentence = err.to_string();
    assert!(
        sentence.contains("cannot reach PostgreSQL at 127.0.0.1:1 (connection refused)"),
        "{sentence}"
    );
    assert!(sentence.contains("pg_ctlcluster"), "{sentence}");
    assert!(
        !format!("{sentence} {err:?}").contains("hunter2"),
        "the password leaked: {sentence}"
    );
}

#[tokio::test]
async fn a_constraint_violation_is_not_transient() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    db.store.upsert_client(&app()).await?;
    // Bypasses validation to hit the table's CHECK: an override must set at least one part.
    let violation = sqlx::query(
        "INSERT INTO template_overrides (client_id, template) VALUES ('app_web', 'verify_email')",
    )
    .execute(db.store.pool())
    .await
    .unwrap_err();
    let err = StoreError::from(violation);
    assert!(!err.is_transient(), "{err:?}");
    assert!(matches!(err, StoreError::Database(_)), "{err:?}");
    assert_eq!(err.sqlstate().as_deref(), Some("23514"));
    Ok(())
}

#[tokio::test]
async fn override_failures_are_counted_on_the_row_and_cleared_when_it_is_saved_again()
-> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let s = &db.store;
    s.upsert_organization(&acme()).await?;
    s.set_template_override(&org_scope(), Some("fr"), &subject_override("v1"))
        .await?;
    let stored = s
        .resolve_template_override(TemplateName::VerifyEmail, Some("org_acme"), None, "fr")
        .await?
        .expect("the override");
    assert_eq!(stored.health.failures, 0);
    assert_eq!(stored.health.last_failure_at, None);

    assert!(s.record_override_failure(&stored, "first").await?);
    assert!(s.record_override_failure(&stored, "second").await?);
    let listed = s.list_template_overrides(Some(&org_scope())).await?;
    assert_eq!(listed[0].health.failures, 2);
    assert_eq!(listed[0].health.last_failure.as_deref(), Some("second"));
    assert!(listed[0].health.last_failure_at.is_some());

    s.set_template_override(&org_scope(), Some("fr"), &subject_override("v2"))
        .await?;
    let listed = s.list_template_overrides(Some(&org_scope())).await?;
    assert_eq!(listed[0].subject.as_deref(), Some("v2"));
    assert_eq!(
        listed[0].health,
        Default::default(),
        "a new version starts clean"
    );

    s.delete_template_override(&org_scope(), TemplateName::VerifyEmail, Some("fr"))
        .await?;
    assert!(!s.record_override_failure(&stored, "gone").await?);
    Ok(())
}

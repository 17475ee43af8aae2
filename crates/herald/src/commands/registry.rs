//! `herald org|client|template …`: the operator's view of the registry in PostgreSQL.

use anyhow::{Context, bail};
use herald_render::TemplateSources;
use herald_store::{Branding, Client, Organization, OverrideHealth, OverrideScope, Store};
use time::format_description::well_known::Rfc3339;

use crate::app;
use crate::cli::{ClientCommand, OrgCommand, ScopeArgs, TemplateCommand};
use crate::settings::Settings;

pub async fn org(settings: &Settings, cmd: OrgCommand) -> anyhow::Result<()> {
    let store = app::store(settings).await?;
    match cmd {
        OrgCommand::Set(a) => {
            let org = Organization {
                name: a.name.unwrap_or_else(|| a.id.clone()),
                id: a.id,
                display_name: a.display_name,
                branding: Branding {
                    logo_url: a.logo_url,
                    primary_color: a.primary_color,
                    page_background: a.page_background,
                },
                default_locale: a.default_locale,
                from_address: a.from_address,
            };
            store.upsert_organization(&org).await?;
            println!("Saved organization {}.", org.id);
            print_org(&org);
        }
        OrgCommand::Show { id } => match store.get_organization(&id).await? {
            Some(org) => print_org(&org),
            None => bail!("there is no organization {id:?}"),
        },
        OrgCommand::List => {
            let orgs = store.list_organizations().await?;
            if orgs.is_empty() {
                println!(
                    "No organizations yet. Add one with `herald org set <id> --display-name …`."
                );
            }
            for o in orgs {
                println!(
                    "{:<24} {:<24} locale={:<6} color={}",
                    o.id,
                    o.display_name,
                    o.default_locale.as_deref().unwrap_or("-"),
                    o.branding.primary_color.as_deref().unwrap_or("-")
                );
            }
        }
        OrgCommand::Delete { id } => {
            if !store.delete_organization(&id).await? {
                bail!("there is no organization {id:?}");
            }
            println!("Deleted organization {id} and its template overrides.");
        }
    }
    Ok(())
}

fn print_org(o: &Organization) {
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    println!("  id:              {}", o.id);
    println!("  name:            {}", o.name);
    println!("  display name:    {}", o.display_name);
    println!("  logo url:        {}", show(&o.branding.logo_url));
    println!("  primary colour:  {}", show(&o.branding.primary_color));
    println!("  page background: {}", show(&o.branding.page_background));
    println!("  default locale:  {}", show(&o.default_locale));
    println!("  from:            {}", show(&o.from_address));
}

pub async fn client(settings: &Settings, cmd: ClientCommand) -> anyhow::Result<()> {
    let store = app::store(settings).await?;
    match cmd {
        ClientCommand::Set {
            id,
            name,
            login_uri,
        } => {
            let client = Client {
                id,
                name,
                login_uri,
            };
            store.upsert_client(&client).await?;
            println!("Saved client {} ({}).", client.id, client.name);
        }
        ClientCommand::Show { id } => match store.get_client(&id).await? {
            Some(c) => println!(
                "  id: {}\n  name: {}\n  login uri: {}",
                c.id,
                c.name,
                c.login_uri.as_deref().unwrap_or("-")
            ),
            None => bail!("there is no client {id:?}"),
        },
        ClientCommand::List => {
            let clients = store.list_clients().await?;
            if clients.is_empty() {
                println!("No clients yet. Add one with `herald client set <id> --name …`.");
            }
            for c in clients {
                println!(
                    "{:<28} {:<28} {}",
                    c.id,
                    c.name,
                    c.login_uri.as_deref().unwrap_or("-")
                );
            }
        }
        ClientCommand::Delete { id } => {
            if !store.delete_client(&id).await? {
                bail!("there is no client {id:?}");
            }
            println!("Deleted client {id} and its template overrides.");
        }
    }
    Ok(())
}

fn scope(args: ScopeArgs) -> anyhow::Result<OverrideScope> {
    match (args.organization, args.client) {
        (Some(org), None) => Ok(OverrideScope::Organization(org)),
        (None, Some(client)) => Ok(OverrideScope::Client(client)),
        _ => bail!("name exactly one of --org or --client"),
    }
}

fn describe(scope: &OverrideScope) -> String {
    match scope {
        OverrideScope::Organization(id) => format!("organization {id}"),
        OverrideScope::Client(id) => format!("client {id}"),
    }
}

/// `ok`, or how often the override failed on real emails (each of which got the built-in
/// template instead), when it last did and why.
fn health(h: &OverrideHealth) -> String {
    if h.failures == 0 {
        return "ok".to_string();
    }
    let at = h
        .last_failure_at
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "-".into());
    format!(
        "FAILING: {} email(s) got the built-in template instead; last at {at}: {}",
        h.failures,
        h.last_failure.as_deref().unwrap_or("-")
    )
}

pub async fn template(settings: &Settings, cmd: TemplateCommand) -> anyhow::Result<()> {
    let store: Store = app::store(settings).await?;
    match cmd {
        TemplateCommand::Set {
            scope: scope_args,
            template,
            locale,
            subject,
            html_file,
            text_file,
        } => {
            let read = |p: Option<std::path::PathBuf>| -> anyhow::Result<Option<String>> {
                p.map(|p| {
                    std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
                })
                .transpose()
            };
            let sources = TemplateSources {
                subject,
                html: read(html_file)?,
                text: read(text_file)?,
            };
            if sources.subject.is_none() && sources.html.is_none() && sources.text.is_none() {
                bail!("give at least one of --subject, --html-file or --text-file");
            }
            let scope = scope(scope_args)?;
            let checked = app::renderer(settings)?
                .check_override(template, sources)
                .context("the override does not render; nothing was saved")?;
            store
                .set_template_override(&scope, locale.as_deref(), &checked)
                .await?;
            println!(
                "Saved the {} override for {} ({}).",
                template,
                describe(&scope),
                locale.as_deref().unwrap_or("every locale")
            );
        }
        TemplateCommand::List {
            organization,
            client,
        } => {
            let filter = match (organization, client) {
                (Some(o), _) => Some(OverrideScope::Organization(o)),
                (None, Some(c)) => Some(OverrideScope::Client(c)),
                (None, None) => None,
            };
            let list = store.list_template_overrides(filter.as_ref()).await?;
            // The tenant-wide templates of the Management API rank below every override.
            let tenant = match filter {
                None => store.email_templates().await?,
                Some(_) => Vec::new(),
            };
            if list.is_empty() && tenant.is_empty() {
                println!("No template overrides: every email uses the built-in templates.");
            }
            for o in list {
                let parts: Vec<&str> = [
                    o.subject.as_ref().map(|_| "subject"),
                    o.html.as_ref().map(|_| "html"),
                    o.text.as_ref().map(|_| "text"),
                ]
                .into_iter()
                .flatten()
                .collect();
                println!(
                    "{:<28} {:<18} {:<8} {:<16} {}",
                    describe(&o.scope),
                    o.template,
                    o.locale.as_deref().unwrap_or("*"),
                    parts.join("+"),
                    health(&o.health)
                );
            }
            for t in tenant {
                let t = t.template;
                let parts: Vec<&str> = [
                    t.subject.as_ref().map(|_| "subject"),
                    t.body.as_ref().map(|_| "html"),
                    t.from.as_ref().map(|_| "from"),
                ]
                .into_iter()
                .flatten()
                .collect();
                println!(
                    "{:<28} {:<18} {:<8} {:<16} {}",
                    format!("tenant ({})", t.syntax),
                    t.template,
                    "*",
                    if parts.is_empty() {
                        "-".to_owned()
                    } else {
                        parts.join("+")
                    },
                    if t.enabled {
                        "enabled"
                    } else {
                        "DISABLED (jobs skipped)"
                    }
                );
            }
        }
        TemplateCommand::Remove {
            scope: scope_args,
            template,
            locale,
        } => {
            let scope = scope(scope_args)?;
            if !store
                .delete_template_override(&scope, template, locale.as_deref())
                .await?
            {
                bail!("there is no such override for {}", describe(&scope));
            }
            println!(
                "Removed the {} override for {}.",
                template,
                describe(&scope)
            );
        }
    }
    Ok(())
}

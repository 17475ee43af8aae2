//! A short-lived, per-process cache of registry lookups (organizations, clients, template
//! overrides and the tenant's email templates), so the hot path does not ask PostgreSQL the same
//! questions for every job.
//!
//! Entries live for `HERALD_REGISTRY_CACHE_TTL` (5 s by default; 0 turns the cache off), so a
//! change made with `herald org`, `herald client`, `herald template` or the Management API reaches
//! a running worker
//! within that time. Misses, including "no such organization", are cached too, so an organization
//! created after a job that named it failed is seen after the same delay. The ledger and tickets
//! are never cached.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_domain::TemplateName;
use herald_store::{Client, EmailTemplate, Organization, Store, StoreError, TemplateOverride};

/// Beyond this many entries a map is emptied before inserting (a crude bound for registries with
/// very many organizations; the entries come back on the next lookups).
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug)]
pub struct RegistryCache {
    ttl: Duration,
    organizations: TtlMap<String, Option<Organization>>,
    clients: TtlMap<String, Option<Client>>,
    overrides: TtlMap<OverrideKey, Option<TemplateOverride>>,
    email_templates: TtlMap<TemplateName, Option<Arc<EmailTemplate>>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct OverrideKey {
    template: TemplateName,
    organization_id: Option<String>,
    client_id: Option<String>,
    locale: String,
}

impl RegistryCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            organizations: TtlMap::default(),
            clients: TtlMap::default(),
            overrides: TtlMap::default(),
            email_templates: TtlMap::default(),
        }
    }

    pub async fn organization(
        &self,
        store: &Store,
        id: &str,
    ) -> Result<Option<Organization>, StoreError> {
        if let Some(hit) = self.organizations.get(id, self.ttl) {
            return Ok(hit);
        }
        let found = store.get_organization(id).await?;
        self.organizations
            .put(id.to_owned(), found.clone(), self.ttl);
        Ok(found)
    }

    pub async fn client(&self, store: &Store, id: &str) -> Result<Option<Client>, StoreError> {
        if let Some(hit) = self.clients.get(id, self.ttl) {
            return Ok(hit);
        }
        let found = store.get_client(id).await?;
        self.clients.put(id.to_owned(), found.clone(), self.ttl);
        Ok(found)
    }

    pub async fn template_override(
        &self,
        store: &Store,
        template: TemplateName,
        organization_id: Option<&str>,
        client_id: Option<&str>,
        locale: &str,
    ) -> Result<Option<TemplateOverride>, StoreError> {
        let key = OverrideKey {
            template,
            organization_id: organization_id.map(str::to_owned),
            client_id: client_id.map(str::to_owned),
            locale: locale.to_owned(),
        };
        if let Some(hit) = self.overrides.get(&key, self.ttl) {
            return Ok(hit);
        }
        let found = store
            .resolve_template_override(template, organization_id, client_id, locale)
            .await?;
        self.overrides.put(key, found.clone(), self.ttl);
        Ok(found)
    }
}

impl RegistryCache {
    /// The tenant's template of `template` (`/email-templates`), if one was created.
    pub async fn email_template(
        &self,
        store: &Store,
        template: TemplateName,
    ) -> Result<Option<Arc<EmailTemplate>>, StoreError> {
        if let Some(hit) = self.email_templates.get(&template, self.ttl) {
            return Ok(hit);
        }
        let found = store
            .email_template(template)
            .await?
            .map(|stored| Arc::new(stored.template));
        self.email_templates.put(template, found.clone(), self.ttl);
        Ok(found)
    }
}

/// A map whose entries expire `ttl` after they were stored.
#[derive(Debug)]
struct TtlMap<K, V> {
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K, V> Default for TtlMap<K, V> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash, V: Clone> TtlMap<K, V> {
    fn get<Q>(&self, key: &Q, ttl: Duration) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.get_at(key, ttl, Instant::now())
    }

    fn put(&self, key: K, value: V, ttl: Duration) {
        self.put_at(key, value, ttl, Instant::now());
    }

    /// [`TtlMap::get`] as seen at `now` (tests pass their own clock instead of sleeping).
    fn get_at<Q>(&self, key: &Q, ttl: Duration, now: Instant) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        if ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|(stored, _)| now.saturating_duration_since(*stored) < ttl)
            .map(|(_, v)| v.clone())
    }

    /// [`TtlMap::put`] as if stored at `now`.
    fn put_at(&self, key: K, value: V, ttl: Duration, now: Instant) {
        if ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (now, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_the_ttl() {
        // A clock of our own, so a slow machine cannot expire the entry before it is read.
        let map = TtlMap::<String, u32>::default();
        let ttl = Duration::from_secs(5);
        let stored = Instant::now();
        map.put_at("a".into(), 1, ttl, stored);
        assert_eq!(map.get_at("a", ttl, stored), Some(1));
        let just_before = stored + ttl - Duration::from_millis(1);
        assert_eq!(map.get_at("a", ttl, just_before), Some(1));
        assert_eq!(map.get_at("a", ttl, stored + ttl), None);
        // And through the real clock: a fresh entry is a hit.
        map.put("b".into(), 2, ttl);
        assert_eq!(map.get("b", ttl), Some(2));
    }

    #[test]
    fn a_zero_ttl_caches_nothing() {
        let map = TtlMap::<String, u32>::default();
        map.put("a".into(), 1, Duration::ZERO);
        assert_eq!(map.get("a", Duration::from_secs(60)), None);
    }

    #[test]
    fn a_full_map_starts_over_instead_of_growing() {
        let map = TtlMap::<usize, usize>::default();
        let ttl = Duration::from_secs(60);
        for i in 0..=MAX_ENTRIES {
            map.put(i, i, ttl);
        }
        assert_eq!(map.get(&MAX_ENTRIES, ttl), Some(MAX_ENTRIES));
        assert_eq!(map.get(&0, ttl), None);
    }
}

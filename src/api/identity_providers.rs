//! `/v1/identity-providers`: a tenant's owners and admins configure where its
//! users sign in (OIDC, LDAP; `crate::identity`). The secret is write-only: no
//! answer carries it (`has_secret` says whether one is set) and no log or audit
//! event does. Mappings that hand out `owner` or `compliance` are changed by
//! owners only, decided in the writing transaction on the row it locked.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use serde::{Deserialize, Deserializer};
use serde_json::json;
use utoipa::ToSchema;

use super::{IdPath, created};
use crate::audit;
use crate::auth::Role;
use crate::error::ApiError;
use crate::hooks::Hooks;
use crate::identity::store::{self, IdentityProvider, ProviderFields};
use crate::identity::{
    self, LdapConfig, OidcConfig, ProviderKind, RoleMapping, diagnose, grants_privileged,
};
use crate::ids::ProviderId;
use crate::pagination::{Page, PageQuery};
use crate::scope::{Allow, Guarded, TenantScope, perm};
use crate::secret::Secret;
use crate::store::owners;
use crate::validate;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProvider {
    kind: ProviderKind,
    name: String,
    enabled: Option<bool>,
    /// Required for `kind: oidc`, absent otherwise.
    oidc: Option<OidcConfig>,
    /// Required for `kind: ldap`, absent otherwise.
    ldap: Option<LdapConfig>,
    /// Write-only: the OIDC client secret, or the LDAP service account's password.
    #[schema(value_type = Option<String>)]
    secret: Option<Secret>,
    role_mappings: Option<Vec<RoleMapping>>,
    default_role: Option<Role>,
    allowed_email_domains: Option<Vec<String>>,
    redirect_uris: Option<Vec<String>>,
}

/// Present-and-null (`Some(None)`) apart from absent (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchProvider {
    name: Option<String>,
    enabled: Option<bool>,
    /// Replaces the OIDC settings (an OIDC provider only).
    oidc: Option<OidcConfig>,
    /// Replaces the LDAP settings (an LDAP provider only).
    ldap: Option<LdapConfig>,
    /// Replaces the stored secret.
    #[schema(value_type = Option<String>)]
    secret: Option<Secret>,
    role_mappings: Option<Vec<RoleMapping>>,
    /// `null` removes the default role (users in no mapped group are refused).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Role>)]
    default_role: Option<Option<Role>>,
    allowed_email_domains: Option<Vec<String>>,
    redirect_uris: Option<Vec<String>>,
}

fn kind_settings(
    kind: ProviderKind,
    oidc: Option<&OidcConfig>,
    ldap: Option<&LdapConfig>,
) -> Result<(Option<OidcConfig>, Option<LdapConfig>), ApiError> {
    match (kind, oidc, ldap) {
        (ProviderKind::Oidc, Some(o), None) => Ok((Some(identity::check_oidc(o)?), None)),
        (ProviderKind::Ldap, None, Some(l)) => Ok((None, Some(identity::check_ldap(l)?))),
        (ProviderKind::Oidc, _, _) => Err(ApiError::validation(
            "an oidc provider takes `oidc` settings and no `ldap` settings",
        )),
        (ProviderKind::Ldap, _, _) => Err(ApiError::validation(
            "an ldap provider takes `ldap` settings and no `oidc` settings",
        )),
    }
}

fn name(raw: &str) -> Result<String, ApiError> {
    validate::text("name", raw, 100)
}

/// Add an identity provider (owner or admin; mappings to owner or compliance:
/// owners only).
#[utoipa::path(tag = "identity", request_body = CreateProvider, security(("bearer" = [])),
    responses((status = 201, body = IdentityProvider)))]
#[post("/identity-providers")]
pub async fn create(
    scope: Guarded<Allow<perm::ManageIdentity>, TenantScope>,
    hooks: web::Data<Hooks>,
    body: super::JsonBody<CreateProvider>,
) -> Result<HttpResponse, ApiError> {
    let (oidc, ldap) = kind_settings(body.kind, body.oidc.as_ref(), body.ldap.as_ref())?;
    if let Some(secret) = &body.secret {
        identity::check_secret(secret)?;
    }
    let fields = ProviderFields {
        name: name(&body.name)?,
        enabled: body.enabled.unwrap_or(true),
        oidc,
        ldap,
        role_mappings: identity::check_mappings(body.role_mappings.as_deref().unwrap_or(&[]))?,
        default_role: identity::check_default_role(body.default_role)?,
        allowed_email_domains: identity::check_domains(
            body.allowed_email_domains.as_deref().unwrap_or(&[]),
        )?,
        redirect_uris: identity::check_redirect_uris(body.redirect_uris.as_deref().unwrap_or(&[]))?,
    };
    let privileged = grants_privileged(&fields.role_mappings, fields.default_role);
    let (actor, actor_role) = (scope.user_id().to_string(), scope.role());
    let (kind, secret) = (body.kind, body.secret.as_ref());
    let provider = scope
        .write(async |tx| {
            owners::check_mapping(actor_role, privileged)?;
            let provider = store::create(tx, &hooks.keyring, kind, &fields, secret).await?;
            audit::record(
                tx,
                &actor,
                "identity_provider_created",
                Some(("identity_provider", provider.id.to_string())),
                json!({ "kind": kind, "name": provider.name,
                        "role_mappings": provider.role_mappings,
                        "default_role": provider.default_role }),
            )
            .await?;
            Ok(provider)
        })
        .await?;
    Ok(created(
        format!("/v1/identity-providers/{}", provider.id),
        &provider,
    ))
}

/// The tenant's identity providers, newest first.
#[utoipa::path(tag = "identity", params(PageQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<IdentityProvider>)))]
#[get("/identity-providers")]
pub async fn list(
    scope: Guarded<Allow<perm::ManageIdentity>, TenantScope>,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<IdentityProvider>>, ApiError> {
    let (limit, after) = (query.limit()?, query.keyset()?);
    Ok(web::Json(
        scope
            .read(async |tx| Ok(store::list(tx, limit, after).await?))
            .await?,
    ))
}

#[utoipa::path(tag = "identity",
    params(("id" = uuid::Uuid, Path, description = "Identity provider id")),
    security(("bearer" = [])), responses((status = 200, body = IdentityProvider)))]
#[get("/identity-providers/{id}")]
pub async fn get(
    scope: Guarded<Allow<perm::ManageIdentity>, TenantScope>,
    path: IdPath,
) -> Result<web::Json<IdentityProvider>, ApiError> {
    let id = ProviderId::parse(&path)?;
    Ok(web::Json(
        scope
            .read(async |tx| Ok(store::get(tx, id, false).await?))
            .await?,
    ))
}

/// Change a provider. Lists given replace the stored ones; a change to mappings
/// that hand out (or stop handing out) owner or compliance needs an owner.
#[utoipa::path(tag = "identity", request_body = PatchProvider,
    params(("id" = uuid::Uuid, Path, description = "Identity provider id")),
    security(("bearer" = [])), responses((status = 200, body = IdentityProvider)))]
#[patch("/identity-providers/{id}")]
pub async fn patch(
    scope: Guarded<Allow<perm::ManageIdentity>, TenantScope>,
    path: IdPath,
    hooks: web::Data<Hooks>,
    body: super::JsonBody<PatchProvider>,
) -> Result<web::Json<IdentityProvider>, ApiError> {
    let id = ProviderId::parse(&path)?;
    let body = body.into_inner();
    if let Some(secret) = &body.secret {
        identity::check_secret(secret)?;
    }
    let new_name = body.name.as_deref().map(name).transpose()?;
    let mappings = body
        .role_mappings
        .as_deref()
        .map(identity::check_mappings)
        .transpose()?;
    let default_role = body
        .default_role
        .map(identity::check_default_role)
        .transpose()?;
    let domains = body
        .allowed_email_domains
        .as_deref()
        .map(identity::check_domains)
        .transpose()?;
    let uris = body
        .redirect_uris
        .as_deref()
        .map(identity::check_redirect_uris)
        .transpose()?;
    let (actor, actor_role) = (scope.user_id().to_string(), scope.role());
    let provider = scope
        .write(async |tx| {
            let before = store::get(tx, id, true).await?;
            let (oidc, ldap) = match (&body.oidc, &body.ldap) {
                (None, None) => (before.oidc.clone(), before.ldap.clone()),
                (o, l) => kind_settings(before.kind, o.as_ref(), l.as_ref())?,
            };
            let fields = ProviderFields {
                name: new_name.clone().unwrap_or_else(|| before.name.clone()),
                enabled: body.enabled.unwrap_or(before.enabled),
                oidc,
                ldap,
                role_mappings: mappings
                    .clone()
                    .unwrap_or_else(|| before.role_mappings.clone()),
                default_role: default_role.unwrap_or(before.default_role),
                allowed_email_domains: domains
                    .clone()
                    .unwrap_or_else(|| before.allowed_email_domains.clone()),
                redirect_uris: uris.clone().unwrap_or_else(|| before.redirect_uris.clone()),
            };
            let mapping_changes = fields.role_mappings != before.role_mappings
                || fields.default_role != before.default_role;
            let touches = grants_privileged(&before.role_mappings, before.default_role)
                || grants_privileged(&fields.role_mappings, fields.default_role);
            owners::check_mapping(actor_role, mapping_changes && touches)?;
            let provider =
                store::update(tx, &hooks.keyring, id, &fields, body.secret.as_ref()).await?;
            audit::record(
                tx,
                &actor,
                "identity_provider_updated",
                Some(("identity_provider", id.to_string())),
                json!({
                    "name": provider.name, "enabled": provider.enabled,
                    "role_mappings": provider.role_mappings, "default_role": provider.default_role,
                    "secret_replaced": body.secret.is_some(),
                }),
            )
            .await?;
            Ok(provider)
        })
        .await?;
    Ok(web::Json(provider))
}

/// Delete a provider: its users can no longer sign in through it, and the
/// sessions they started with it end.
#[utoipa::path(tag = "identity",
    params(("id" = uuid::Uuid, Path, description = "Identity provider id")),
    security(("bearer" = [])), responses((status = 204)))]
#[delete("/identity-providers/{id}")]
pub async fn delete(
    scope: Guarded<Allow<perm::ManageIdentity>, TenantScope>,
    path: IdPath,
) -> Result<HttpResponse, ApiError> {
    let id = ProviderId::parse(&path)?;
    let (actor, actor_role) = (scope.user_id().to_string(), scope.role());
    scope
        .write(async |tx| {
            let before = store::get(tx, id, true).await?;
            // Removing a privileged mapping is an owner's decision, like changing it.
            owners::check_mapping(
                actor_role,
                grants_privileged(&before.role_mappings, before.default_role),
            )?;
            store::delete(tx, id).await?;
            crate::sessions::store::revoke_provider(tx, id).await?;
            audit::record(
                tx,
                &actor,
                "identity_provider_deleted",
                Some(("identity_provider", id.to_string())),
                json!({ "kind": before.kind, "name": before.name }),
            )
            .await?;
            Ok(())
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Check that the provider is reachable and configured right: OIDC discovery
/// and keys; LDAP connect, service bind and base DN. Answers 200 with each
/// check's outcome, whether or not they passed.
#[utoipa::path(tag = "identity",
    params(("id" = uuid::Uuid, Path, description = "Identity provider id")),
    security(("bearer" = [])), responses((status = 200, body = diagnose::Diagnosis)))]
#[post("/identity-providers/{id}/test")]
pub async fn test(
    scope: Guarded<Allow<perm::ManageIdentity>, TenantScope>,
    hooks: web::Data<Hooks>,
    path: IdPath,
) -> Result<web::Json<diagnose::Diagnosis>, ApiError> {
    let id = ProviderId::parse(&path)?;
    // Read first, talk to the provider after: no transaction stays open over
    // the network.
    let (provider, secret) = scope
        .read(async |tx| {
            Ok((
                store::get(tx, id, false).await?,
                store::secret_of(tx, &hooks.keyring, id).await?,
            ))
        })
        .await?;
    let diagnosis = match (&provider.oidc, &provider.ldap) {
        (Some(oidc), _) => diagnose::oidc(&hooks.client, oidc).await,
        (_, Some(ldap)) => diagnose::ldap(&hooks.client, ldap, secret.as_ref()).await,
        _ => {
            return Err(ApiError::internal(anyhow::anyhow!(
                "identity provider {id} has no settings"
            )));
        }
    };
    Ok(web::Json(diagnosis))
}
